//! `tusk enqueue`: list a folder, manifest or S3 prefix and add one job per object version
//! not queued before; with `--follow`, keep listing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::queue::Queue;
use crate::source::fetch::Fetcher;
use crate::source::{Entry, SourceSpec};
use crate::store::StoreError;

/// What one listing pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// Objects listed.
    pub listed: u64,
    /// Jobs added (new objects or new versions).
    pub added: u64,
    /// Entries that could not become jobs (bad manifest lines, unreadable files).
    pub rejected: u64,
}

/// Jobs inserted per statement.
const CHUNK: usize = 500;

/// Lists the source once (or, with `follow`, again after each interval until `stop`).
pub async fn enqueue(queue: &Queue, fetcher: Arc<Fetcher>, source: &SourceSpec, follow: Option<Duration>, stop: Arc<AtomicBool>) -> Result<Enqueued, String> {
    let mut total = Enqueued::default();
    loop {
        let pass = one_pass(queue, fetcher.clone(), source, stop.clone()).await?;
        tracing::info!(listed = pass.listed, added = pass.added, rejected = pass.rejected, "listed {}", source.describe());
        total.listed += pass.listed;
        total.added += pass.added;
        total.rejected += pass.rejected;
        let Some(interval) = follow else { return Ok(total) };
        let until = tokio::time::Instant::now() + interval;
        while tokio::time::Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return Ok(total);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(total);
        }
    }
}

async fn one_pass(queue: &Queue, fetcher: Arc<Fetcher>, source: &SourceSpec, stop: Arc<AtomicBool>) -> Result<Enqueued, String> {
    let (tx, rx) = async_channel::bounded::<Entry>(CHUNK * 2);
    let lister = {
        let (fetcher, source, stop) = (fetcher.clone(), source.clone(), stop.clone());
        tokio::spawn(async move { fetcher.list(&source, &tx, &stop).await })
    };
    let mut out = Enqueued::default();
    let mut pending = Vec::with_capacity(CHUNK);
    let flush = |pending: &mut Vec<_>| {
        let batch = std::mem::take(pending);
        async move { queue.enqueue(&batch).await }
    };
    while let Ok(entry) = rx.recv().await {
        let item = match entry {
            Entry::Item(item) => item,
            Entry::Rejected(r) => {
                tracing::warn!(uri = %r.uri, reason = r.reason, "not queued: {}", r.message);
                out.rejected += 1;
                continue;
            }
        };
        out.listed += 1;
        match fetcher.fingerprint(&item).await {
            Ok(fp) => pending.push((item, fp)),
            Err(f) => {
                tracing::warn!(uri = %item.uri, reason = %f.reason, "not queued: {}", f.message);
                out.rejected += 1;
            }
        }
        if pending.len() >= CHUNK {
            out.added += flush(&mut pending).await.map_err(|e: StoreError| e.to_string())?;
        }
    }
    out.added += flush(&mut pending).await.map_err(|e: StoreError| e.to_string())?;
    lister.await.map_err(|e| e.to_string())??;
    Ok(out)
}
