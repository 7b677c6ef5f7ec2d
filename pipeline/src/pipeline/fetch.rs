//! Stage 3: read each job's bytes (local file or S3 object) with bounded concurrency, one task
//! per fetcher; a failed read becomes a failure record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_channel::{Receiver, Sender};

use super::{Fetched, Job, SinkMsg};
use crate::record::Record;
use crate::source::fetch::Fetcher;

/// Fetches jobs until the queue ends or `stop` is set.
pub(super) async fn run(jobs: Receiver<Job>, fetched: Sender<Fetched>, out: Sender<SinkMsg>, fetcher: Arc<Fetcher>, max_bytes: u64, stop: Arc<AtomicBool>) {
    while let Ok(Job { item, fingerprint }) = jobs.recv().await {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let sent = match fetcher.get(&item.location, max_bytes).await {
            Ok(bytes) => fetched.send(Fetched { item, fingerprint, bytes }).await.is_ok(),
            Err(failure) => {
                tracing::debug!(uri = %item.uri, reason = %failure.reason, "{}", failure.message);
                let record = Record::failed(item.uri, Some(fingerprint), item.meta, failure);
                out.send(SinkMsg::Record(Box::new(record))).await.is_ok()
            }
        };
        if !sent {
            break;
        }
    }
}
