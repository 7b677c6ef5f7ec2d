//! Seller-link scale (issue 13): the objects of a store, with their stored local features (the
//! link benchmark's 8,537 real photos), plus N synthetic objects (random PDQ, pHash and dHash; one
//! in 100 a near-copy of another, 8–24 PDQ bits apart; no local features, so only the strict
//! hash rule can link them), then the work of `tusk clusters`: candidate pairs, verification,
//! clusters. Prints the time of each stage, peak memory and candidate pairs per object.
//!
//! `cargo run --release --example link_scale -- STORE.db N [--hash-kind pdq --radius 31]`

use std::time::Instant;

use tusk::hash::pdq::Pdq;
use tusk::reuse::{self, verify::Params, Catalog, Entry, HashKind, Rule, ViewHash};
use tusk::store::{Db, Store};

mod common;

use common::{flip64, flip_pdq, Rng};

/// Peak resident memory of this process, in MiB (Linux).
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok()).unwrap_or(0.0) / 1024.0
}

fn synthetic(i: usize, rng: &mut Rng, previous: Option<&Entry>) -> Entry {
    let (pdq, phash, dhash) = match previous {
        Some(p) => {
            let w = p.whole();
            let bits: Vec<u32> = (0..8 + rng.next() % 17).map(|_| (rng.next() % 256) as u32).collect();
            let pdq = flip_pdq(w.pdq.expect("synthetic objects have PDQ"), &bits);
            (pdq, flip64(w.phash, &[(rng.next() % 64) as u32]), w.dhash)
        }
        None => (Pdq([rng.next(), rng.next(), rng.next(), rng.next()]), rng.next(), rng.next()),
    };
    Entry {
        id: (1i64 << 40) + i as i64,
        uri: format!("synthetic/{i:08}.jpg"),
        seller_id: Some(format!("synthetic-seller-{i}")),
        listing_id: None,
        platform: None,
        pdq_quality: Some(100),
        views: vec![ViewHash { view: "whole".into(), phash, dhash, pdq: Some(pdq), pdq_quality: Some(100) }],
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: link_scale STORE.db N [--hash-kind pdq --radius 31]";
    let db = args.get(1).ok_or(usage)?;
    let n: usize = args.get(2).ok_or(usage)?.parse()?;
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let kind = match flag("--hash-kind").as_deref() {
        None | Some("default") => HashKind::Default,
        Some("pdq") => HashKind::Pdq,
        Some("phash") => HashKind::Phash,
        Some(other) => return Err(format!("--hash-kind {other}: default, pdq or phash").into()),
    };
    let rule = Rule::new(kind, flag("--radius").map(|r| r.parse()).transpose()?);

    let started = Instant::now();
    let store = Store::open(&Db::Sqlite(db.into())).await?;
    let mut catalog = Catalog::load(&store).await?;
    let real = catalog.entries.len();
    let loaded = started.elapsed();
    let mut rng = Rng(0x7475_736b_5343_414c);
    for i in 0..n {
        let copy_of = (i > 0 && rng.next().is_multiple_of(100)).then(|| catalog.entries[real + (rng.next() as usize % i)].clone());
        let e = synthetic(i, &mut rng, copy_of.as_ref());
        catalog.insert(e);
    }
    let built = started.elapsed();
    println!("catalogue: {real} stored objects (loaded with their features in {:.1} s) + {n} synthetic = {} objects, built in {:.1} s; peak {:.0} MiB",
        loaded.as_secs_f64(), catalog.entries.len(), (built - loaded).as_secs_f64(), peak_mib());

    let t = Instant::now();
    let candidates = catalog.candidate_pairs(&rule);
    let cand_s = t.elapsed().as_secs_f64();
    let from_features = candidates.iter().filter(|(_, _, m)| m.matched_by == "features").count();
    println!("candidate pairs: {} ({from_features} proposed by shared descriptors) in {cand_s:.1} s = {:.2} per object; peak {:.0} MiB",
        candidates.len(), candidates.len() as f64 / catalog.entries.len() as f64, peak_mib());

    let t = Instant::now();
    let pairs = reuse::verify_pairs(&catalog, &store, &candidates, &Params::default()).await?;
    let verify_s = t.elapsed().as_secs_f64();
    let clusters = catalog.clusters(&pairs.iter().map(|(a, b, _)| (*a, *b)).collect::<Vec<_>>(), 2);
    println!("verification: {verify_s:.1} s, {} matches, {} clusters of 2+ sellers; peak {:.0} MiB", pairs.len(), clusters.len(), peak_mib());
    Ok(())
}
