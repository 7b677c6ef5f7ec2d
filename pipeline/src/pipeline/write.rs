//! Stage 6: the single writer. Batches records into store transactions, JSONL lines and part
//! files, and counts what happened.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::Receiver;

use super::{InFlight, Progress, ScanError, SinkMsg, Summary};
use crate::record::Record;
use crate::sink::{JsonlSink, S3Parts};
use crate::store::Store;

/// Everything the writer writes to.
pub(super) struct Outputs {
    /// The store of record.
    pub store: Store,
    /// This run.
    pub run_id: i64,
    /// Model ids by name.
    pub model_ids: BTreeMap<String, i64>,
    /// The JSONL stream and its path (for errors).
    pub jsonl: Option<(JsonlSink, String)>,
    /// Part files on object storage.
    pub parts: Option<S3Parts>,
}

/// When the writer flushes what it holds.
pub(super) struct FlushPolicy {
    /// Flush at this many records.
    pub max_records: usize,
    /// Flush when the oldest record waited this long.
    pub max_age: Duration,
    /// Flush when nothing else is waiting.
    pub when_idle: bool,
}

impl Outputs {
    /// Streams first (part file, JSONL), then the store: a crash in between repeats lines in
    /// the streams but never loses a stored result from them.
    async fn write(&mut self, records: &[Record]) -> Result<(), ScanError> {
        if let Some(parts) = self.parts.as_mut() {
            parts.put(records).await.map_err(ScanError::Out)?;
        }
        if let Some((j, path)) = self.jsonl.as_mut() {
            j.write(records).map_err(|source| ScanError::Jsonl {
                path: path.clone(),
                source,
            })?;
        }
        self.store.write(self.run_id, records, &self.model_ids).await?;
        Ok(())
    }
}

/// The single writer: batches records into store transactions, JSONL lines and part files.
pub(super) async fn sink(
    input: Receiver<SinkMsg>,
    mut outputs: Outputs,
    policy: FlushPolicy,
    in_flight: InFlight,
    progress: Arc<dyn Progress>,
) -> Result<Summary, ScanError> {
    let mut summary = Summary::default();
    let mut pending: Vec<Record> = Vec::new();
    let mut oldest = Instant::now();
    loop {
        let next = tokio::time::timeout(Duration::from_millis(100), input.recv()).await;
        let closed = match next {
            Ok(Ok(SinkMsg::Skipped)) => {
                summary.skipped += 1;
                progress.skipped();
                false
            }
            Ok(Ok(SinkMsg::Record(r))) => {
                if pending.is_empty() {
                    oldest = Instant::now();
                }
                pending.push(*r);
                false
            }
            Ok(Err(_)) => true,
            Err(_) => false,
        };
        let due = closed
            || pending.len() >= policy.max_records
            || oldest.elapsed() >= policy.max_age
            || (policy.when_idle && next_is_idle(&input));
        if due && !pending.is_empty() {
            outputs.write(&pending).await?;
            let mut queued = in_flight.lock().unwrap_or_else(|e| e.into_inner());
            for r in pending.drain(..) {
                queued.remove(&r.uri);
                match &r.failure {
                    Some(f) => {
                        summary.failed += 1;
                        *summary.failures.entry(format!("{}/{}", f.stage.as_str(), f.reason)).or_default() += 1;
                    }
                    None => {
                        summary.processed += 1;
                        summary.flagged += u64::from(r.flagged());
                        let mut labels: Vec<&str> = r.detections.iter().filter(|d| d.flagged).map(|d| d.label.as_str()).collect();
                        labels.sort_unstable();
                        labels.dedup();
                        for l in labels {
                            *summary.by_label.entry(l.to_string()).or_default() += 1;
                        }
                    }
                }
                progress.stored(&r);
            }
        }
        if closed {
            return Ok(summary);
        }
    }
}

/// True when nothing is waiting, so a partial batch is worth writing now.
fn next_is_idle(input: &Receiver<SinkMsg>) -> bool {
    input.is_empty()
}
