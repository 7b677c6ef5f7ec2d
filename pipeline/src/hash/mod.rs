//! Perceptual hashes of the picture inside any uniform border ([`trim`]): 64-bit pHash and
//! dHash (`image_hasher`, from a small pre-shrunk copy) and 256-bit PDQ ([`pdq`]); and of the
//! parts of it that re-posts keep ([`views`]: the photo cut out of a screenshot, centre crops).

use std::borrow::Cow;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage};
use image_hasher::{HashAlg, Hasher, HasherConfig};

use crate::record::{Hashes, View};
use pdq::Pdq;

mod jarosz;
pub mod pdq;
pub mod trim;
pub mod views;

/// Longest side of the grey copy in which [`views::photo_rect`] looks for the photo.
const VIEW_SIDE: u32 = 384;

/// Longest side of the copy the [`views`] are hashed on. A view's hashes only need to come
/// close to a re-post's (PDQ blurs every picture down to 64 × 64 anyway), not to equal the PDQ
/// reference bit for bit as the whole photo's do; hashing crops of one shrunk copy costs a
/// fraction of hashing each at full resolution. The side local features are found at, so the
/// same copy serves them when the whole picture is the photo.
pub const VIEW_HASH_SIDE: u32 = crate::reuse::features::MAX_SIDE;

/// Side of the square copy the hashes are computed from (4× the 16-px DCT input).
pub const SHRINK_SIDE: u32 = 64;

/// Computes both hashes; one per worker thread (it keeps scratch buffers).
pub struct PerceptualHasher {
    phash: Hasher,
    dhash: Hasher,
    resizer: Resizer,
}

impl std::fmt::Debug for PerceptualHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PerceptualHasher")
    }
}

impl Default for PerceptualHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PerceptualHasher {
    /// pHash: median of the 8×8 low frequencies of a DCT; dHash: horizontal gradients.
    pub fn new() -> Self {
        Self {
            phash: HasherConfig::new()
                .hash_size(8, 8)
                .hash_alg(HashAlg::Median)
                .preproc_dct()
                .to_hasher(),
            dhash: HasherConfig::new().hash_size(8, 8).hash_alg(HashAlg::Gradient).to_hasher(),
            resizer: Resizer::new(),
        }
    }

    /// Hashes an RGB image, after trimming uniform borders.
    pub fn hash(&mut self, img: &RgbImage) -> Hashes {
        let trimmed = trimmed(img);
        let (pdq, quality) = pdq::pdq(&trimmed);
        self.hash_trimmed(&trimmed, pdq, quality)
    }

    /// Hashes a query image: its hashes and the exact PDQ hashes of its eight rotations and
    /// mirror images (identity first), to find copies that were flipped or rotated.
    pub fn hash_query(&mut self, img: &RgbImage) -> (Hashes, [Pdq; 8]) {
        let trimmed = trimmed(img);
        let (variants, quality) = pdq::pdq_dihedral(&trimmed);
        (self.hash_trimmed(&trimmed, variants[0], quality), variants)
    }

    /// Hashes the picture inside its borders (exactly, at full resolution) and its [`views`]
    /// (on a copy [`VIEW_HASH_SIDE`] long; their rectangles in the trimmed picture's pixels);
    /// returns them with the photo itself, on which local features are computed: the cut-out
    /// at full resolution when the picture is a screenshot or frame around a photo, else the
    /// trimmed picture — as that copy when it is larger, which is the size features shrink it
    /// to anyway (the features are the same).
    pub fn hash_with_views(&mut self, img: &RgbImage) -> (Hashes, Vec<View>, RgbImage) {
        let trimmed = trimmed(img);
        let (pdq, quality) = pdq::pdq(&trimmed);
        let whole = self.hash_trimmed(&trimmed, pdq, quality);
        let (w, h) = trimmed.dimensions();
        let (hw, hh) = scaled(w, h, (VIEW_HASH_SIDE as f32 / w.max(h) as f32).min(1.0));
        let shrunk = resize_rgb(&mut self.resizer, &trimmed, hw, hh);
        let (sw, sh) = scaled(hw, hh, (VIEW_SIDE as f32 / hw.max(hh) as f32).min(1.0));
        let small = DynamicImage::ImageRgb8(resize_rgb(&mut self.resizer, &shrunk, sw, sh)).to_luma8();
        // `r` in pixels of a copy `from_w` × `from_h` of the trimmed picture, in those of one `to_w` × `to_h`.
        let rescale = |r: [u32; 4], (from_w, from_h): (u32, u32), (to_w, to_h): (u32, u32)| {
            let at = |v: u32, from: u32, to: u32| ((v as u64 * to as u64) / from as u64) as u32;
            [at(r[0], from_w, to_w), at(r[1], from_h, to_h), at(r[2], from_w, to_w).min(to_w), at(r[3], from_h, to_h).min(to_h)]
        };
        let cut = views::photo_rect(&small).map(|r| rescale(r, (sw, sh), (w, h)));
        let photo_rect = cut.unwrap_or([0, 0, w, h]);
        let mut out = Vec::new();
        let mut view = |hasher: &mut Self, name: String, r: [u32; 4]| {
            let [x0, y0, x1, y1] = rescale(r, (w, h), (hw, hh));
            // At least one pixel of the shrunk copy, inside it.
            let (x0, y0) = (x0.min(hw - 1), y0.min(hh - 1));
            let part = crop(&shrunk, [x0, y0, x1.max(x0 + 1), y1.max(y0 + 1)]);
            let (pdq, quality) = pdq::pdq(&part);
            out.push(View { view: name, rect: r, hashes: hasher.hash_trimmed(&part, pdq, quality) });
        };
        if let Some(r) = cut {
            view(self, "photo".to_string(), r);
        }
        for share in views::CENTRE_SHARES {
            let r = views::centre_crop(photo_rect, share);
            if r[2] - r[0] >= 16 && r[3] - r[1] >= 16 {
                view(self, format!("centre{}", (share * 100.0).round()), r);
            }
        }
        let photo = match cut {
            Some(r) => crop(&trimmed, r),
            None if (hw, hh) != (w, h) => shrunk,
            None => trimmed.into_owned(),
        };
        (whole, out, photo)
    }

    /// The 64-bit hashes of an already trimmed image, joined with its PDQ hash.
    fn hash_trimmed(&mut self, img: &RgbImage, pdq: Pdq, pdq_quality: u8) -> Hashes {
        let small = resize_rgb(&mut self.resizer, img, SHRINK_SIDE, SHRINK_SIDE);
        let grey = DynamicImage::ImageRgb8(small).to_luma8();
        Hashes {
            phash: to_u64(self.phash.hash_image(&grey).as_bytes()),
            dhash: to_u64(self.dhash.hash_image(&grey).as_bytes()),
            pdq,
            pdq_quality,
        }
    }
}

/// The picture inside uniform borders ([`trim::content_rect`]); borrowed when there are none.
pub fn trimmed(img: &RgbImage) -> Cow<'_, RgbImage> {
    let (x, y, w, h) = trim::content_rect(img);
    if (w, h) == img.dimensions() {
        Cow::Borrowed(img)
    } else {
        // Row slices: `SubImage::to_image` copies pixel by pixel, ~10× slower.
        Cow::Owned(crop(img, [x, y, x + w, y + h]))
    }
}

/// `w × h` scaled by `scale`, rounded, at least 1 × 1.
pub(crate) fn scaled(w: u32, h: u32, scale: f32) -> (u32, u32) {
    (((w as f32 * scale).round() as u32).max(1), ((h as f32 * scale).round() as u32).max(1))
}

/// The pixels of `img` inside `rect` (`[x0, y0, x1, y1]`), copied row by row.
fn crop(img: &RgbImage, rect: [u32; 4]) -> RgbImage {
    let [x0, y0, x1, y1] = rect;
    let stride = img.width() as usize * 3;
    let mut buf = Vec::with_capacity((x1 - x0) as usize * (y1 - y0) as usize * 3);
    for row in img.as_raw().chunks_exact(stride).skip(y0 as usize).take((y1 - y0) as usize) {
        buf.extend_from_slice(&row[x0 as usize * 3..x1 as usize * 3]);
    }
    RgbImage::from_raw(x1 - x0, y1 - y0, buf).expect("buffer sized for the rectangle")
}

/// Resizes `img` to `w × h` with `fast_image_resize`'s antialiased bilinear filter: fast, and
/// close to Pillow but not bit-exact, which hashing does not need.
pub(crate) fn resize_rgb(resizer: &mut Resizer, img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let mut dst = RgbImage::new(w.max(1), h.max(1));
    if img.width() == dst.width() && img.height() == dst.height() {
        dst.copy_from_slice(img.as_raw());
        return dst;
    }
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    resizer
        .resize(img, &mut dst, &options)
        .expect("RGB8 to RGB8 resize of non-empty images cannot fail");
    dst
}

fn to_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
    u64::from_be_bytes(b)
}

/// Number of differing bits between two 64-bit hashes.
pub fn distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo(name: &str) -> RgbImage {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../datasets/demo/images/").to_string() + name;
        image::open(path).unwrap().to_rgb8()
    }

    #[test]
    fn resized_copy_hashes_close_and_different_photo_far() {
        let mut h = PerceptualHasher::new();
        let cat = demo("skimage_chelsea.png");
        let a = h.hash(&cat);
        let half = image::imageops::resize(&cat, cat.width() / 2, cat.height() / 2, image::imageops::FilterType::Triangle);
        let b = h.hash(&half);
        let c = h.hash(&demo("skimage_coffee.jpg"));
        assert!(distance(a.phash, b.phash) <= 4, "{:016x} {:016x}", a.phash, b.phash);
        assert!(distance(a.dhash, b.dhash) <= 6, "{:016x} {:016x}", a.dhash, b.dhash);
        assert!(distance(a.phash, c.phash) > 16);
        assert!(distance(a.dhash, c.dhash) > 16);
    }

    #[test]
    fn views_hashed_on_the_shrunk_copy_stay_close_to_exact_hashes_of_their_rectangles() {
        let mut h = PerceptualHasher::new();
        let coffee = image::imageops::resize(&demo("skimage_coffee.jpg"), 1800, 1200, image::imageops::FilterType::CatmullRom);
        // Fine grain that only the full-resolution picture has.
        let mut s = 99u32;
        let big = RgbImage::from_fn(1800, 1200, |x, y| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            image::Rgb(coffee.get_pixel(x, y).0.map(|c| c.saturating_add((s >> 28) as u8)))
        });
        let (whole, views, photo) = h.hash_with_views(&big);
        assert_eq!(whole, h.hash(&big), "the whole photo keeps its exact hashes");
        let full = trimmed(&big);
        assert_eq!(photo.dimensions(), scaled(full.width(), full.height(), VIEW_HASH_SIDE as f32 / 1800.0), "the whole photo, shrunk: no cut-out");
        assert_eq!(views.iter().map(|v| v.view.as_str()).collect::<Vec<_>>(), ["centre5", "centre10"]);
        let mut far = 0;
        for v in &views {
            let (exact, _) = pdq::pdq(&crop(&full, v.rect));
            let d = exact.distance(&v.hashes.pdq);
            assert!(d <= 16, "{}: {d} bits from the exact PDQ of its rectangle", v.view);
            far = far.max(exact.distance(&whole.pdq));
        }
        assert!(far > 24, "the test needs views that differ from the whole photo ({far} bits)");
    }

    #[test]
    fn thin_and_tiny_pictures_get_views_inside_them() {
        let mut h = PerceptualHasher::new();
        for (w, hgt) in [(5000, 40), (40, 5000), (1, 3000), (3000, 1), (17, 17), (513, 97), (2000, 600)] {
            let img = RgbImage::from_fn(w, hgt, |x, y| image::Rgb([(x * 7 + y * 3) as u8, (x ^ y) as u8, (x * y) as u8]));
            let (_, views, photo) = h.hash_with_views(&img);
            let full = trimmed(&img);
            assert!(photo.width() >= 1 && photo.height() >= 1, "{w} x {hgt}");
            for v in &views {
                let [x0, y0, x1, y1] = v.rect;
                assert!(x0 < x1 && y0 < y1 && x1 <= full.width() && y1 <= full.height(), "{w} x {hgt}: {} at {:?}", v.view, v.rect);
            }
        }
    }
}
