//! Detector outputs in the YOLOv8/YOLO11 ONNX layout: `[batch, 4 + classes, anchors]`, rows
//! centre-x, centre-y, width, height in input pixels, then one score per class. This module turns
//! one image's slice of that tensor into boxes in original-image pixels: per-label scores (the
//! highest of the label's classes), a score floor, class-wise non-maximum suppression, and the
//! inverse of the letterbox (or stretch) placement.

use super::manifest::LabelSpec;
use super::preprocess::Placement;

/// One box in original-image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxHit {
    /// Index of the tusk label in the manifest.
    pub label: usize,
    /// The label's score at this box.
    pub score: f32,
    /// `[x0, y0, x1, y1]`, clamped to the image.
    pub bbox: [f32; 4],
}

/// How boxes are read and thinned.
#[derive(Debug, Clone, Copy)]
pub struct DecodeParams {
    /// Boxes below this score are dropped before suppression (per label, the lower of this and
    /// the label's threshold is what callers usually pass).
    pub floor: f32,
    /// Overlap (IoU) above which the weaker of two same-label boxes is suppressed.
    pub iou: f32,
    /// Most boxes kept per image.
    pub max_boxes: usize,
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Decodes one image's output (`rows` = 4 + classes rows of `anchors` values each, row-major as
/// ONNX Runtime returns it) into boxes on the original `width` × `height` image.
pub fn decode(
    output: &[f32],
    anchors: usize,
    labels: &[LabelSpec],
    floors: &[f32],
    params: &DecodeParams,
    placement: &Placement,
    (width, height): (u32, u32),
) -> Vec<BoxHit> {
    let row = |r: usize| &output[r * anchors..(r + 1) * anchors];
    let (cx, cy, w, h) = (row(0), row(1), row(2), row(3));
    let mut hits = Vec::new();
    for (li, label) in labels.iter().enumerate() {
        let floor = floors[li];
        for a in 0..anchors {
            let score = label.classes.iter().map(|&c| row(4 + c)[a]).fold(f32::NEG_INFINITY, f32::max);
            if score.is_nan() || score < floor {
                continue;
            }
            let to_x = |x: f32| ((x - placement.left) / placement.scale_x).clamp(0.0, width as f32);
            let to_y = |y: f32| ((y - placement.top) / placement.scale_y).clamp(0.0, height as f32);
            let bbox = [
                to_x(cx[a] - w[a] / 2.0),
                to_y(cy[a] - h[a] / 2.0),
                to_x(cx[a] + w[a] / 2.0),
                to_y(cy[a] + h[a] / 2.0),
            ];
            if bbox[2] > bbox[0] && bbox[3] > bbox[1] {
                hits.push(BoxHit { label: li, score, bbox });
            }
        }
    }
    nms(hits, params.iou, params.max_boxes)
}

/// Each label's best score over all anchors: the image-level score of a detector.
pub fn label_maxima(output: &[f32], anchors: usize, labels: &[LabelSpec]) -> Vec<f32> {
    labels
        .iter()
        .map(|l| {
            l.classes
                .iter()
                .flat_map(|&c| &output[(4 + c) * anchors..(5 + c) * anchors])
                .copied()
                .fold(0.0, f32::max)
        })
        .collect()
}

/// Class-wise greedy non-maximum suppression; returns the kept boxes by descending score.
pub fn nms(mut hits: Vec<BoxHit>, iou_limit: f32, max_boxes: usize) -> Vec<BoxHit> {
    hits.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<BoxHit> = Vec::new();
    for h in hits {
        if kept.len() >= max_boxes {
            break;
        }
        if kept.iter().all(|k| k.label != h.label || iou(&k.bbox, &h.bbox) <= iou_limit) {
            kept.push(h);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<LabelSpec> {
        ["a", "b"]
            .iter()
            .enumerate()
            .map(|(i, n)| LabelSpec { name: n.to_string(), classes: vec![i], threshold: 0.5 })
            .collect()
    }

    #[test]
    fn iou_of_identical_disjoint_and_half() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
        assert!((iou(&a, &[0.0, 5.0, 10.0, 15.0]) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_same_label_boxes_only() {
        let b = |label, score, x| BoxHit { label, score, bbox: [x, 0.0, x + 10.0, 10.0] };
        let kept = nms(vec![b(0, 0.6, 1.0), b(0, 0.9, 0.0), b(1, 0.7, 0.0), b(0, 0.8, 50.0)], 0.5, 10);
        assert_eq!(kept, vec![b(0, 0.9, 0.0), b(0, 0.8, 50.0), b(1, 0.7, 0.0)]);
        assert_eq!(nms(vec![b(0, 0.9, 0.0), b(0, 0.8, 50.0)], 0.5, 1).len(), 1);
    }

    #[test]
    fn decode_maps_letterboxed_boxes_back_and_applies_floors() {
        // 3 anchors, 2 classes: rows cx, cy, w, h, score a, score b
        #[rustfmt::skip]
        let out = [
            20.0, 50.0, 90.0,
            30.0, 50.0, 90.0,
            10.0, 20.0, 40.0,
            10.0, 20.0, 40.0,
            0.9,  0.1,  0.05,
            0.0,  0.6,  0.3,
        ];
        // original 200 x 100 letterboxed into 100 x 100: scale 0.5, 25 px of padding on top
        let p = Placement { scale_x: 0.5, scale_y: 0.5, left: 0.0, top: 25.0 };
        let params = DecodeParams { floor: 0.0, iou: 0.5, max_boxes: 10 };
        let hits = decode(&out, 3, &labels(), &[0.5, 0.5], &params, &p, (200, 100));
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0], BoxHit { label: 0, score: 0.9, bbox: [30.0, 0.0, 50.0, 20.0] });
        assert_eq!(hits[1].label, 1);
        assert_eq!(hits[1].bbox, [80.0, 30.0, 120.0, 70.0]);
        // the third anchor is clamped to the image when its floor lets it through
        let all = decode(&out, 3, &labels(), &[0.01, 0.01], &params, &p, (200, 100));
        assert!(all.iter().any(|h| h.bbox == [140.0, 90.0, 200.0, 100.0]));
    }
}
