//! Local features of a photo — OpenCV ORB keypoints with their 256-bit descriptors — computed
//! at scan time and stored compactly (36 bytes a keypoint), so that a pair of photos that the
//! hashes only suggest can be verified geometrically ([`super::verify`]) without fetching
//! either image again.

use image::{GrayImage, RgbImage};
use opencv::core::{KeyPoint, Mat, Vector};
use opencv::features2d::{ORB_ScoreType, ORB};
use opencv::prelude::*;

/// Longest side of the grey image the keypoints are found on: every photo is resized to it,
/// which bounds the cost per photo and puts two copies of a photo at about the same scale.
pub const MAX_SIDE: u32 = 512;
/// Most keypoints kept per photo (the strongest by Harris response, spread over the picture:
/// [`spread`]).
pub const MAX_KEYPOINTS: i32 = 500;
/// ORB finds this many times [`MAX_KEYPOINTS`] before [`spread`] chooses among them.
const DETECTED_PER_KEPT: i32 = 3;
/// The picture is cut into this many columns and rows of cells for [`spread`].
const GRID: usize = 8;
/// Most keypoints a cell keeps before the strongest of the rest fill the budget: twice its even
/// share, so a line of watermark text or a busy corner cannot take the whole budget.
const PER_CELL: usize = 2 * MAX_KEYPOINTS as usize / (GRID * GRID);
/// Bytes of one ORB descriptor.
pub const DESCRIPTOR_BYTES: usize = 32;
/// Format tag of [`Features::to_bytes`].
const MAGIC: &[u8; 4] = b"ORB1";
/// Keypoint positions are stored in quarter pixels.
const SUBPIXEL: f32 = 4.0;

/// ORB keypoints of one photo (or its mirror image), in the coordinates of the shrunk image.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Width of the image the keypoints were found on.
    pub width: u16,
    /// Its height.
    pub height: u16,
    /// Keypoint positions (x, y) in that image's pixels.
    pub points: Vec<[f32; 2]>,
    /// One descriptor per point.
    pub descriptors: Vec<[u8; DESCRIPTOR_BYTES]>,
}

/// Why features could not be computed or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeatureError {
    /// OpenCV reported an error.
    #[error("OpenCV: {0}")]
    OpenCv(#[from] opencv::Error),
    /// Stored bytes are not a features blob of this version.
    #[error("stored features are malformed: {0}")]
    Malformed(&'static str),
}

impl Features {
    /// Number of keypoints.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no keypoint was found (a flat or tiny picture).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Adds keypoint `kp` with row `row` of OpenCV's descriptor matrix `bytes`.
    fn push(&mut self, kp: &KeyPoint, bytes: &[u8], row: usize) {
        let pt = kp.pt();
        self.points.push([pt.x, pt.y]);
        self.descriptors.push(bytes[row * DESCRIPTOR_BYTES..(row + 1) * DESCRIPTOR_BYTES].try_into().expect("32 bytes"));
    }

    /// The compact stored form: tag, width, height, count, then per keypoint x and y in quarter
    /// pixels (u16 each) and the 32 descriptor bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(10 + self.len() * (4 + DESCRIPTOR_BYTES));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.width.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&(self.len() as u16).to_le_bytes());
        for (p, d) in self.points.iter().zip(&self.descriptors) {
            for v in p {
                out.extend_from_slice(&((v * SUBPIXEL).round().clamp(0.0, u16::MAX as f32) as u16).to_le_bytes());
            }
            out.extend_from_slice(d);
        }
        out
    }

    /// Reads [`Features::to_bytes`]'s form back.
    pub fn from_bytes(b: &[u8]) -> Result<Self, FeatureError> {
        if b.len() < 10 || &b[..4] != MAGIC {
            return Err(FeatureError::Malformed("missing ORB1 header"));
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let (width, height, n) = (u16_at(4), u16_at(6), u16_at(8) as usize);
        let rec = 4 + DESCRIPTOR_BYTES;
        if b.len() != 10 + n * rec {
            return Err(FeatureError::Malformed("length does not match the keypoint count"));
        }
        let mut points = Vec::with_capacity(n);
        let mut descriptors = Vec::with_capacity(n);
        for r in b[10..].chunks_exact(rec) {
            points.push([u16::from_le_bytes([r[0], r[1]]) as f32 / SUBPIXEL, u16::from_le_bytes([r[2], r[3]]) as f32 / SUBPIXEL]);
            let mut d = [0u8; DESCRIPTOR_BYTES];
            d.copy_from_slice(&r[4..]);
            descriptors.push(d);
        }
        Ok(Features { width, height, points, descriptors })
    }
}

/// What verification needs of one photo: the features of the photo (the picture inside its
/// borders, or the photo cut out of a screenshot or frame) and of its mirror image.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectFeatures {
    /// Features of the photo.
    pub direct: Features,
    /// Features of its mirror image.
    pub mirrored: Features,
}

impl ObjectFeatures {
    /// The stored form: both features blobs, each after its length (u32).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (a, b) = (self.direct.to_bytes(), self.mirrored.to_bytes());
        let mut out = Vec::with_capacity(8 + a.len() + b.len());
        for blob in [a, b] {
            out.extend_from_slice(&(blob.len() as u32).to_le_bytes());
            out.extend_from_slice(&blob);
        }
        out
    }

    /// Reads [`ObjectFeatures::to_bytes`]'s form back.
    pub fn from_bytes(b: &[u8]) -> Result<Self, FeatureError> {
        let take = |at: usize, n: usize| b.get(at..at + n).ok_or(FeatureError::Malformed("truncated"));
        let mut at = 0;
        let mut blobs = Vec::with_capacity(2);
        for _ in 0..2 {
            let n = u32::from_le_bytes(take(at, 4)?.try_into().expect("4 bytes")) as usize;
            blobs.push(Features::from_bytes(take(at + 4, n)?)?);
            at += 4 + n;
        }
        if at != b.len() {
            return Err(FeatureError::Malformed("trailing bytes"));
        }
        let mirrored = blobs.pop().expect("two blobs");
        let direct = blobs.pop().expect("two blobs");
        Ok(ObjectFeatures { direct, mirrored })
    }
}

/// Runs OpenCV single-threaded (once per process): tusk already keeps every core busy with its
/// own workers, and OpenCV's thread pool (TBB on Debian) spins idle threads on `sched_yield`,
/// which took half of a 2-core machine while `tusk clusters` verified.
pub(crate) fn opencv_sequential() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Err(e) = opencv::core::set_num_threads(0) {
            tracing::warn!("OpenCV threads: {e}");
        }
    });
}

/// Finds ORB features; one per worker thread (OpenCV's detector keeps its buffers).
pub struct FeatureExtractor {
    orb: opencv::core::Ptr<ORB>,
    resizer: fast_image_resize::Resizer,
}

impl std::fmt::Debug for FeatureExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeatureExtractor")
    }
}

impl FeatureExtractor {
    /// ORB with OpenCV's defaults except the number of keypoints detected
    /// ([`DETECTED_PER_KEPT`] × [`MAX_KEYPOINTS`], of which [`spread`] keeps the budget).
    pub fn new() -> Result<Self, FeatureError> {
        opencv_sequential();
        let orb = ORB::create(DETECTED_PER_KEPT * MAX_KEYPOINTS, SCALE_FACTOR, 8, 31, 0, 2, ORB_ScoreType::HARRIS_SCORE, 31, 20)?;
        Ok(Self { orb, resizer: fast_image_resize::Resizer::new() })
    }

    /// Features of the photo `img` and of its mirror image (ORB descriptors are not
    /// mirror-invariant, and re-posts are often flipped). ORB detects once, on the photo, and
    /// describes only the keypoints [`spread`] keeps (describing all it detects in one pass
    /// costs more: a tenth of the time); the mirror image is described at the mirrored
    /// keypoints ([`mirrored`]), which are the keypoints ORB would find on it (corner scores and
    /// masks are symmetric), at half the cost of detecting there. The photo's features are bit
    /// for bit those of ORB's one pass, and the mirror's nearly all those of ORB on the mirror
    /// image (tests below): links do not depend on which form computed them.
    pub fn extract(&mut self, img: &RgbImage) -> Result<ObjectFeatures, FeatureError> {
        let grey = self.grey(img);
        let (w, h) = grey.dimensions();
        let none = Features { width: w as u16, height: h as u16, points: Vec::new(), descriptors: Vec::new() };
        if w < 32 || h < 32 {
            return Ok(ObjectFeatures { direct: none.clone(), mirrored: none });
        }
        let mask = text_free_mask(&grey)?;
        let mat = Mat::new_rows_cols_with_data(h as i32, w as i32, grey.as_raw().as_slice())?;
        let mut detected: Vector<KeyPoint> = Vector::new();
        self.orb.detect(&mat, &mut detected, &mask)?;
        let detected = detected.to_vec();
        let mut kept: Vector<KeyPoint> = spread(&detected, w as f32, h as f32).into_iter().map(|i| detected[i].clone()).collect();
        if kept.is_empty() {
            return Ok(ObjectFeatures { direct: none.clone(), mirrored: none });
        }
        let direct = self.describe(&mat, &mut kept, none.clone())?;
        let flipped = image::imageops::flip_horizontal(&grey);
        let flipped = Mat::new_rows_cols_with_data(h as i32, w as i32, flipped.as_raw().as_slice())?;
        let mut at: Vector<KeyPoint> = kept.iter().map(|kp| mirrored(&kp, w)).collect::<Result<_, _>>()?;
        let mirrored = self.describe(&flipped, &mut at, none)?;
        Ok(ObjectFeatures { direct, mirrored })
    }

    /// `features` with `keypoints` of `image` and their ORB descriptors added (ORB drops the
    /// keypoints it cannot describe, too close to the border).
    fn describe(&mut self, image: &impl opencv::core::ToInputArray, keypoints: &mut Vector<KeyPoint>, mut features: Features) -> Result<Features, FeatureError> {
        let mut descriptors = Mat::default();
        self.orb.compute(image, keypoints, &mut descriptors)?;
        if !keypoints.is_empty() {
            let bytes = descriptors.data_bytes()?;
            for (i, kp) in keypoints.iter().enumerate() {
                features.push(&kp, bytes, i);
            }
        }
        Ok(features)
    }

    /// The photo resized so its longest side is [`MAX_SIDE`] (`fast_image_resize`'s bilinear
    /// filter), in grey ([`luma8`]).
    fn grey(&mut self, img: &RgbImage) -> GrayImage {
        let (w, h) = img.dimensions();
        let (nw, nh) = crate::hash::scaled(w, h, MAX_SIDE as f32 / w.max(h).max(1) as f32);
        luma8(&crate::hash::resize_rgb(&mut self.resizer, img, nw, nh))
    }
}

/// Grey levels of an RGB image by `imageops::grayscale`'s formula (BT.709 weights in
/// integers, truncated), so every value is the same; a plain loop the compiler vectorises,
/// where `grayscale` converts pixel by pixel at about 2 ns a pixel (0.4 ms of a 512 px photo).
fn luma8(img: &RgbImage) -> GrayImage {
    let grey = img.as_raw().chunks_exact(3).map(|p| ((2126 * p[0] as u32 + 7152 * p[1] as u32 + 722 * p[2] as u32) / 10_000) as u8).collect();
    GrayImage::from_raw(img.width(), img.height(), grey).expect("one byte a pixel")
}

/// Indices of the [`MAX_KEYPOINTS`] keypoints kept of those detected: the strongest (Harris
/// response) of each cell of a [`GRID`] × [`GRID`] grid up to [`PER_CELL`], then the strongest
/// of the rest. ORB alone keeps the strongest anywhere, and the corners of a watermark's
/// letters or of one busy region then take the budget from the rest of the photo, whose
/// keypoints a copy without the watermark needs to match. Deterministic: ties keep detection
/// order.
fn spread(detected: &[KeyPoint], width: f32, height: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..detected.len()).collect();
    order.sort_by(|&a, &b| detected[b].response().total_cmp(&detected[a].response()));
    let cell = |k: &KeyPoint| {
        let pt = k.pt();
        let cx = ((pt.x / width.max(1.0)) * GRID as f32).clamp(0.0, GRID as f32 - 1.0) as usize;
        let cy = ((pt.y / height.max(1.0)) * GRID as f32).clamp(0.0, GRID as f32 - 1.0) as usize;
        cy * GRID + cx
    };
    let budget = MAX_KEYPOINTS as usize;
    let mut used = [0usize; GRID * GRID];
    let mut keep = vec![false; order.len()];
    let mut kept = 0;
    for (rank, &i) in order.iter().enumerate() {
        if kept == budget {
            break;
        }
        let c = cell(&detected[i]);
        if used[c] < PER_CELL {
            used[c] += 1;
            keep[rank] = true;
            kept += 1;
        }
    }
    for flag in keep.iter_mut() {
        if kept == budget {
            break;
        }
        if !*flag {
            *flag = true;
            kept += 1;
        }
    }
    order.into_iter().zip(keep).filter(|(_, k)| *k).map(|(i, _)| i).collect()
}

/// Ratio between ORB's pyramid levels (OpenCV's default, passed to `ORB::create`).
const SCALE_FACTOR: f32 = 1.2;

/// The keypoint `kp`, found by ORB on an image `width` pixels wide, as it sits on the mirror
/// image: the same pixel of the same pyramid level counted from the other side (OpenCV sizes
/// level `l` as `round(width / 1.2^l)` and stores positions as level pixels × 1.2^l), and the
/// orientation mirrored (the intensity centroid's x flips: θ → 180° − θ). The descriptor
/// computed there is the one ORB would compute on the mirror image up to resampling rounding.
fn mirrored(kp: &KeyPoint, width: u32) -> Result<KeyPoint, FeatureError> {
    let scale = (SCALE_FACTOR as f64).powi(kp.octave()) as f32;
    let level_width = (width as f32 / scale).round();
    let x = (level_width - 1.0 - (kp.pt().x / scale).round()) * scale;
    let angle = (180.0 - kp.angle()).rem_euclid(360.0);
    Ok(KeyPoint::new_coords(x, kp.pt().y, kp.size(), angle, kp.response(), kp.octave(), kp.class_id())?)
}

/// Weakest grey-level step a text stroke's edge makes.
const MIN_STROKE_EDGE: f64 = 40.0;

/// Text lines are this tall at most, in pixels of the [`MAX_SIDE`] image (captions, app bars,
/// prices, watermarks' words).
const TEXT_MAX_HEIGHT: i32 = 40;

/// Where keypoints may be found (255) and where not (0): everywhere but the lines of text on a
/// flat background (app bars, captions, prices, stickers). Identical chrome around two
/// different photos would otherwise give hundreds of inliers at scale 1, rotation 0. Found the
/// classic way: the morphological gradient, Otsu, a horizontal closing that joins letters into
/// lines; a line is a box 5–40 px high and at least twice as wide, well filled with strokes,
/// on a flat background (text, not texture).
fn text_free_mask(grey: &GrayImage) -> Result<Mat, FeatureError> {
    use opencv::core::{Point, Rect, Scalar, Size, BORDER_CONSTANT};
    use opencv::imgproc;
    let (w, h) = (grey.width() as i32, grey.height() as i32);
    let mat = Mat::new_rows_cols_with_data(h, w, grey.as_raw().as_slice())?;
    let kernel = |shape, kw, kh| imgproc::get_structuring_element(shape, Size::new(kw, kh), Point::new(-1, -1));
    let mut gradient = Mat::default();
    imgproc::morphology_ex(&mat, &mut gradient, imgproc::MORPH_GRADIENT, &kernel(imgproc::MORPH_ELLIPSE, 3, 3)?, Point::new(-1, -1), 1, BORDER_CONSTANT, imgproc::morphology_default_border_value()?)?;
    // Otsu's level, but never below a clear edge (on a near-flat page Otsu would pick noise).
    let mut strokes = Mat::default();
    let level = imgproc::threshold(&gradient, &mut strokes, 0.0, 255.0, imgproc::THRESH_BINARY | imgproc::THRESH_OTSU)?;
    if level < MIN_STROKE_EDGE {
        imgproc::threshold(&gradient, &mut strokes, MIN_STROKE_EDGE, 255.0, imgproc::THRESH_BINARY)?;
    }
    let mut lines = Mat::default();
    imgproc::morphology_ex(&strokes, &mut lines, imgproc::MORPH_CLOSE, &kernel(imgproc::MORPH_RECT, 9, 1)?, Point::new(-1, -1), 1, BORDER_CONSTANT, imgproc::morphology_default_border_value()?)?;
    let mut contours: Vector<Vector<Point>> = Vector::new();
    imgproc::find_contours(&lines, &mut contours, imgproc::RETR_EXTERNAL, imgproc::CHAIN_APPROX_SIMPLE, Point::new(0, 0))?;
    let mut mask = Mat::new_rows_cols_with_default(h, w, opencv::core::CV_8UC1, Scalar::all(255.0))?;
    for c in contours.iter() {
        let r = imgproc::bounding_rect(&c)?;
        if r.height < 5 || r.height > TEXT_MAX_HEIGHT || r.width < 2 * r.height {
            continue;
        }
        let filled = opencv::core::count_non_zero(&Mat::roi(&strokes, r)?)? as f32 / (r.width * r.height) as f32;
        if filled < 0.2 || !on_flat_background(grey, r) {
            continue;
        }
        let pad = 3;
        let x0 = (r.x - pad).max(0);
        let y0 = (r.y - pad).max(0);
        let padded = Rect::new(x0, y0, (r.x + r.width + pad).min(w) - x0, (r.y + r.height + pad).min(h) - y0);
        imgproc::rectangle(&mut mask, padded, Scalar::all(0.0), imgproc::FILLED, imgproc::LINE_8, 0)?;
    }
    Ok(mask)
}

/// Whether a box sits on a flat background, as a line of text does: the 4-px ring around it
/// is nearly one grey level (±12 of its commonest) where texture would vary.
fn on_flat_background(grey: &GrayImage, r: opencv::core::Rect) -> bool {
    let (w, h) = (grey.width() as i32, grey.height() as i32);
    let ring = 4;
    let mut histogram = [0u32; 256];
    for y in (r.y - ring).max(0)..(r.y + r.height + ring).min(h) {
        for x in (r.x - ring).max(0)..(r.x + r.width + ring).min(w) {
            if !(r.x..r.x + r.width).contains(&x) || !(r.y..r.y + r.height).contains(&y) {
                histogram[grey.get_pixel(x as u32, y as u32).0[0] as usize] += 1;
            }
        }
    }
    let total: u32 = histogram.iter().sum();
    let paper = (0..256usize).max_by_key(|&v| histogram[v]).unwrap_or(0);
    let near: u32 = histogram[paper.saturating_sub(12)..=(paper + 12).min(255)].iter().sum();
    total > 0 && near as f32 >= 0.8 * total as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured demo photo (skimage's cat).
    fn chelsea() -> RgbImage {
        image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../datasets/demo/images/skimage_chelsea.png")).unwrap().to_rgb8()
    }

    #[test]
    fn stored_form_round_trips_in_quarter_pixels() {
        let f = Features {
            width: 300,
            height: 200,
            points: vec![[1.25, 2.5], [299.75, 0.0]],
            descriptors: vec![[7u8; 32], [200u8; 32]],
        };
        let b = f.to_bytes();
        assert_eq!(b.len(), 10 + 2 * 36);
        assert_eq!(Features::from_bytes(&b).unwrap(), f);
        assert!(Features::from_bytes(&b[..b.len() - 1]).is_err());
        assert!(Features::from_bytes(b"XXXX").is_err());
    }

    #[test]
    fn a_busy_band_cannot_take_the_whole_keypoint_budget() {
        // 1,000 strong keypoints on one band (a line of watermark text), 500 weaker ones spread
        // over the picture.
        let kp = |x: f32, y: f32, r: f32| KeyPoint::new_coords(x, y, 31.0, 0.0, r, 0, -1).unwrap();
        let mut all: Vec<KeyPoint> = (0..1000).map(|i| kp((i % 500) as f32, 400.0 + (i / 500) as f32, 1.0 + i as f32)).collect();
        all.extend((0..500).map(|i| kp((i * 37 % 500) as f32, (i * 53 % 500) as f32, 0.5)));
        let kept: Vec<&KeyPoint> = spread(&all, 500.0, 500.0).into_iter().map(|i| &all[i]).collect();
        assert_eq!(kept.len(), MAX_KEYPOINTS as usize);
        let on_band = kept.iter().filter(|k| k.pt().y >= 400.0 && k.pt().y < 402.0).count();
        // The band's row of cells keeps PER_CELL a cell, then the strongest of the rest fill
        // the budget: still fewer than the strongest-anywhere rule's 500.
        assert!(on_band < 500, "{on_band} of the band's keypoints kept");
        let cells: std::collections::HashSet<(i32, i32)> = kept.iter().map(|k| ((k.pt().x / 62.5) as i32, (k.pt().y / 62.5) as i32)).collect();
        assert!(cells.len() > 40, "keypoints in {} cells", cells.len());
        // Fewer than the budget: all kept.
        let few: Vec<KeyPoint> = (0..10).map(|i| kp(i as f32, 0.0, 1.0)).collect();
        assert_eq!(spread(&few, 500.0, 500.0).len(), 10);
    }

    #[test]
    fn luma8_gives_grayscales_grey_levels() {
        // Every channel value in every position, a pattern, and a photo.
        let ramp = RgbImage::from_fn(256, 3, |x, y| {
            let v = x as u8;
            image::Rgb([[v, 0, 0], [0, v, 0], [0, 0, v]][y as usize])
        });
        let pattern = RgbImage::from_fn(97, 61, |x, y| image::Rgb([(x * 7 + y * 13) as u8, (x * x + y) as u8, (x ^ (y * 31)) as u8]));
        for img in [ramp, pattern, chelsea()] {
            assert_eq!(luma8(&img).into_raw(), image::imageops::grayscale(&img).into_raw());
        }
    }

    #[test]
    fn the_mirror_is_described_as_orb_describes_the_mirror_image() {
        // The mirrored features come from the photo's keypoints; ORB run on the flipped photo
        // must find the same points with (nearly) the same descriptors, or a flipped re-post
        // would not match.
        let cat = chelsea();
        let mut x = FeatureExtractor::new().unwrap();
        let mirrored = x.extract(&cat).unwrap().mirrored;
        let found = x.extract(&image::imageops::flip_horizontal(&cat)).unwrap().direct;
        let hamming = |a: &[u8; 32], b: &[u8; 32]| a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum::<u32>();
        let mut same_place = 0;
        let mut distances = Vec::new();
        for (p, d) in mirrored.points.iter().zip(&mirrored.descriptors) {
            let near = found.points.iter().zip(&found.descriptors).filter(|(q, _)| (p[0] - q[0]).abs() <= 0.5 && (p[1] - q[1]).abs() <= 0.5);
            if let Some(best) = near.map(|(_, e)| hamming(d, e)).min() {
                same_place += 1;
                distances.push(best);
            }
        }
        distances.sort_unstable();
        let median = distances[distances.len() / 2];
        eprintln!("{same_place} of {} mirrored keypoints found by ORB on the mirror image ({} found there); descriptor distance median {median}, 90th percentile {}", mirrored.len(), found.len(), distances[distances.len() * 9 / 10]);
        assert!(same_place * 10 >= mirrored.len() * 9, "{same_place} of {}", mirrored.len());
        assert!(distances[distances.len() * 9 / 10] <= 8, "Hamming distances (of 256 bits): median {median}, 90th percentile over 8");
    }

    #[test]
    fn detect_then_compute_gives_the_photos_features_of_one_pass() {
        // Describing only the keypoints `spread` keeps must give what ORB's one pass gives (detect
        // and describe every keypoint, then keep those `spread` chooses): the same points and
        // descriptors, so the cheaper form changes no feature and no link.
        let cat = chelsea();
        let mut x = FeatureExtractor::new().unwrap();
        let ours = x.extract(&cat).unwrap().direct;
        let grey = x.grey(&cat);
        let (w, h) = grey.dimensions();
        let mask = text_free_mask(&grey).unwrap();
        let mat = Mat::new_rows_cols_with_data(h as i32, w as i32, grey.as_raw().as_slice()).unwrap();
        let mut detected: Vector<KeyPoint> = Vector::new();
        let mut descriptors = Mat::default();
        x.orb.detect_and_compute(&mat, &mask, &mut detected, &mut descriptors, false).unwrap();
        let bytes = descriptors.data_bytes().unwrap();
        let detected = detected.to_vec();
        let kept = spread(&detected, w as f32, h as f32);
        let mut one_pass: Vec<([u32; 2], Vec<u8>)> = kept.iter().map(|&i| ([detected[i].pt().x.to_bits(), detected[i].pt().y.to_bits()], bytes[i * 32..(i + 1) * 32].to_vec())).collect();
        let mut ours: Vec<([u32; 2], Vec<u8>)> = ours.points.iter().zip(&ours.descriptors).map(|(p, d)| ([p[0].to_bits(), p[1].to_bits()], d.to_vec())).collect();
        one_pass.sort();
        ours.sort();
        assert_eq!(ours.len(), 500);
        assert_eq!(ours, one_pass);
    }

    #[test]
    fn the_photo_hash_with_views_hands_over_gives_the_features_of_the_full_picture() {
        // A plain photo larger than the feature side comes back from hashing already shrunk to
        // it; its features must be those of the full-resolution picture.
        let big = image::imageops::resize(&chelsea(), 1353, 900, image::imageops::FilterType::CatmullRom);
        let (_, _, photo) = crate::hash::PerceptualHasher::new().hash_with_views(&big);
        assert_eq!(photo.width().max(photo.height()), MAX_SIDE);
        let mut x = FeatureExtractor::new().unwrap();
        let full = x.extract(&big).unwrap();
        assert!(full.direct.len() > 200, "{} keypoints", full.direct.len());
        assert_eq!(x.extract(&photo).unwrap(), full);
    }

    #[test]
    fn thin_and_tiny_pictures_get_features_or_none_but_never_an_error() {
        // Noise has corners everywhere; at these shapes ORB's pyramid levels shrink below its
        // border and the mirrored keypoints sit at the edge of what it describes.
        let mut x = FeatureExtractor::new().unwrap();
        for (w, h) in [(32, 32), (33, 600), (600, 33), (64, 64), (5000, 40), (40, 5000), (1, 3000), (513, 97)] {
            let noise = RgbImage::from_fn(w, h, |i, j| {
                let v = (i.wrapping_mul(2_654_435_761) ^ j.wrapping_mul(40_503)).wrapping_mul(97) >> 7;
                image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
            });
            let f = x.extract(&noise).unwrap_or_else(|e| panic!("{w} x {h}: {e}"));
            assert!(f.mirrored.len() <= f.direct.len(), "{w} x {h}");
            assert_eq!(ObjectFeatures::from_bytes(&f.to_bytes()).unwrap().to_bytes(), f.to_bytes());
            for p in f.direct.points.iter().chain(&f.mirrored.points) {
                assert!(p[0] >= 0.0 && p[0] < f.direct.width as f32 && p[1] >= 0.0 && p[1] < f.direct.height as f32, "{w} x {h}: {p:?}");
            }
        }
    }

    #[test]
    fn a_textured_photo_has_keypoints_and_a_flat_one_none() {
        let cat = chelsea();
        let mut x = FeatureExtractor::new().unwrap();
        let f = x.extract(&cat).unwrap();
        assert!(f.direct.len() > 200, "{} keypoints", f.direct.len());
        assert!(f.mirrored.len() > 200, "{} keypoints", f.mirrored.len());
        // Stored positions are quarter pixels: a second round trip changes nothing.
        let stored = ObjectFeatures::from_bytes(&f.to_bytes()).unwrap();
        assert_eq!(stored.to_bytes(), f.to_bytes());
        assert_eq!(stored.direct.descriptors, f.direct.descriptors);
        let flat = RgbImage::from_pixel(400, 300, image::Rgb([240, 240, 240]));
        assert!(x.extract(&flat).unwrap().direct.is_empty());
    }
}
