//! Stage 5: inference. Each worker owns its model sessions, gathers small batches, runs them
//! on a blocking thread and turns outputs into scores and boxes (and review overlays).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use image::RgbImage;

use super::{Prepared, SinkMsg};
use crate::infer::detect::{self, DecodeParams};
use crate::infer::manifest::Task;
use crate::infer::preprocess::{self, Placement};
use crate::infer::Model;
use crate::overlay;
use crate::record::{Detection, Failure, Record, Stage};

/// Collects small batches, runs them on this worker's own sessions, forwards records.
pub(super) async fn infer_worker(
    prepared: Receiver<Prepared>,
    out: Sender<SinkMsg>,
    mut models: Vec<Model>,
    outputs: Arc<BoxOutputs>,
    batch: usize,
    wait: Duration,
) {
    while let Ok(first) = prepared.recv().await {
        let mut items = vec![first];
        let deadline = tokio::time::Instant::now() + wait;
        while items.len() < batch {
            match tokio::time::timeout_at(deadline, prepared.recv()).await {
                Ok(Ok(p)) => items.push(p),
                _ => break,
            }
        }
        let outputs = outputs.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let records = run_batch(&mut models, items, &outputs);
            (models, records)
        })
        .await;
        let records;
        (models, records) = match joined {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("inference worker died: {e}");
                return;
            }
        };
        for r in records {
            if out.send(SinkMsg::Record(Box::new(r))).await.is_err() {
                return;
            }
        }
    }
}

/// What the inference workers make of detector boxes beyond the records.
pub(super) struct BoxOutputs {
    /// Folder for review images of flagged objects.
    pub overlay: Option<PathBuf>,
    /// Keep boxes down to this score (evaluation).
    pub floor: Option<f32>,
}

/// Runs every model over the items it applies to, in batches, and fills in the records; then
/// writes review images for flagged objects when asked.
pub(super) fn run_batch(models: &mut [Model], items: Vec<Prepared>, outputs: &BoxOutputs) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::with_capacity(items.len());
    let mut tensors: Vec<Vec<(usize, Vec<f32>, Placement)>> = Vec::with_capacity(items.len());
    let mut images: Vec<Option<RgbImage>> = Vec::with_capacity(items.len());
    for p in items {
        records.push(p.record);
        tensors.push(p.tensors);
        images.push(p.image);
    }
    for (mi, model) in models.iter_mut().enumerate() {
        let users: Vec<usize> = (0..records.len())
            .filter(|&r| tensors[r].iter().any(|(m, _, _)| *m == mi))
            .collect();
        for chunk in users.chunks(model.max_batch.max(1)) {
            let mut data = Vec::with_capacity(chunk.len() * preprocess::tensor_len(&model.manifest.input));
            for &r in chunk {
                let t = &tensors[r].iter().find(|(m, _, _)| *m == mi).expect("filtered above").1;
                data.extend_from_slice(t);
            }
            let result = match model.manifest.task {
                Task::Classify => model.run(&data, chunk.len()).map(|probs| {
                    for (&r, p) in chunk.iter().zip(probs) {
                        classified(model, &mut records[r], &p);
                    }
                }),
                Task::Detect => model.run_detect(&data, chunk.len()).map(|(outs, anchors)| {
                    for (&r, out) in chunk.iter().zip(outs) {
                        let placement = tensors[r].iter().find(|(m, _, _)| *m == mi).expect("filtered above").2;
                        detected(model, &mut records[r], &out, anchors, &placement, outputs.floor);
                    }
                }),
            };
            if let Err(e) = result {
                tracing::warn!(model = %model.manifest.name, "inference failed: {e}");
                for &r in chunk {
                    records[r].failure = Some(Failure {
                        stage: Stage::Infer,
                        reason: "inference_error".into(),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    for r in &mut records {
        if r.failure.is_some() {
            r.scores.clear();
            r.detections.clear();
        }
    }
    if let Some(dir) = &outputs.overlay {
        for (record, image) in records.iter().zip(images) {
            let Some(image) = image else { continue };
            if record.detections.iter().any(|d| d.flagged && d.bbox.is_some()) {
                if let Err(e) = overlay::write(dir, record, image) {
                    tracing::warn!(uri = %record.uri, "review image not written: {e}");
                }
            }
        }
    }
    records
}

/// Fills in a classifier's label scores and the labels at or above threshold.
fn classified(model: &Model, record: &mut Record, probabilities: &[f32]) {
    let scores = model.label_scores(probabilities);
    let name = model.manifest.name.clone();
    let mut by_label = BTreeMap::new();
    for (label, score) in model.manifest.labels.iter().zip(scores) {
        by_label.insert(label.name.clone(), score);
        if score >= label.threshold {
            record.detections.push(Detection {
                model: name.clone(),
                label: label.name.clone(),
                score,
                bbox: None,
                flagged: true,
            });
        }
    }
    record.scores.insert(name, by_label);
}

/// Fills in a detector's boxes (at or above each label's threshold, or down to `floor`) and,
/// per label, the best box score anywhere in the image as the image's score.
fn detected(model: &Model, record: &mut Record, out: &[f32], anchors: usize, placement: &Placement, floor: Option<f32>) {
    let m = &model.manifest;
    let floors: Vec<f32> = m.labels.iter().map(|l| floor.map_or(l.threshold, |f| f.min(l.threshold))).collect();
    let params = DecodeParams { floor: 0.0, iou: m.output.nms_iou, max_boxes: m.output.max_boxes };
    let size = (record.width.unwrap_or(0), record.height.unwrap_or(0));
    let hits = detect::decode(out, anchors, &m.labels, &floors, &params, placement, size);
    let best = detect::label_maxima(out, anchors, &m.labels);
    record.scores.insert(m.name.clone(), m.labels.iter().map(|l| l.name.clone()).zip(best).collect());
    for h in hits {
        let label = &m.labels[h.label];
        record.detections.push(Detection {
            model: m.name.clone(),
            label: label.name.clone(),
            score: h.score,
            bbox: Some(h.bbox),
            flagged: h.score >= label.threshold,
        });
    }
}

