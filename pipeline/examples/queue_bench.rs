//! The fleet's queue alone: `WORKERS` tasks claim batches of jobs and complete each with a
//! minimal record (an object row, no model), as fast as PostgreSQL allows. Prints jobs/s.
//! `cargo run --release --example queue_bench -- postgres://… [JOBS] [WORKERS] [BATCH]`
//! (scripts/bench/fleet.sh starts a PostgreSQL and runs it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tusk::fleet::queue::{Queue, RetryPolicy};
use tusk::record::{Hashes, Record};
use tusk::source::{Item, Location, ObjectMeta};
use tusk::store::postgres::PgStore;
use tusk::store::Backend;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: queue_bench postgres://… [JOBS] [WORKERS] [BATCH]");
    let jobs: usize = args.next().map(|s| s.parse().expect("JOBS")).unwrap_or(20_000);
    let workers: usize = args.next().map(|s| s.parse().expect("WORKERS")).unwrap_or(8);
    let batch: i64 = args.next().map(|s| s.parse().expect("BATCH")).unwrap_or(32);
    let store = PgStore::open(&url).await.expect("open the store");
    let queue = Queue::new(store.clone());
    let items: Vec<(Item, String)> = (0..jobs)
        .map(|i| {
            let uri = format!("s3://bench/{i:08}.jpg");
            (Item { location: Location::from_text(&uri), uri, fingerprint: None, meta: ObjectMeta::default() }, "etag".to_string())
        })
        .collect();
    let started = Instant::now();
    queue.enqueue(&items).await.expect("enqueue");
    let enqueue_s = started.elapsed().as_secs_f64();
    let (run_id, _) = store.begin_run("queue_bench", &[]).await.expect("run");
    let model_ids = Arc::new(BTreeMap::new());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (queue, model_ids) = (queue.clone(), model_ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            while let Some(lease) = queue.claim(&format!("bench-{w}"), batch, Duration::from_secs(30)).await.expect("claim") {
                let records: Vec<Record> = lease
                    .jobs
                    .iter()
                    .map(|j| {
                        let mut r = Record::new(j.item.uri.clone(), Some(j.fingerprint.clone()), j.item.meta.clone());
                        r.width = Some(1);
                        r.height = Some(1);
                        r.hashes = Some(Hashes::default());
                        r
                    })
                    .collect();
                let c = queue.complete(&lease, run_id, &records, &model_ids, &RetryPolicy::default()).await.expect("complete");
                done += c.stored;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("worker");
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(total, jobs, "every job completed once");
    println!(
        "queue: {jobs} jobs enqueued in {enqueue_s:.2} s ({:.0} jobs/s); claimed + completed by {workers} workers (batch {batch}) in {secs:.2} s: {:.0} jobs/s",
        jobs as f64 / enqueue_s,
        jobs as f64 / secs
    );
}
