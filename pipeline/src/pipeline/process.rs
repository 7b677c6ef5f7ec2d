//! Decode → hash → infer for objects already in hand, with the scan's own stage code
//! ([`prepare`](super::prepare), [`batch`](super::batch)): what a fleet worker does with each
//! claimed batch, and what a service does with each request. Model sessions are loaded once
//! and pooled; a caller waits for a free set instead of loading more. The work runs on the
//! processor's own [`CpuPool`] threads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::batch::{self, BoxOutputs};
use super::cpu::{CpuPool, Panicked};
use super::prepare::{self, DecodeScratch, DecodeSettings};
use super::{Fetched, ScanError};
use crate::decode::DecodeLimits;
use crate::infer::{Model, ModelManifest};
use crate::record::Record;
use crate::source::{Item, Kind};

/// Loaded models and the scratch state to run objects through them.
pub struct Processor {
    manifests: Arc<Vec<ModelManifest>>,
    by_kind: Arc<HashMap<Kind, Vec<usize>>>,
    settings: Arc<DecodeSettings>,
    outputs: Arc<BoxOutputs>,
    sessions: Mutex<Vec<Vec<Model>>>,
    free: tokio::sync::Semaphore,
    scratch: Arc<Mutex<Vec<DecodeScratch>>>,
    cpu: CpuPool,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor").field("models", &self.manifests.iter().map(|m| &m.name).collect::<Vec<_>>()).finish()
    }
}

impl Processor {
    /// Loads `sets` session sets of these models (each with `threads` intra-op threads), and
    /// starts one CPU thread per core at the calling thread's priority.
    pub async fn load(manifests: Vec<ModelManifest>, sets: usize, threads: usize, limits: DecodeLimits) -> Result<Self, ScanError> {
        let sets = sets.max(1);
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let cpu = CpuPool::new(cores.max(sets)).map_err(|e| ScanError::Worker(format!("cannot start the CPU threads: {e}")))?;
        let to_load = manifests.clone();
        let sessions: Vec<Vec<Model>> = tokio::task::spawn_blocking(move || {
            (0..sets)
                .map(|_| to_load.iter().map(|m| Model::load(m, threads.max(1))).collect::<Result<Vec<_>, _>>())
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| ScanError::Worker(e.to_string()))??;
        let by_kind = [Kind::Listing, Kind::Xray]
            .into_iter()
            .map(|kind| (kind, (0..manifests.len()).filter(|i| manifests[*i].kinds.contains(&kind)).collect()))
            .collect();
        Ok(Self {
            manifests: Arc::new(manifests),
            by_kind: Arc::new(by_kind),
            settings: Arc::new(DecodeSettings { limits, keep_images: false }),
            outputs: Arc::new(BoxOutputs { overlay: None, floor: None }),
            sessions: Mutex::new(sessions),
            free: tokio::sync::Semaphore::new(sets),
            scratch: Arc::default(),
            cpu,
        })
    }

    /// The models every object of a kind gets a result from.
    pub fn manifests(&self) -> &[ModelManifest] {
        &self.manifests
    }

    /// Runs each object (item, fingerprint, bytes) to a record: a result, or a failure record
    /// with its reason. Records come back in the order given.
    pub async fn process(&self, objects: Vec<(Item, String, Vec<u8>)>) -> Vec<Record> {
        // Decode, hash and preprocess in parallel on the blocking pool.
        let mut tasks = Vec::with_capacity(objects.len());
        for (item, fingerprint, bytes) in objects {
            let (manifests, by_kind, settings, pool) = (self.manifests.clone(), self.by_kind.clone(), self.settings.clone(), self.scratch.clone());
            let uri = item.uri.clone();
            let meta = item.meta.clone();
            let fp = fingerprint.clone();
            let task = self.cpu.spawn(move || {
                let mut scratch = pool.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_else(DecodeScratch::new);
                let out = prepare::prepare_one(Fetched { item, fingerprint, bytes }, &manifests, &by_kind, &settings, &mut scratch);
                pool.lock().unwrap_or_else(|e| e.into_inner()).push(scratch);
                out
            });
            tasks.push((task, uri, fp, meta));
        }
        let mut slots: Vec<Option<Record>> = Vec::with_capacity(tasks.len());
        let mut to_infer = Vec::new();
        for (i, (task, uri, fingerprint, meta)) in tasks.into_iter().enumerate() {
            match task.await {
                Ok(Ok(p)) if !p.tensors.is_empty() => {
                    slots.push(None);
                    to_infer.push((i, p));
                }
                Ok(Ok(p)) => slots.push(Some(p.record)),
                Ok(Err(failed)) => slots.push(Some(*failed)),
                Err(e) => slots.push(Some(Record::failed(
                    uri,
                    Some(fingerprint),
                    meta,
                    crate::record::Failure { stage: crate::record::Stage::Decode, reason: "decoder_panic".into(), message: e.to_string() },
                ))),
            }
        }
        if !to_infer.is_empty() {
            let (positions, prepared): (Vec<usize>, Vec<_>) = to_infer.into_iter().unzip();
            let records = self.infer(prepared).await;
            for (pos, r) in positions.into_iter().zip(records) {
                slots[pos] = Some(r);
            }
        }
        slots.into_iter().map(|r| r.expect("every slot filled")).collect()
    }

    /// Runs other CPU-bound work of a request (e.g. reading a DICOS object) on the same
    /// threads, at their priority.
    pub async fn run_cpu<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Panicked> {
        self.cpu.spawn(f).await
    }

    /// Runs prepared objects on a free session set (waiting for one).
    async fn infer(&self, prepared: Vec<super::Prepared>) -> Vec<Record> {
        let _permit = self.free.acquire().await.expect("the semaphore is never closed");
        let mut models = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).pop().expect("a permit means a free set");
        let outputs = self.outputs.clone();
        let (models, records) = self
            .cpu
            .spawn(move || {
                let records = batch::run_batch(&mut models, prepared, &outputs);
                (models, records)
            })
            .await
            .expect("inference does not panic");
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).push(models);
        records
    }
}
