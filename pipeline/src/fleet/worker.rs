//! `tusk worker`: claim a batch, keep its lease alive, fetch → decode → hash → infer it with
//! the scan's stage code ([`Processor`]), then store the results and complete the jobs in one
//! fenced transaction. Database and object-store outages are waited out, never fatal.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::queue::{Completed, Lease, Queue, RetryPolicy};
use crate::pipeline::{Processor, ScanError};
use crate::record::Record;
use crate::source::fetch::Fetcher;
use crate::store::{Backend, RunCounts, RunStatus, StoreError};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Name in `jobs.lease_owner` (host and pid by default).
    pub name: String,
    /// Jobs claimed at a time.
    pub batch: i64,
    /// Lease length; heartbeats renew it every third of it.
    pub lease: Duration,
    /// Wait between polls of an empty queue.
    pub poll: Duration,
    /// Exit once no job is ready or leased.
    pub until_empty: bool,
    /// Largest object read.
    pub max_bytes: u64,
    /// Downloads in flight at once.
    pub fetch_concurrency: usize,
    /// Read retries before the dead letter.
    pub retry: RetryPolicy,
}

/// What a worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Jobs stored (results or final failures).
    pub stored: u64,
    /// Jobs sent back for a retry.
    pub retried: u64,
    /// Jobs whose lease was lost before commit (nothing written for them).
    pub fenced: u64,
}

/// Runs until `stop` is set (the batch in flight is finished and committed first) or, with
/// `until_empty`, until the queue is empty.
pub async fn run(queue: Queue, store: Arc<dyn Backend>, processor: Processor, fetcher: Arc<Fetcher>, opts: WorkerOptions, stop: Arc<AtomicBool>) -> Result<WorkerSummary, ScanError> {
    let source = format!("worker {}", opts.name);
    let (run_id, ids) = retrying("register the run", &stop, || store.begin_run(&source, processor.manifests())).await?;
    let model_ids: BTreeMap<String, i64> = processor.manifests().iter().map(|m| m.name.clone()).zip(ids).collect();
    let mut summary = WorkerSummary::default();
    while !stop.load(Ordering::Relaxed) {
        let lease = match queue.claim(&opts.name, opts.batch.max(1), opts.lease).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                if opts.until_empty {
                    match queue.depth().await {
                        Ok(d) if d.ready == 0 && d.leased == 0 => break,
                        Ok(_) => {}
                        Err(e) => tracing::warn!("queue depth: {e}; retrying"),
                    }
                }
                tokio::time::sleep(opts.poll).await;
                continue;
            }
            Err(e) => {
                tracing::warn!("claiming jobs failed: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let heartbeat = tokio::spawn(keep_alive(queue.clone(), lease.token, opts.lease));
        let records = process(&lease, &processor, &fetcher, &opts).await;
        heartbeat.abort();
        let done = commit(&queue, &lease, run_id, &records, &model_ids, &opts).await;
        tracing::info!(token = lease.token, stored = done.stored, retried = done.retried, fenced = done.fenced, "batch of {} done", lease.jobs.len());
        if done.fenced > 0 {
            tracing::warn!(token = lease.token, "lease lost before commit: {} job(s) fenced off, nothing written for them", done.fenced);
        }
        summary.stored += done.stored as u64;
        summary.retried += done.retried as u64;
        summary.fenced += done.fenced as u64;
    }
    let status = if stop.load(Ordering::Relaxed) { RunStatus::Interrupted } else { RunStatus::Done };
    let counts = RunCounts { processed: summary.stored, skipped: 0, failed: 0 };
    if let Err(e) = store.finish_run(run_id, status, counts).await {
        tracing::warn!("finishing the run record failed: {e}");
    }
    Ok(summary)
}

/// Fetches the lease's objects (bounded concurrency) and runs them through the models; one
/// record per job, failures included.
async fn process(lease: &Lease, processor: &Processor, fetcher: &Arc<Fetcher>, opts: &WorkerOptions) -> Vec<Record> {
    let permits = Arc::new(tokio::sync::Semaphore::new(opts.fetch_concurrency.max(1)));
    let mut fetches = tokio::task::JoinSet::new();
    for job in lease.jobs.iter().cloned() {
        let (fetcher, permits, max_bytes) = (fetcher.clone(), permits.clone(), opts.max_bytes);
        fetches.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("never closed");
            let got = fetcher.get(&job.item.location, max_bytes).await;
            (job, got)
        });
    }
    let mut failed = Vec::new();
    let mut ready = Vec::new();
    while let Some(joined) = fetches.join_next().await {
        let Ok((job, got)) = joined else { continue };
        match got {
            Ok(bytes) => ready.push((job.item, job.fingerprint, bytes)),
            Err(failure) => failed.push(Record::failed(job.item.uri, Some(job.fingerprint), job.item.meta, failure)),
        }
    }
    let mut records = processor.process(ready).await;
    records.extend(failed);
    records
}

/// Renews the lease every third of its length until aborted.
async fn keep_alive(queue: Queue, token: i64, lease: Duration) {
    loop {
        tokio::time::sleep(lease / 3).await;
        match queue.heartbeat(token, lease).await {
            Ok(0) => {
                tracing::warn!(token, "lease lost: the jobs were taken over");
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(token, "heartbeat failed: {e}"),
        }
    }
}

/// Completes the batch, retrying through database outages while the lease can still hold;
/// once it cannot, the jobs go to whoever claims them next.
async fn commit(queue: &Queue, lease: &Lease, run_id: i64, records: &[Record], model_ids: &BTreeMap<String, i64>, opts: &WorkerOptions) -> Completed {
    let give_up = tokio::time::Instant::now() + opts.lease * 2;
    let mut wait = Duration::from_millis(200);
    loop {
        match queue.complete(lease, run_id, records, model_ids, &opts.retry).await {
            Ok(done) => return done,
            Err(e) if tokio::time::Instant::now() < give_up => {
                tracing::warn!(token = lease.token, "commit failed: {e}; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(token = lease.token, "commit failed: {e}; the jobs will be claimed again");
                return Completed { fenced: lease.jobs.len(), ..Default::default() };
            }
        }
    }
}

/// Runs `op` until it succeeds or `stop` is set, waiting out outages.
async fn retrying<T, F, Fut>(what: &str, stop: &AtomicBool, mut op: F) -> Result<T, ScanError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut wait = Duration::from_millis(200);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if !stop.load(Ordering::Relaxed) => {
                tracing::warn!("{what} failed: {e}; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
