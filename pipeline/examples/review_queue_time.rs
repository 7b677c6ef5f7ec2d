//! Times the store's review-queue query alone (no HTTP) for the pages the review bench asks for.
//! `cargo run --release --example review_queue_time -- DB` on a store filled by review_fill.

use std::time::Instant;

use tusk::store::{Db, QueueFilter, QueueOrder, Store};

#[tokio::main]
async fn main() {
    let db: Db = std::env::args().nth(1).expect("usage: review_queue_time DB").parse().expect("DB");
    let store = Store::open(&db).await.expect("open the store");
    let page = |f: QueueFilter| QueueFilter { limit: 51, ..f };
    let cases: Vec<(&str, QueueFilter)> = vec![
        ("newest", page(QueueFilter::default())),
        ("uncertain", page(QueueFilter { order: QueueOrder::Uncertain, ..Default::default() })),
        ("not decided", page(QueueFilter { decided: Some(false), ..Default::default() })),
        ("decided, uncertain", page(QueueFilter { decided: Some(true), order: QueueOrder::Uncertain, ..Default::default() })),
        ("ivory on p3", page(QueueFilter { label: Some("ivory".into()), platform: Some("p3".into()), ..Default::default() })),
        ("seller s17", page(QueueFilter { seller: Some("s17".into()), ..Default::default() })),
        ("page 200", page(QueueFilter { offset: 200 * 50, ..Default::default() })),
    ];
    println!("{:<22} {:>8} {:>8} {:>6}", "query", "p50 ms", "max ms", "rows");
    for (name, f) in cases {
        let mut ms = Vec::new();
        let mut rows = 0;
        for _ in 0..10 {
            let t = Instant::now();
            rows = store.review_queue(&f).await.expect("queue").len();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        println!("{name:<22} {:>8.1} {:>8.1} {rows:>6}", ms[5], ms[9]);
    }
}
