//! What reviewers decided, put to use: each model's precision on reviewed flags (per version and
//! label, with the reasons for rejections), and the reviewed pictures exported as labelled
//! training data in the layouts `scripts/train` (listing photos, CSV) and `scripts/xray` (scans,
//! COCO plus the detector's manifest/boxes CSVs) read. Only standing decisions count: the
//! latest confirm or reject of an object that no undo took back.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::eval::interval::clopper_pearson_95;
use crate::reuse::{self, Catalog, HashKind, Rule};
use crate::store::review::standing;
use crate::store::{Decision, DecisionFilter, Store, StoreError};

/// Where a stored object's picture is on this machine: a `tusk serve` upload (kept under
/// `uploads` by content hash), or a relative uri under one of `images` (never outside it).
pub fn find_picture(uri: &str, uploads: Option<&Path>, images: &[PathBuf]) -> Option<PathBuf> {
    if uri.starts_with("upload://") {
        let sha = uri.rsplit('/').next().unwrap_or("");
        let p = uploads?.join(sha);
        return (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) && p.is_file()).then_some(p);
    }
    let rel = Path::new(uri);
    if uri.contains("://") || rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return None;
    }
    images.iter().map(|dir| dir.join(rel)).find(|p| p.is_file())
}

/// One model version's precision on one label, as reviewers found it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReviewedPrecision {
    /// The model that flagged.
    pub model: String,
    /// Its version.
    pub version: String,
    /// The label flagged.
    pub label: String,
    /// Flags reviewers confirmed.
    pub confirmed: u64,
    /// Flags reviewers rejected.
    pub rejected: u64,
    /// confirmed / (confirmed + rejected).
    pub precision: f64,
    /// Its exact 95 % interval ([lower, upper]; [0, 1] before any decision): 2 of 3 confirmed
    /// says little yet, and whoever acts on the model's flags should see that.
    pub precision_interval_95: [f64; 2],
    /// Rejections by reason.
    pub reasons: BTreeMap<String, u64>,
}

/// The standing decisions of the store, oldest first.
async fn standing_decisions(store: &Store) -> Result<Vec<Decision>, StoreError> {
    let all = store.decisions(&DecisionFilter::default()).await?;
    Ok(standing(&all).into_values().cloned().collect())
}

/// Precision per model, version and label over the standing decisions (each is stamped with
/// the model, version and label that flagged the object when it was decided).
pub async fn precision(store: &Store) -> Result<Vec<ReviewedPrecision>, StoreError> {
    let mut by: BTreeMap<(String, String, String), ReviewedPrecision> = BTreeMap::new();
    for d in standing_decisions(store).await? {
        let (Some(model), Some(version), Some(label)) = (d.model.clone(), d.model_version.clone(), d.label.clone()) else { continue };
        let row = by.entry((model.clone(), version.clone(), label.clone())).or_insert_with(|| ReviewedPrecision { model, version, label, ..Default::default() });
        if d.action == "confirm" {
            row.confirmed += 1;
        } else {
            row.rejected += 1;
            *row.reasons.entry(d.reason.clone().unwrap_or_else(|| "unknown".into())).or_default() += 1;
        }
    }
    Ok(by
        .into_values()
        .map(|mut r| {
            r.precision = r.confirmed as f64 / (r.confirmed + r.rejected).max(1) as f64;
            r.precision_interval_95 = clopper_pearson_95(r.confirmed, r.confirmed + r.rejected).unwrap_or([0.0, 1.0]);
            r
        })
        .collect())
}

/// The training layout to export in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Listing photos: `labels.csv` (file, label, detail, group, source, license, …) as in
    /// `../shared/datasets/listing`, read by `scripts/train`.
    Csv,
    /// X-ray scans: COCO `annotations.json`, plus `manifest.csv` and `boxes.csv` as
    /// `scripts/xray/train_detector.py` reads them.
    Coco,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// Pictures written.
    pub images: usize,
    /// Boxes written (COCO).
    pub boxes: usize,
    /// Reviewed objects whose picture is not on this machine (listed in `missing.csv`).
    pub missing: usize,
}

/// The dataset label a listing decision teaches, in the vocabulary of
/// `../shared/datasets/listing` (what `scripts/train/train.py` maps to its outputs).
pub fn listing_label(d: &Decision) -> String {
    let flagged = d.label.as_deref().unwrap_or("");
    if d.action == "confirm" {
        return match flagged {
            "live_reptile" => "reptile".into(),
            "pangolin_scales" => "pangolin".into(),
            other => other.to_string(),
        };
    }
    match (d.reason.as_deref().unwrap_or("other"), flagged) {
        ("bone", _) => "bone".into(),
        ("ceramic", _) => "ceramic".into(),
        ("resin", _) | ("toy_or_replica", "ivory") => "ivory_lookalike".into(),
        ("toy_or_replica", "live_reptile") => "reptile_toy".into(),
        ("other_animal", "live_reptile") => "pet_nonreptile".into(),
        _ => "hard_negative".into(),
    }
}

/// The split of a near-duplicate group: 70 / 15 / 15 by a hash of the group, so copies of one
/// photo never straddle train and test.
fn split_of(group: &str) -> &'static str {
    let h = group.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    match h % 100 {
        0..=69 => "train",
        70..=84 => "val",
        _ => "test",
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes the reviewed objects of `kind`'s layout under `out`: pictures in `out/images/`, the
/// label files beside them, and `missing.csv` for reviewed objects whose picture is not here.
pub async fn export(store: &Store, format: ExportFormat, out: &Path, uploads: Option<&Path>, images: &[PathBuf]) -> Result<ExportSummary, ExportError> {
    let kind = match format {
        ExportFormat::Csv => "listing",
        ExportFormat::Coco => "xray",
    };
    let decisions = standing_decisions(store).await?;
    // Near-duplicate groups: every copy of a photo gets its cluster's group.
    let catalog = Catalog::load(store).await?;
    let clusters = reuse::clusters(&catalog, store, &Rule::new(HashKind::Default, None), 1).await?;
    let mut group_of: BTreeMap<i64, String> = BTreeMap::new();
    for (n, c) in clusters.iter().enumerate() {
        for &p in &c.members {
            group_of.insert(catalog.entries[p].id, format!("c{n}"));
        }
    }
    std::fs::create_dir_all(out.join("images")).map_err(|e| ExportError::Io(out.display().to_string(), e))?;
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e| ExportError::Io(p.clone(), e)
    };
    let mut summary = ExportSummary::default();
    let mut missing = vec!["object_id,uri".to_string()];
    let mut labels = vec!["file,label,detail,group,source,license,decision,tusk_label,reviewer,decided_at,model,model_version".to_string()];
    let mut manifest = vec!["file,split,background,seed,render,objects".to_string()];
    let mut boxes_csv = vec!["file,label,x0,y0,x1,y1".to_string()];
    let categories = ["ivory", "pangolin_scales", "live_reptile"];
    let mut coco_images = Vec::new();
    let mut coco_annotations = Vec::new();
    for d in &decisions {
        let Some(record) = store.record(d.object_id).await? else { continue };
        if record.meta.kind.as_str() != kind || record.fingerprint.as_deref() != Some(d.fingerprint.as_str()) {
            continue;
        }
        let Some(path) = find_picture(&record.uri, uploads, images) else {
            missing.push(format!("{},{}", d.object_id, csv_field(&record.uri)));
            summary.missing += 1;
            continue;
        };
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let ext = match image::guess_format(&bytes) {
            Ok(image::ImageFormat::Png) => "png",
            Ok(image::ImageFormat::Tiff) => "tiff",
            Ok(image::ImageFormat::WebP) => "webp",
            _ => "jpg",
        };
        let file = format!("images/{}.{ext}", d.object_id);
        std::fs::write(out.join(&file), &bytes).map_err(io(&out.join(&file)))?;
        summary.images += 1;
        let group = group_of.get(&d.object_id).cloned().unwrap_or_else(|| format!("o{}", d.object_id));
        match format {
            ExportFormat::Csv => {
                let detail = format!("{} {} by review{}", d.action, d.label.as_deref().unwrap_or(""), d.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default());
                let source = format!("tusk review of {} (object {})", record.uri, d.object_id);
                labels.push(
                    [
                        file.clone(),
                        listing_label(d),
                        detail,
                        group,
                        source,
                        "as the source platform's terms; reviewed evidence, do not publish".into(),
                        d.action.clone(),
                        d.label.clone().unwrap_or_default(),
                        d.who.clone(),
                        d.at.clone(),
                        d.model.clone().unwrap_or_default(),
                        d.model_version.clone().unwrap_or_default(),
                    ]
                    .iter()
                    .map(|f| csv_field(f))
                    .collect::<Vec<_>>()
                    .join(","),
                );
            }
            ExportFormat::Coco => {
                // A confirmed scan's boxes: the reviewer's, else the model's; a rejected scan is
                // a negative (no boxes).
                let mut found: Vec<(String, [f64; 4])> = Vec::new();
                if d.action == "confirm" {
                    match d.boxes.as_ref().and_then(|b| b.as_array()) {
                        Some(drawn) => {
                            for b in drawn {
                                let label = b["label"].as_str().unwrap_or("").to_string();
                                let c: Vec<f64> = b["box"].as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).collect()).unwrap_or_default();
                                if c.len() == 4 {
                                    found.push((label, [c[0], c[1], c[2], c[3]]));
                                }
                            }
                        }
                        None => {
                            for det in record.detections.iter().filter(|x| x.flagged) {
                                if let Some(b) = det.bbox {
                                    found.push((det.label.clone(), b.map(f64::from)));
                                }
                            }
                        }
                    }
                }
                let image_id = coco_images.len() as i64 + 1;
                coco_images.push(serde_json::json!({"id": image_id, "file_name": file, "width": record.width, "height": record.height, "tusk_object_id": d.object_id, "decision": d.action, "reason": d.reason}));
                let known: Vec<&(String, [f64; 4])> = found.iter().filter(|(l, _)| categories.contains(&l.as_str())).collect();
                for (label, b) in &known {
                    let cat = categories.iter().position(|c| c == label).unwrap_or(0) as i64 + 1;
                    coco_annotations.push(serde_json::json!({"id": coco_annotations.len() + 1, "image_id": image_id, "category_id": cat,
                        "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1]), "iscrowd": 0}));
                    boxes_csv.push(format!("{file},{label},{:.1},{:.1},{:.1},{:.1}", b[0], b[1], b[2], b[3]));
                    summary.boxes += 1;
                }
                manifest.push(format!("{file},{},reviewed,,real,{}", split_of(&group), known.len()));
            }
        }
    }
    let write = |name: &str, lines: &[String]| -> Result<(), ExportError> {
        let p = out.join(name);
        let mut f = std::fs::File::create(&p).map_err(io(&p))?;
        for l in lines {
            writeln!(f, "{l}").map_err(io(&p))?;
        }
        Ok(())
    };
    write("missing.csv", &missing)?;
    match format {
        ExportFormat::Csv => write("labels.csv", &labels)?,
        ExportFormat::Coco => {
            write("manifest.csv", &manifest)?;
            write("boxes.csv", &boxes_csv)?;
            let cats: Vec<serde_json::Value> = categories.iter().enumerate().map(|(i, c)| serde_json::json!({"id": i + 1, "name": c})).collect();
            let coco = serde_json::json!({"info": {"description": "tusk reviewed X-ray scans"}, "images": coco_images, "annotations": coco_annotations, "categories": cats});
            let p = out.join("annotations.json");
            std::fs::write(&p, serde_json::to_vec_pretty(&coco).unwrap_or_default()).map_err(io(&p))?;
        }
    }
    Ok(summary)
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}
