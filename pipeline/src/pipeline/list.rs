//! Stage 1: list the source into the entry queue, once or (with `--follow`) pass after pass.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_channel::Sender;

use crate::source::fetch::Fetcher;
use crate::source::{Entry, SourceSpec};

/// Starts listing. With `follow`, every pass after the first waits `interval` (ending early
/// on stop).
pub(super) fn spawn(
    source: SourceSpec,
    entries: Sender<Entry>,
    fetcher: Arc<Fetcher>,
    follow: Option<Duration>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        loop {
            fetcher.list(&source, &entries, &stop).await?;
            let Some(interval) = follow else { return Ok(()) };
            let until = tokio::time::Instant::now() + interval;
            while tokio::time::Instant::now() < until {
                if stop.load(Ordering::Relaxed) || entries.is_closed() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            tracing::info!("follow: listing {} again", source.describe());
        }
    })
}
