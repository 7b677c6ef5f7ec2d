//! Stage 2: fingerprint each listed object, skip what the store says is done, queue the rest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_channel::{Receiver, Sender};

use super::{InFlight, Job, ScanError, SinkMsg};
use crate::record::{Failure, Record, Stage};
use crate::source::fetch::Fetcher;
use crate::source::{Entry, Kind};
use crate::store::Store;

/// What the planner consults.
pub(super) struct Planner {
    /// Asked whether an object version is done.
    pub store: Store,
    /// The model ids an object of each kind needs a result from.
    pub needed: HashMap<Kind, Vec<i64>>,
    /// Fingerprints objects the source did not.
    pub fetcher: Arc<Fetcher>,
    /// Uris queued and not yet written (a `--follow` pass must not queue them again).
    pub in_flight: InFlight,
    /// Set on Ctrl-C.
    pub stop: Arc<AtomicBool>,
}

impl Planner {
    /// Runs until the entries end, the job queue closes or `stop` is set.
    pub(super) async fn run(self, entries: Receiver<Entry>, jobs: Sender<Job>, out: Sender<SinkMsg>) -> Result<(), ScanError> {
        let failed = |record: Record| SinkMsg::Record(Box::new(record));
        while let Ok(entry) = entries.recv().await {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let item = match entry {
                Entry::Item(item) => item,
                Entry::Rejected(r) => {
                    let failure = Failure { stage: Stage::Source, reason: r.reason.into(), message: r.message };
                    if out.send(failed(Record::failed(r.uri, None, Default::default(), failure))).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let fingerprint = match self.fetcher.fingerprint(&item).await {
                Ok(f) => f,
                Err(failure) => {
                    if out.send(failed(Record::failed(item.uri, None, item.meta, failure))).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let queued = self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).contains(&item.uri);
            let sent = if queued {
                true
            } else if self.store.is_done(&item.uri, &fingerprint, &self.needed[&item.meta.kind]).await? {
                out.send(SinkMsg::Skipped).await.is_ok()
            } else {
                self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(item.uri.clone());
                jobs.send(Job { item, fingerprint }).await.is_ok()
            };
            if !sent {
                break;
            }
        }
        Ok(())
    }
}
