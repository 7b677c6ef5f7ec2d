//! `tusk eval`: measures the models on a labelled set of images through the real pipeline.
//!
//! A CSV names each image (`file`, relative to the source folder) and its dataset label
//! (`label`). A [`LabelMap`] says what each dataset label means for each tusk label: positive,
//! negative, or left out. The images are scanned exactly as `tusk scan` would (same decode,
//! preprocessing, batching and store), then the stored scores are compared with the truth.
//!
//! The metrics are defined here once and mirrored by `scripts/train/metrics.py`, so the numbers
//! on a model card and the numbers `tusk eval` prints mean the same thing.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::Serialize;

pub mod boxes;
pub mod interval;

use crate::infer::manifest::Task;
use crate::pipeline::{self, Progress, ScanError, ScanOptions};
use crate::store::{Db, Store};
use crate::source::{Kind, SourceSpec};

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The labels file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The labels file or a `--map` rule is malformed.
    #[error("{0}")]
    Input(String),
    /// The scan itself failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// What one dataset label means for one tusk label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    /// The image shows it.
    Positive,
    /// The image does not show it.
    Negative,
    /// Left out of this label's metrics (still counted in the per-dataset-label table).
    Ignored,
}

/// Maps dataset labels to tusk labels.
///
/// Default rule: a dataset label that equals a tusk label's name is positive for that label and
/// negative for the others; any other dataset label is negative for every tusk label. A rule
/// `SRC=A+B+~C` makes `SRC` positive for `A` and `B`, left out for `C`, negative for the rest;
/// `SRC=` makes it negative for every label.
#[derive(Debug, Clone, Default)]
pub struct LabelMap {
    rules: BTreeMap<String, Vec<(String, Truth)>>,
}

impl LabelMap {
    /// Parses `--map` rules (each `SRC=TARGETS`, several may be joined with `,`).
    pub fn parse(rules: &[String]) -> Result<Self, EvalError> {
        let mut map = LabelMap::default();
        for rule in rules.iter().flat_map(|r| r.split(',')) {
            let (src, targets) = rule
                .split_once('=')
                .ok_or_else(|| EvalError::Input(format!("--map `{rule}`: expected DATASET_LABEL=TUSK_LABEL[+…]")))?;
            let src = src.trim();
            if src.is_empty() {
                return Err(EvalError::Input(format!("--map `{rule}`: the dataset label is empty")));
            }
            let targets = targets
                .split('+')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| match t.strip_prefix('~') {
                    Some(name) => (name.to_string(), Truth::Ignored),
                    None => (t.to_string(), Truth::Positive),
                })
                .collect();
            map.rules.insert(src.to_string(), targets);
        }
        Ok(map)
    }

    /// The truth of `dataset_label` for `tusk_label`.
    pub fn truth(&self, dataset_label: &str, tusk_label: &str) -> Truth {
        match self.rules.get(dataset_label) {
            Some(targets) => targets
                .iter()
                .find(|(name, _)| name == tusk_label)
                .map(|(_, t)| *t)
                .unwrap_or(Truth::Negative),
            None if dataset_label == tusk_label => Truth::Positive,
            None => Truth::Negative,
        }
    }
}

/// One labelled image from the CSV.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// The `file` column as written.
    pub file: String,
    /// The `label` column.
    pub label: String,
}

/// Splits one CSV record (RFC 4180 quoting, one line per record).
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Reads a labels CSV with a header naming (at least) `file` and `label` columns.
pub fn read_labels(path: &Path) -> Result<Vec<Labelled>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = csv_fields(lines.next().unwrap_or_default());
    let col = |name: &str| {
        header.iter().position(|h| h.trim() == name).ok_or_else(|| {
            EvalError::Input(format!("{}: the header has no `{name}` column (it has: {})", path.display(), header.join(", ")))
        })
    };
    let (file_col, label_col) = (col("file")?, col("label")?);
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let f = csv_fields(line);
        match (f.get(file_col), f.get(label_col)) {
            (Some(file), Some(label)) if !file.is_empty() => out.push(Labelled { file: file.clone(), label: label.clone() }),
            _ => return Err(EvalError::Input(format!("{}: line {}: missing `file` or `label`", path.display(), i + 2))),
        }
    }
    if out.is_empty() {
        return Err(EvalError::Input(format!("{}: no labelled images", path.display())));
    }
    Ok(out)
}

/// Confusion counts and the metrics derived from them, for one tusk label.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LabelMetrics {
    /// Score at or above which an image counts as flagged.
    pub threshold: f32,
    /// Positives flagged.
    pub tp: u64,
    /// Negatives flagged.
    pub fp: u64,
    /// Positives missed.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// Negatives not flagged.
    pub tn: u64,
    /// tp / (tp + fp); None when nothing was flagged.
    pub precision: Option<f64>,
    /// tp / (tp + fn); None without positives.
    pub recall: Option<f64>,
    /// fp / (fp + tn); None without negatives.
    pub fpr: Option<f64>,
    /// Average precision over the ranking by score; None without positives.
    pub ap: Option<f64>,
}

/// Computes [`LabelMetrics`] from (score, is_positive) pairs in input order.
///
/// AP is step-wise, without interpolation: the mean, over positives ranked by descending score
/// (a stable sort, so ties keep input order), of the precision at each positive's rank.
pub fn label_metrics(scored: &[(f32, bool)], threshold: f32) -> LabelMetrics {
    let (mut tp, mut fp, mut fn_, mut tn) = (0u64, 0u64, 0u64, 0u64);
    for &(score, positive) in scored {
        match (score >= threshold, positive) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => tn += 1,
        }
    }
    let mut ranked: Vec<(f32, bool)> = scored.to_vec();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut hits, mut sum) = (0u64, 0f64);
    for (rank, (_, positive)) in ranked.iter().enumerate() {
        if *positive {
            hits += 1;
            sum += hits as f64 / (rank + 1) as f64;
        }
    }
    let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
    LabelMetrics {
        threshold,
        tp,
        fp,
        fn_,
        tn,
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        fpr: ratio(fp, fp + tn),
        ap: (hits > 0).then(|| sum / hits as f64),
    }
}

/// One model's evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// Images scored by this model.
    pub images: u64,
    /// Per tusk label, by name.
    pub labels: BTreeMap<String, LabelMetrics>,
    /// Per dataset label and tusk label: [flagged, images] — e.g. the false-positive rate on one
    /// kind of negative, or how a left-out class (`~label`) is scored.
    pub flagged_by_dataset_label: BTreeMap<String, BTreeMap<String, [u64; 2]>>,
    /// Per dataset label: [images flagged with any label, images] — a scanner's alarm rate.
    pub flagged_any_by_dataset_label: BTreeMap<String, [u64; 2]>,
    /// Per dataset label: the exact 95 % interval of that alarm rate ([lower, upper]), because a
    /// rate on a few hundred scans is a range, not a number.
    pub flagged_any_interval_95: BTreeMap<String, [f64; 2]>,
    /// Detectors measured against true boxes (`--boxes`): per tusk label.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub boxes: BTreeMap<String, boxes::BoxMetrics>,
}

/// A whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Labelled images in the CSV.
    pub images: u64,
    /// Images that failed (read or decode): `stage/reason` per file.
    pub failed: BTreeMap<String, String>,
    /// One report per model that ran.
    pub models: Vec<ModelReport>,
}

impl std::fmt::Display for Report {
    /// The human-readable form `tusk eval` prints: one table per model.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
        let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        writeln!(f, "{} labelled images, {} failed", self.images, self.failed.len())?;
        for (file, why) in self.failed.iter().take(10) {
            writeln!(f, "  failed: {file}: {why}")?;
        }
        for m in &self.models {
            writeln!(f, "\n{} {} on {} images", m.model, m.version, m.images)?;
            writeln!(f, "  {:<16} {:>9} {:>6} {:>6} {:>6} {:>6} {:>9} {:>7} {:>6} {:>7}", "label", "threshold", "TP", "FP", "FN", "TN", "precision", "recall", "AP", "FPR")?;
            for (name, l) in &m.labels {
                writeln!(
                    f,
                    "  {:<16} {:>9} {:>6} {:>6} {:>6} {:>6} {:>9} {:>7} {:>6} {:>7}",
                    name, l.threshold, l.tp, l.fp, l.fn_, l.tn, pct(l.precision), pct(l.recall), num(l.ap), pct(l.fpr)
                )?;
            }
            if !m.boxes.is_empty() {
                writeln!(f, "  boxes (IoU >= {}):", boxes::MATCH_IOU)?;
                writeln!(f, "  {:<16} {:>9} {:>7} {:>9} {:>14} {:>11} {:>6}", "label", "threshold", "boxes", "detected", "detection rate", "false boxes", "AP50")?;
                for (name, b) in &m.boxes {
                    writeln!(
                        f,
                        "  {:<16} {:>9} {:>7} {:>9} {:>14} {:>11} {:>6}",
                        name, b.threshold, b.boxes, b.detected, pct(b.detection_rate), b.false_boxes, num(b.ap50)
                    )?;
                }
            }
            writeln!(f, "  flagged, per dataset label:")?;
            let names: Vec<&String> = m.labels.keys().collect();
            write!(f, "  {:<24} {:>6}", "dataset label", "images")?;
            for n in &names {
                write!(f, " {n:>16}")?;
            }
            writeln!(f, " {:>16} {:>13}", "any label", "95% interval")?;
            for (dataset_label, cells) in &m.flagged_by_dataset_label {
                let total = cells.values().map(|c| c[1]).max().unwrap_or(0);
                write!(f, "  {dataset_label:<24} {total:>6}")?;
                let cell = |[k, t]: [u64; 2]| if t == 0 { "-".to_string() } else { format!("{k} ({:.1}%)", k as f64 * 100.0 / t as f64) };
                for n in &names {
                    write!(f, " {:>16}", cell(cells.get(*n).copied().unwrap_or([0, 0])))?;
                }
                let interval = m.flagged_any_interval_95.get(dataset_label).map_or("-".to_string(), |[lo, hi]| {
                    format!("{:.1}-{:.1}%", lo * 100.0, hi * 100.0)
                });
                writeln!(f, " {:>16} {interval:>13}", cell(m.flagged_any_by_dataset_label.get(dataset_label).copied().unwrap_or([0, 0])))?;
            }
        }
        Ok(())
    }
}

/// Builds the per-model report from stored scores. `truth` says what an image is for a tusk
/// label (from the label map, or from true boxes for detectors).
pub fn report_model(
    model: &str,
    version: &str,
    thresholds: &[(String, f32)],
    items: &[(Labelled, String)],
    scores: &HashMap<String, HashMap<String, f32>>,
    truth: &dyn Fn(&Labelled, &str) -> Truth,
) -> ModelReport {
    let mut labels = BTreeMap::new();
    let mut flagged: BTreeMap<String, BTreeMap<String, [u64; 2]>> = BTreeMap::new();
    let mut images = 0;
    for (tusk_label, threshold) in thresholds {
        let mut scored = Vec::new();
        for (item, uri) in items {
            let Some(score) = scores.get(uri).and_then(|s| s.get(tusk_label)) else { continue };
            let cell = flagged.entry(item.label.clone()).or_default().entry(tusk_label.clone()).or_default();
            cell[0] += u64::from(*score >= *threshold);
            cell[1] += 1;
            match truth(item, tusk_label) {
                Truth::Positive => scored.push((*score, true)),
                Truth::Negative => scored.push((*score, false)),
                Truth::Ignored => {}
            }
        }
        labels.insert(tusk_label.clone(), label_metrics(&scored, *threshold));
    }
    let mut flagged_any: BTreeMap<String, [u64; 2]> = BTreeMap::new();
    for (item, uri) in items {
        let Some(s) = scores.get(uri) else { continue };
        images += 1;
        let any = thresholds.iter().any(|(l, t)| s.get(l).is_some_and(|v| v >= t));
        let cell = flagged_any.entry(item.label.clone()).or_default();
        cell[0] += u64::from(any);
        cell[1] += 1;
    }
    let flagged_any_interval_95 =
        flagged_any.iter().filter_map(|(l, &[k, n])| Some((l.clone(), interval::clopper_pearson_95(k, n)?))).collect();
    ModelReport {
        model: model.to_string(),
        version: version.to_string(),
        images,
        labels,
        flagged_by_dataset_label: flagged,
        flagged_any_by_dataset_label: flagged_any,
        flagged_any_interval_95,
        boxes: BTreeMap::new(),
    }
}

/// Lowest box score `tusk eval --boxes` keeps, so that average precision ranks weak boxes too.
pub const BOX_FLOOR: f32 = 0.01;

/// Scans the labelled images under `root` with `opts` (its source is replaced) and measures
/// every model that ran. The store in `opts.db` is reused: a second run only reads scores.
///
/// With `boxes_csv` (true boxes, see [`boxes::read_boxes`]) detectors are also measured box by
/// box, and an image counts as positive for a label when it holds a true box of that label.
pub async fn evaluate(
    labels_csv: &Path,
    boxes_csv: Option<&Path>,
    root: &Path,
    kind: Kind,
    map: &LabelMap,
    mut opts: ScanOptions,
    progress: Arc<dyn Progress>,
) -> Result<Report, EvalError> {
    let labelled = read_labels(labels_csv)?;
    let truth_boxes = boxes_csv.map(boxes::read_boxes).transpose()?;
    if truth_boxes.is_some() {
        opts.box_floor = Some(BOX_FLOOR);
    }
    // The manifest of labelled files sits beside a SQLite store, in the temp folder otherwise.
    let manifest = match &opts.db {
        Db::Sqlite(path) => path.with_extension("eval.jsonl"),
        Db::Postgres(_) => std::env::temp_dir().join(format!("tusk-eval-{}.jsonl", std::process::id())),
    };
    let mut items = Vec::with_capacity(labelled.len());
    {
        let io = |source| EvalError::Io { path: manifest.clone(), source };
        let mut out = std::io::BufWriter::new(std::fs::File::create(&manifest).map_err(io)?);
        for item in labelled {
            let path = if Path::new(&item.file).is_absolute() { PathBuf::from(&item.file) } else { root.join(&item.file) };
            let path = std::path::absolute(&path).unwrap_or(path);
            let uri = path.display().to_string();
            writeln!(out, "{}", serde_json::json!({"uri": uri, "kind": kind.as_str()})).map_err(io)?;
            items.push((item, uri));
        }
        out.flush().map_err(io)?;
    }
    opts.source = SourceSpec::Manifest { path: manifest.clone(), default_kind: kind };
    let manifests = pipeline::load_manifests(&opts)?;
    let db = opts.db.clone();
    let scanned = pipeline::scan(opts, Arc::new(AtomicBool::new(false)), progress).await;
    let _ = std::fs::remove_file(&manifest);
    scanned?;
    let store = Store::open(&db).await.map_err(ScanError::from)?;
    let failures = store.failures().await.map_err(ScanError::from)?;
    let failed = items
        .iter()
        .filter_map(|(item, uri)| failures.get(uri).map(|f| (item.file.clone(), f.clone())))
        .collect();
    let mut models = Vec::new();
    // true boxes by uri and label
    let uri_of: HashMap<&str, &str> = items.iter().map(|(i, u)| (i.file.as_str(), u.as_str())).collect();
    let mut by_uri: HashMap<&str, HashMap<&str, Vec<[f32; 4]>>> = HashMap::new();
    for b in truth_boxes.iter().flatten() {
        if let Some(uri) = uri_of.get(b.file.as_str()) {
            by_uri.entry(uri).or_default().entry(b.label.as_str()).or_default().push(b.bbox);
        }
    }
    for m in manifests.iter().filter(|m| m.kinds.contains(&kind)) {
        let scores = store.scores(&m.name, &m.version, &m.sha256).await.map_err(ScanError::from)?;
        let thresholds: Vec<(String, f32)> = m.labels.iter().map(|l| (l.name.clone(), l.threshold)).collect();
        let detector = m.task == Task::Detect && truth_boxes.is_some();
        let truth = |item: &Labelled, label: &str| -> Truth {
            if !detector {
                return map.truth(&item.label, label);
            }
            let uri = uri_of.get(item.file.as_str()).copied().unwrap_or("");
            match by_uri.get(uri).and_then(|l| l.get(label)) {
                Some(_) => Truth::Positive,
                None => Truth::Negative,
            }
        };
        let mut report = report_model(&m.name, &m.version, &thresholds, &items, &scores, &truth);
        if detector {
            let predicted = store.boxes(&m.name, &m.version, &m.sha256).await.map_err(ScanError::from)?;
            for (label, threshold) in &thresholds {
                let truth: HashMap<&str, Vec<[f32; 4]>> = by_uri
                    .iter()
                    .filter_map(|(uri, l)| l.get(label.as_str()).map(|b| (*uri, b.clone())))
                    .collect();
                let preds: Vec<(&str, f32, [f32; 4])> = items
                    .iter()
                    .flat_map(|(_, uri)| predicted.get(uri).into_iter().flatten().map(move |p| (uri.as_str(), p)))
                    .filter(|(_, p)| &p.0 == label)
                    .map(|(uri, p)| (uri, p.1, p.2))
                    .collect();
                report.boxes.insert(label.clone(), boxes::box_metrics(&truth, &preds, *threshold));
            }
        }
        models.push(report);
    }
    Ok(Report { images: items.len() as u64, failed, models })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_count_and_rank() {
        // ranked: 0.9 P, 0.8 N, 0.7 P, 0.2 P, 0.1 N
        let s = [(0.8, false), (0.9, true), (0.1, false), (0.7, true), (0.2, true)];
        let m = label_metrics(&s, 0.5);
        assert_eq!((m.tp, m.fp, m.fn_, m.tn), (2, 1, 1, 1));
        assert_eq!(m.precision, Some(2.0 / 3.0));
        assert_eq!(m.recall, Some(2.0 / 3.0));
        assert_eq!(m.fpr, Some(0.5));
        let ap = (1.0 + 2.0 / 3.0 + 3.0 / 4.0) / 3.0;
        assert!((m.ap.unwrap() - ap).abs() < 1e-12);
    }

    #[test]
    fn metrics_without_positives_or_flags_are_none() {
        let m = label_metrics(&[(0.1, false), (0.2, false)], 0.5);
        assert_eq!((m.precision, m.recall, m.ap), (None, None, None));
        assert_eq!(m.fpr, Some(0.0));
    }

    #[test]
    fn threshold_is_inclusive() {
        let m = label_metrics(&[(0.5, true)], 0.5);
        assert_eq!(m.tp, 1);
    }

    #[test]
    fn label_map_rules() {
        let map = LabelMap::parse(&["ivory_composite=ivory".into(), "ivory_painting=~ivory,reptile=live_reptile".into(), "x=".into()]).unwrap();
        assert_eq!(map.truth("ivory", "ivory"), Truth::Positive);
        assert_eq!(map.truth("ivory", "live_reptile"), Truth::Negative);
        assert_eq!(map.truth("ivory_composite", "ivory"), Truth::Positive);
        assert_eq!(map.truth("ivory_painting", "ivory"), Truth::Ignored);
        assert_eq!(map.truth("ivory_painting", "live_reptile"), Truth::Negative);
        assert_eq!(map.truth("reptile", "live_reptile"), Truth::Positive);
        assert_eq!(map.truth("product", "ivory"), Truth::Negative);
        assert_eq!(map.truth("x", "x"), Truth::Negative);
        assert!(LabelMap::parse(&["nonsense".into()]).is_err());
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(csv_fields(r#"a,"b, ""c""",d"#), vec!["a", r#"b, "c""#, "d"]);
    }
}
