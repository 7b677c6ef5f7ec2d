//! Fills a store with `N` listing objects for the review-queue benchmark: every other object
//! flagged by the real listing-v1 manifest (random labels and scores), sellers and platforms
//! spread out, and one flagged object in twenty already decided.
//! `cargo run --release --example review_fill -- DB [N]` (scripts/bench/review_queue.sh runs it).

use std::collections::BTreeMap;
use std::time::Instant;

use tusk::infer::manifest;
use tusk::record::{Detection, Hashes, Record};
use tusk::source::{Kind, ObjectMeta};
use tusk::store::{Db, NewDecision, Store};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let db: Db = args.next().expect("usage: review_fill DB [N]").parse().expect("DB");
    let n: u64 = args.next().map(|s| s.parse().expect("N")).unwrap_or(100_000);
    let models = std::env::var("TUSK_MODELS").unwrap_or_else(|_| "models".into());
    let manifests: Vec<_> = manifest::discover(std::path::Path::new(&models)).expect("models").into_iter().filter(|m| m.name == "listing-v1").collect();
    let store = Store::open(&db).await.expect("open the store");
    let (run, ids) = store.begin_run("review_fill", &manifests).await.expect("run");
    let model_ids: BTreeMap<String, i64> = manifests.iter().map(|m| m.name.clone()).zip(ids).collect();
    let labels = ["ivory", "pangolin_scales", "live_reptile"];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let started = Instant::now();
    let mut written = 0u64;
    while written < n {
        let batch: Vec<Record> = (written..(written + 1000).min(n))
            .map(|i| {
                let meta = ObjectMeta {
                    kind: Kind::Listing,
                    seller_id: Some(format!("s{}", next() % 5000)),
                    listing_id: Some(format!("l{i}")),
                    platform: Some(format!("p{}", next() % 8)),
                    meta: None,
                };
                let mut r = Record::new(format!("crawl/{i:07}.jpg"), Some("1".into()), meta);
                r.width = Some(640);
                r.height = Some(480);
                r.hashes = Some(Hashes { phash: next(), dhash: next(), pdq: tusk::hash::pdq::Pdq([next(), next(), next(), next()]), pdq_quality: 90 });
                let scores: BTreeMap<String, f32> = labels.iter().map(|l| (l.to_string(), (next() % 1000) as f32 / 1000.0)).collect();
                if i % 2 == 0 {
                    let label = labels[(next() % 3) as usize];
                    r.detections.push(Detection { model: "listing-v1".into(), label: label.into(), score: scores[label].max(0.27), bbox: None, flagged: true });
                }
                r.scores.insert("listing-v1".into(), scores);
                r
            })
            .collect();
        store.write(run, &batch, &model_ids).await.expect("write");
        written += batch.len() as u64;
    }
    let wrote_s = started.elapsed().as_secs_f64();
    // One flagged object in twenty decided.
    let mut decided = 0;
    for i in (0..n).step_by(40) {
        if let Some(id) = store.object_id(&format!("crawl/{i:07}.jpg")).await.expect("id") {
            let action = if i % 80 == 0 { "confirm" } else { "reject" };
            let d = NewDecision { object_id: id, action: action.into(), reason: (action == "reject").then(|| "resin".into()), who: "bench".into(), ..Default::default() };
            store.add_decision(&d).await.expect("decide");
            decided += 1;
        }
    }
    println!("review_fill: {n} objects ({} flagged, {decided} decided) in {db} in {wrote_s:.1} s", n.div_ceil(2));
}
