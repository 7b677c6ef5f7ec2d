//! Stage 4 (blocking threads): decode, hash (with views and local features for listing
//! photos) and preprocess one object per model that applies to it. A decoder panic becomes a
//! failure record, never a lost object.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_channel::{Receiver, Sender};
use image::RgbImage;

use super::{Fetched, Prepared, SinkMsg};
use crate::decode::{decode, DecodeLimits};
use crate::hash::PerceptualHasher;
use crate::infer::manifest::Task;
use crate::infer::{preprocess, ModelManifest};
use crate::record::{Failure, Record, Stage};
use crate::reuse::features::{FeatureExtractor, ObjectFeatures};
use crate::source::Kind;

/// Per-thread scratch state of a decode worker.
pub(super) struct DecodeScratch {
    hasher: PerceptualHasher,
    /// ORB for listing photos; made on first use (`None` inside when OpenCV failed to make it).
    features: Option<Option<FeatureExtractor>>,
}

impl DecodeScratch {
    /// Fresh state (the feature extractor is made on first use).
    pub(super) fn new() -> Self {
        DecodeScratch { hasher: PerceptualHasher::new(), features: None }
    }

    /// Local features of a listing photo for verifying re-post matches; `None` (logged) when
    /// OpenCV fails, which leaves the object to the strict hash rule.
    fn features(&mut self, uri: &str, photo: &RgbImage) -> Option<Arc<ObjectFeatures>> {
        let extractor = self.features.get_or_insert_with(|| {
            FeatureExtractor::new().map_err(|e| tracing::warn!("no local features (re-post verification falls back to strict hashes): {e}")).ok()
        });
        match extractor.as_mut()?.extract(photo) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                tracing::warn!(uri, "local features failed: {e}");
                None
            }
        }
    }
}

/// What the decode workers need besides the models: decoder limits, and whether to keep the
/// decoded image for review overlays.
pub(super) struct DecodeSettings {
    /// Decoder limits.
    pub limits: DecodeLimits,
    /// Keep the decoded image (for review overlays).
    pub keep_images: bool,
}

/// Prepares fetched objects until the queue ends or `stop` is set.
pub(super) fn decode_worker(
    jobs: Receiver<Fetched>,
    prepared: Sender<Prepared>,
    out: Sender<SinkMsg>,
    manifests: &[ModelManifest],
    by_kind: &HashMap<Kind, Vec<usize>>,
    settings: &DecodeSettings,
    stop: &AtomicBool,
) {
    let mut scratch = DecodeScratch::new();
    while let Ok(job) = jobs.recv_blocking() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let outcome = prepare_one(job, manifests, by_kind, settings, &mut scratch);
        let sent = match outcome {
            Ok(p) if !p.tensors.is_empty() => prepared.send_blocking(p).is_ok(),
            Ok(p) => out.send_blocking(SinkMsg::Record(Box::new(p.record))).is_ok(),
            Err(record) => {
                if let Some(f) = &record.failure {
                    tracing::debug!(uri = %record.uri, stage = f.stage.as_str(), reason = %f.reason, "{}", f.message);
                }
                out.send_blocking(SinkMsg::Record(record)).is_ok()
            }
        };
        if !sent {
            break;
        }
    }
}

/// Prepares one fetched object for the models of its kind; a panic inside (a decoder bug on
/// hostile bytes) becomes a failure record, and the scratch state is made afresh.
pub(super) fn prepare_one(
    job: Fetched,
    manifests: &[ModelManifest],
    by_kind: &HashMap<Kind, Vec<usize>>,
    settings: &DecodeSettings,
    scratch: &mut DecodeScratch,
) -> Result<Prepared, Box<Record>> {
    let uri = job.item.uri.clone();
    let (fingerprint, meta) = (job.fingerprint.clone(), job.item.meta.clone());
    let models = &by_kind[&job.item.meta.kind];
    std::panic::catch_unwind(AssertUnwindSafe(|| prepare(job, manifests, models, settings, scratch))).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "decoder panicked".into());
        *scratch = DecodeScratch::new();
        Err(Box::new(Record::failed(uri, Some(fingerprint), meta, Failure { stage: Stage::Decode, reason: "decoder_panic".into(), message })))
    })
}

/// Decodes, hashes and preprocesses one object.
fn prepare(
    job: Fetched,
    manifests: &[ModelManifest],
    models: &[usize],
    settings: &DecodeSettings,
    scratch: &mut DecodeScratch,
) -> Result<Prepared, Box<Record>> {
    let limits = &settings.limits;
    let Fetched { item, fingerprint, bytes } = job;
    let fail = |failure: Failure| Box::new(Record::failed(item.uri.clone(), Some(fingerprint.clone()), item.meta.clone(), failure));
    let decoded = decode(&bytes, limits).map_err(|e| {
        fail(Failure {
            stage: Stage::Decode,
            reason: e.reason().into(),
            message: e.to_string(),
        })
    })?;
    drop(bytes);
    let rgb = decoded.rgb;
    let kind = item.meta.kind;
    let uri = item.uri.clone();
    let tensors = models
        .iter()
        .map(|&i| {
            let (tensor, placement) = preprocess::prepare(&rgb, &manifests[i].input);
            (i, tensor, placement)
        })
        .collect();
    let mut record = Record::new(item.uri, Some(fingerprint), item.meta);
    record.width = Some(rgb.width());
    record.height = Some(rgb.height());
    if kind == Kind::Listing {
        let (hashes, views, photo) = scratch.hasher.hash_with_views(&rgb);
        record.hashes = Some(hashes);
        record.views = views;
        record.features = scratch.features(&uri, &photo);
    } else {
        record.hashes = Some(scratch.hasher.hash(&rgb));
    }
    let image = (settings.keep_images && models.iter().any(|&i| manifests[i].task == Task::Detect)).then_some(rgb);
    Ok(Prepared { record, tensors, image })
}

