//! Box-level measures for detectors: average precision at IoU 0.5 and the detection rate at the
//! shipped threshold, from true boxes in a CSV (`file,label,x0,y0,x1,y1`, pixels).

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::{csv_fields, EvalError};
use crate::infer::detect::iou;

/// Overlap at which a box counts as finding a true box.
pub const MATCH_IOU: f32 = 0.5;

/// One true box from the CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthBox {
    /// The `file` column as written.
    pub file: String,
    /// The tusk label.
    pub label: String,
    /// `[x0, y0, x1, y1]` in pixels.
    pub bbox: [f32; 4],
}

/// Reads a boxes CSV with a header naming `file`, `label`, `x0`, `y0`, `x1`, `y1`.
pub fn read_boxes(path: &Path) -> Result<Vec<TruthBox>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io { path: path.to_path_buf(), source })?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = csv_fields(lines.next().unwrap_or(""));
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| EvalError::Input(format!("{}: no `{name}` column", path.display())))
    };
    let cols = [col("file")?, col("label")?, col("x0")?, col("y0")?, col("x1")?, col("y1")?];
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        let f = csv_fields(line);
        let get = |i: usize| f.get(cols[i]).map(|s| s.trim().to_string()).unwrap_or_default();
        let mut bbox = [0f32; 4];
        for (k, v) in bbox.iter_mut().enumerate() {
            *v = get(2 + k)
                .parse()
                .map_err(|_| EvalError::Input(format!("{} line {}: `{}` is not a number", path.display(), n + 2, get(2 + k))))?;
        }
        out.push(TruthBox { file: get(0), label: get(1), bbox });
    }
    Ok(out)
}

/// Box-level measures for one label.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BoxMetrics {
    /// The label's threshold.
    pub threshold: f32,
    /// True boxes.
    pub boxes: u64,
    /// True boxes found by a box at or above the threshold (IoU ≥ 0.5, one box finds one).
    pub detected: u64,
    /// detected / boxes; None without true boxes.
    pub detection_rate: Option<f64>,
    /// Boxes at or above the threshold that find no true box.
    pub false_boxes: u64,
    /// Average precision at IoU 0.5 (all-point interpolated, as PASCAL VOC 2010+); None
    /// without true boxes.
    pub ap50: Option<f64>,
}

/// Measures predicted boxes `(image, score, box)` against true boxes per image, for one label.
/// Predictions are matched greedily by descending score to the unmatched true box they
/// overlap most.
pub fn box_metrics(truth: &HashMap<&str, Vec<[f32; 4]>>, predictions: &[(&str, f32, [f32; 4])], threshold: f32) -> BoxMetrics {
    let total: usize = truth.values().map(Vec::len).sum();
    let mut order: Vec<usize> = (0..predictions.len()).collect();
    order.sort_by(|&a, &b| predictions[b].1.total_cmp(&predictions[a].1));
    let mut used: HashMap<&str, Vec<bool>> = truth.iter().map(|(k, v)| (*k, vec![false; v.len()])).collect();
    let (mut tp, mut fp) = (0u64, 0u64);
    let (mut detected, mut false_boxes) = (0u64, 0u64);
    let mut curve: Vec<(f64, f64)> = Vec::with_capacity(order.len());
    for i in order {
        let (image, score, bbox) = predictions[i];
        let mut best: Option<(usize, f32)> = None;
        if let (Some(boxes), Some(taken)) = (truth.get(image), used.get(image)) {
            for (j, t) in boxes.iter().enumerate() {
                let o = iou(&bbox, t);
                if !taken[j] && o >= MATCH_IOU && best.is_none_or(|(_, b)| o > b) {
                    best = Some((j, o));
                }
            }
        }
        let hit = best.is_some();
        if let Some((j, _)) = best {
            used.get_mut(image).expect("looked up above")[j] = true;
        }
        if hit {
            tp += 1;
        } else {
            fp += 1;
        }
        if score >= threshold {
            if hit {
                detected += 1;
            } else {
                false_boxes += 1;
            }
        }
        if total > 0 {
            curve.push((tp as f64 / total as f64, tp as f64 / (tp + fp) as f64));
        }
    }
    let ap50 = (total > 0).then(|| {
        // precision envelope from the right, then area under the recall steps
        let mut envelope = curve.clone();
        for k in (0..envelope.len().saturating_sub(1)).rev() {
            envelope[k].1 = envelope[k].1.max(envelope[k + 1].1);
        }
        let (mut area, mut last_recall) = (0.0, 0.0);
        for (recall, precision) in envelope {
            area += (recall - last_recall) * precision;
            last_recall = recall;
        }
        area
    });
    BoxMetrics {
        threshold,
        boxes: total as u64,
        detected,
        detection_rate: (total > 0).then(|| detected as f64 / total as f64),
        false_boxes,
        ap50,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_missing_and_false_boxes() {
        let truth: HashMap<&str, Vec<[f32; 4]>> =
            [("a", vec![[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]), ("b", vec![[0.0, 0.0, 5.0, 5.0]])].into();
        // a: both found (one weakly), a duplicate of the first; b: missed, one false box
        let preds = [
            ("a", 0.9, [0.0, 0.0, 10.0, 10.0]),
            ("a", 0.8, [1.0, 1.0, 10.0, 10.0]),
            ("a", 0.3, [20.0, 20.0, 30.0, 31.0]),
            ("b", 0.7, [50.0, 50.0, 60.0, 60.0]),
        ];
        let m = box_metrics(&truth, &preds, 0.5);
        assert_eq!((m.boxes, m.detected, m.false_boxes), (3, 1, 2));
        // ranked: hit, dup (fp), fp, hit -> recall 1/3 at p 1, 2/3 at p 0.5
        let ap = m.ap50.unwrap();
        assert!((ap - (1.0 / 3.0 + 1.0 / 3.0 * 0.5)).abs() < 1e-9, "{ap}");
        let all = box_metrics(&truth, &preds, 0.0);
        assert_eq!(all.detection_rate, Some(2.0 / 3.0));
    }

    #[test]
    fn no_truth_means_no_rate_or_ap() {
        let m = box_metrics(&HashMap::new(), &[("a", 0.9, [0.0, 0.0, 1.0, 1.0])], 0.5);
        assert_eq!((m.detection_rate, m.ap50, m.false_boxes), (None, None, 1));
    }
}
