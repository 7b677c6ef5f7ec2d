//! Geometric verification: do two photos show the same picture? Hash distances only suggest it
//! (many different product shots hash alike); two copies of one photo share dozens of local
//! features that one similarity transform (scale, rotation, shift) maps onto each other, spread
//! over the picture rather than bunched on a watermark or an app bar.
//!
//! OpenCV ORB descriptors of each photo (the picture inside its borders, or the photo cut out of
//! a screenshot or frame, so that app bars and captions are not part of it) are matched both ways
//! by brute-force Hamming distance (Lowe's ratio test, kept only when mutual), and OpenCV's
//! RANSAC fits the similarity; the mirrored photo is tried too.

use opencv::calib3d;
use opencv::core::{Point2f, Vector};
use opencv::prelude::*;
use serde::Serialize;

use super::features::{FeatureError, Features, ObjectFeatures};

/// Fewest keypoints a photo needs for verification; below it a photo is low-texture and only a
/// strict hash rule can link it.
pub const MIN_KEYPOINTS: usize = 30;

/// The thresholds of one verification (defaults chosen on real photos; see the README).
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Lowe's ratio: best match distance below this share of the second best.
    pub ratio: f32,
    /// RANSAC reprojection threshold, in pixels of the shrunk image.
    pub ransac_px: f64,
    /// Fewest RANSAC inliers for a match.
    pub min_inliers: usize,
    /// Smallest share of the mutual matches that are inliers.
    pub min_inlier_ratio: f32,
    /// Scale between the two photos must lie in `[1/max_scale, max_scale]`.
    pub max_scale: f32,
    /// Largest rotation away from a multiple of 90°, in degrees.
    pub max_angle: f32,
    /// Smallest share of each photo's keypoint hull that the inliers' hull covers.
    pub min_coverage: f32,
    /// Matches with fewer inliers than this are weak evidence: they also need `min_density`.
    pub dense_below_inliers: usize,
    /// Smallest [`Evidence::density`] of a weak match (template shots match this way).
    pub min_density: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params { ratio: 0.75, ransac_px: 6.0, min_inliers: 15, min_inlier_ratio: 0.0, max_scale: 2.0, max_angle: 10.0, min_coverage: 0.2, dense_below_inliers: 25, min_density: 0.25 }
    }
}

/// What verification found for one pair: the numbers an analyst needs to trust a link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evidence {
    /// Whether the transform passed every check.
    pub verified: bool,
    /// Matches that survived the ratio test both ways (mutual).
    pub matches: usize,
    /// Matches consistent with the fitted similarity.
    pub inliers: usize,
    /// Scale from the first photo to the second.
    pub scale: f32,
    /// Rotation from the first photo to the second, in degrees.
    pub rotation_deg: f32,
    /// The inliers' convex hull as a share of the hull of all keypoints, on the less covered side.
    pub coverage: f32,
    /// The inliers as a share of the keypoints inside the inliers' hull, on the side where
    /// that share is higher: a copy's keypoints in the shared area mostly match (on the side
    /// without the added watermark or caption), while two *template* shots built from one
    /// base photo (the same model in another shirt, the same box with another tie) match
    /// around a region that differs on both sides.
    pub density: f32,
    /// The second photo matched the first's mirror image.
    pub mirrored: bool,
}

/// Verifies photo `a` against photo `b`, trying `b` as it is and mirrored; returns the better
/// evidence, or `None` when either photo has fewer than [`MIN_KEYPOINTS`] keypoints (low
/// texture: features cannot decide).
pub fn verify(a: &ObjectFeatures, b: &ObjectFeatures, p: &Params) -> Result<Option<Evidence>, FeatureError> {
    super::features::opencv_sequential();
    if a.direct.len() < MIN_KEYPOINTS || b.direct.len() < MIN_KEYPOINTS {
        return Ok(None);
    }
    let first = verify_one(&a.direct, &b.direct, p, false)?;
    if first.verified {
        return Ok(Some(first));
    }
    let second = verify_one(&a.direct, &b.mirrored, p, true)?;
    Ok(Some(if second.verified || second.inliers > first.inliers { second } else { first }))
}

/// One orientation of [`verify`].
fn verify_one(a: &Features, b: &Features, p: &Params, mirrored: bool) -> Result<Evidence, FeatureError> {
    let pairs = mutual_matches(a, b, p);
    let mut ev = Evidence { verified: false, matches: pairs.len(), inliers: 0, scale: 0.0, rotation_deg: 0.0, coverage: 0.0, density: 0.0, mirrored };
    if pairs.len() < p.min_inliers.max(3) {
        return Ok(ev);
    }
    let from: Vector<Point2f> = pairs.iter().map(|&(i, _)| Point2f::new(a.points[i][0], a.points[i][1])).collect();
    let to: Vector<Point2f> = pairs.iter().map(|&(_, j)| Point2f::new(b.points[j][0], b.points[j][1])).collect();
    let mut mask: Vector<u8> = Vector::new();
    let m = calib3d::estimate_affine_partial_2d(&from, &to, &mut mask, calib3d::RANSAC, p.ransac_px, 2000, 0.99, 10)?;
    if m.empty() {
        return Ok(ev);
    }
    let (c, s) = (*m.at_2d::<f64>(0, 0)?, *m.at_2d::<f64>(1, 0)?);
    ev.scale = (c * c + s * s).sqrt() as f32;
    ev.rotation_deg = s.atan2(c).to_degrees() as f32;
    let kept: Vec<usize> = mask.iter().enumerate().filter(|(_, k)| *k != 0).map(|(i, _)| i).collect();
    ev.inliers = kept.len();
    let inl_a: Vec<[f32; 2]> = kept.iter().map(|&k| a.points[pairs[k].0]).collect();
    let inl_b: Vec<[f32; 2]> = kept.iter().map(|&k| b.points[pairs[k].1]).collect();
    let (hull_a, hull_b) = (convex_hull(&inl_a), convex_hull(&inl_b));
    ev.coverage = (polygon_area(&hull_a) / hull_area(&a.points).max(1.0)).min(polygon_area(&hull_b) / hull_area(&b.points).max(1.0));
    let inliers = ev.inliers as f32;
    let density = |hull: &[[f32; 2]], pts: &[[f32; 2]]| inliers / count_inside(hull, pts).max(1) as f32;
    ev.density = density(&hull_a, &a.points).max(density(&hull_b, &b.points));
    let off_axis = {
        let r = ev.rotation_deg.abs() % 90.0;
        r.min(90.0 - r)
    };
    ev.verified = ev.inliers >= p.min_inliers
        && ev.inliers as f32 >= p.min_inlier_ratio * ev.matches as f32
        && ev.scale >= 1.0 / p.max_scale
        && ev.scale <= p.max_scale
        && off_axis <= p.max_angle
        && ev.coverage >= p.min_coverage
        && (ev.inliers >= p.dense_below_inliers || ev.density >= p.min_density);
    Ok(ev)
}

/// Matches kept by Lowe's ratio test in both directions and agreeing with each other
/// (index pairs into `a` and `b`): what OpenCV's `BFMatcher::knnMatch(k = 2)` run both ways
/// gives, from one pass over the Hamming distance matrix (a quarter of the work, and popcount
/// on 64-bit words: this was most of the verification time through OpenCV).
fn mutual_matches(a: &Features, b: &Features, p: &Params) -> Vec<(usize, usize)> {
    let words = |f: &Features| -> Vec<[u64; 4]> {
        f.descriptors.iter().map(|d| std::array::from_fn(|k| u64::from_le_bytes(d[k * 8..k * 8 + 8].try_into().expect("8 bytes")))).collect()
    };
    let (da, db) = (words(a), words(b));
    // (best, second best, index of best) per row of `a` and per column of `b`.
    let mut rows = vec![(u32::MAX, u32::MAX, 0usize); da.len()];
    let mut cols = vec![(u32::MAX, u32::MAX, 0usize); db.len()];
    let keep = |slot: &mut (u32, u32, usize), d: u32, idx: usize| {
        if d < slot.0 {
            *slot = (d, slot.0, idx);
        } else if d < slot.1 {
            slot.1 = d;
        }
    };
    for (i, x) in da.iter().enumerate() {
        for (j, y) in db.iter().enumerate() {
            let d = (0..4).map(|k| (x[k] ^ y[k]).count_ones()).sum::<u32>();
            keep(&mut rows[i], d, j);
            keep(&mut cols[j], d, i);
        }
    }
    let passes = |(best, second, _): (u32, u32, usize)| second == u32::MAX || (best as f32) < p.ratio * second as f32;
    rows.iter()
        .enumerate()
        .filter(|&(i, &r)| passes(r) && cols[r.2].2 == i && passes(cols[r.2]))
        .map(|(i, r)| (i, r.2))
        .collect()
}

/// The convex hull of `pts`, counter-clockwise (monotone chain); fewer than 3 points: empty.
fn convex_hull(pts: &[[f32; 2]]) -> Vec<[f32; 2]> {
    if pts.len() < 3 {
        return Vec::new();
    }
    let mut p: Vec<[f32; 2]> = pts.to_vec();
    p.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut hull: Vec<[f32; 2]> = Vec::with_capacity(2 * p.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &[f32; 2]>> = if pass == 0 { Box::new(p.iter()) } else { Box::new(p.iter().rev()) };
        for &q in iter {
            while hull.len() >= start + 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], q) <= 0.0 {
                hull.pop();
            }
            hull.push(q);
        }
        hull.pop();
    }
    hull
}

/// The z of the cross product (a − o) × (b − o): positive when o → a → b turns left.
fn cross(o: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

/// Area of a polygon (shoelace).
fn polygon_area(poly: &[[f32; 2]]) -> f32 {
    let n = poly.len();
    (0..n).map(|i| poly[i][0] * poly[(i + 1) % n][1] - poly[(i + 1) % n][0] * poly[i][1]).sum::<f32>().abs() / 2.0
}

/// Area of the convex hull of `pts`.
fn hull_area(pts: &[[f32; 2]]) -> f32 {
    polygon_area(&convex_hull(pts))
}

/// How many of `pts` lie in the counter-clockwise convex polygon `hull` (edges included).
fn count_inside(hull: &[[f32; 2]], pts: &[[f32; 2]]) -> usize {
    let n = hull.len();
    if n < 3 {
        return 0;
    }
    pts.iter().filter(|&&q| (0..n).all(|i| cross(hull[i], hull[(i + 1) % n], q) >= -1e-3)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hull_area_of_a_square_with_inner_points() {
        let pts = [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [5.0, 5.0], [2.0, 7.0]];
        assert!((hull_area(&pts) - 100.0).abs() < 1e-3);
        assert_eq!(hull_area(&pts[..2]), 0.0);
        let hull = convex_hull(&pts[..4]);
        assert_eq!(count_inside(&hull, &pts), 6);
        assert_eq!(count_inside(&hull, &[[11.0, 5.0], [-0.5, 5.0], [5.0, 10.5]]), 0);
    }
}
