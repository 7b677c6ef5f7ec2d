//! Pillow's resampling (`Image.resize` with `BILINEAR`, antialiased), reproduced bit for bit:
//! the same coefficients, 22-bit fixed point, two passes with an 8-bit intermediate in Pillow's
//! order. Models are trained on Pillow's pixels, and quantised models react to a single
//! grey level, so model inputs are resized with this; hashing uses `fast_image_resize`.

use image::RgbImage;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Coefficients of one pass: for each output pixel the first input index, the count, and
/// fixed-point weights (`ksize` per output pixel).
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

impl Coeffs {
    /// The same pass reading from an intermediate that starts at input index `start` (the first
    /// pass computed only the span the second one reads). Bounds outside it are never read.
    fn shifted(self, start: usize) -> Coeffs {
        let bounds = self.bounds.iter().map(|&(m, c)| (m.saturating_sub(start), c)).collect();
        Coeffs { bounds, ..self }
    }
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear filter.
fn coeffs(in_size: usize, in0: f64, in1: f64, out_size: usize) -> Coeffs {
    const SUPPORT: f64 = 1.0;
    let scale = (in1 - in0) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = in0 + (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) cast truncates toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let count = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, slot) in k.iter_mut().enumerate().take(count) {
            let w = bilinear((x as f64 + xmin as f64 - center + 0.5) * ss);
            *slot = w;
            ww += w;
        }
        for x in 0..count {
            let w = if ww != 0.0 { k[x] / ww } else { k[x] };
            let fixed = w * (1u32 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if w < 0.0 { (-0.5 + fixed) as i32 } else { (0.5 + fixed) as i32 };
        }
        bounds.push((xmin, count));
    }
    Coeffs { ksize, bounds, weights }
}

#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an RGB image to `w × h` exactly as Pillow's `img.resize((w, h), Image.BILINEAR)`.
pub fn resize_bilinear(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    resize_bilinear_window(img, w, h, 0, 0, w, h)
}

/// The `cw × ch` window at (`left`, `top`) of `resize_bilinear(img, w, h)`, computing only
/// those pixels (Pillow's weights for an output pixel depend on its position alone).
///
/// Pillow runs the horizontal pass first, except when the image grows horizontally and shrinks
/// vertically: then it shrinks first (vertical pass, then horizontal). The 8-bit intermediate
/// makes the order visible in the pixels, so it is reproduced.
pub fn resize_bilinear_window(img: &RgbImage, w: u32, h: u32, left: u32, top: u32, cw: u32, ch: u32) -> RgbImage {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (w as usize, h as usize);
    let (x0, y0, cw, chh) = (left as usize, top as usize, cw as usize, ch as usize);
    assert!(x0 + cw <= ow && y0 + chh <= oh, "window outside the resized image");
    let src = img.as_raw();
    let need_h = ow != iw;
    let need_v = oh != ih;
    let out = match (need_h, need_v) {
        (false, false) => crop(src, iw, x0..x0 + cw, y0..y0 + chh),
        (true, false) => horizontal(src, iw, &coeffs(iw, 0.0, iw as f64, ow), x0..x0 + cw, y0..y0 + chh),
        (false, true) => vertical(src, iw, &coeffs(ih, 0.0, ih as f64, oh), x0..x0 + cw, y0..y0 + chh),
        (true, true) => {
            let (chz, cv) = (coeffs(iw, 0.0, iw as f64, ow), coeffs(ih, 0.0, ih as f64, oh));
            if ow > iw && oh < ih {
                // vertical first, over only the columns the horizontal pass will read
                let cols = span(&chz.bounds[x0..x0 + cw]);
                let tmp = vertical(src, iw, &cv, cols.clone(), y0..y0 + chh);
                horizontal(&tmp, cols.len(), &chz.shifted(cols.start), x0..x0 + cw, 0..chh)
            } else {
                // horizontal first, over only the rows the vertical pass will read
                let rows = span(&cv.bounds[y0..y0 + chh]);
                let tmp = horizontal(src, iw, &chz, x0..x0 + cw, rows.clone());
                vertical(&tmp, cw, &cv.shifted(rows.start), 0..cw, y0..y0 + chh)
            }
        }
    };
    RgbImage::from_raw(cw as u32, chh as u32, out).expect("buffer sized for the output")
}

/// The input range a run of output pixels reads.
fn span(bounds: &[(usize, usize)]) -> std::ops::Range<usize> {
    let first = bounds.first().map(|b| b.0).unwrap_or(0);
    let last = bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(first);
    first..last
}

/// Copies a window of an RGB buffer `w` pixels wide.
fn crop(src: &[u8], w: usize, cols: std::ops::Range<usize>, rows: std::ops::Range<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(cols.len() * rows.len() * 3);
    for y in rows {
        out.extend_from_slice(&src[(y * w + cols.start) * 3..(y * w + cols.end) * 3]);
    }
    out
}

/// Pillow's horizontal pass: output columns `cols` (indices into `c`) of input rows `rows`.
fn horizontal(src: &[u8], w: usize, c: &Coeffs, cols: std::ops::Range<usize>, rows: std::ops::Range<usize>) -> Vec<u8> {
    let half = 1i32 << (PRECISION_BITS - 1);
    let cw = cols.len();
    let mut out = vec![0u8; rows.len() * cw * 3];
    for (y, row) in rows.enumerate() {
        let line = &src[row * w * 3..(row + 1) * w * 3];
        let dst = &mut out[y * cw * 3..(y + 1) * cw * 3];
        for (xx, out) in cols.clone().zip(dst.chunks_exact_mut(3)) {
            let (xmin, count) = c.bounds[xx];
            let k = &c.weights[xx * c.ksize..xx * c.ksize + count];
            let (mut s0, mut s1, mut s2) = (half, half, half);
            // one slice for the whole window: no bounds check per tap
            for (p, &kw) in line[xmin * 3..(xmin + count) * 3].chunks_exact(3).zip(k) {
                s0 += p[0] as i32 * kw;
                s1 += p[1] as i32 * kw;
                s2 += p[2] as i32 * kw;
            }
            out[0] = clip8(s0);
            out[1] = clip8(s1);
            out[2] = clip8(s2);
        }
    }
    out
}

/// Pillow's vertical pass: output rows `rows` (indices into `c`) over input columns `cols` of a
/// buffer `w` pixels wide.
fn vertical(src: &[u8], w: usize, c: &Coeffs, cols: std::ops::Range<usize>, rows: std::ops::Range<usize>) -> Vec<u8> {
    let half = 1i32 << (PRECISION_BITS - 1);
    let stride = cols.len() * 3;
    let mut out = vec![0u8; rows.len() * stride];
    let mut acc = vec![0i32; stride];
    for (i, yy) in rows.enumerate() {
        let (ymin, count) = c.bounds[yy];
        let k = &c.weights[yy * c.ksize..yy * c.ksize + count];
        acc.fill(half);
        // Row by row, so the inner loop runs over contiguous bytes (and vectorises).
        for (j, &kw) in k.iter().enumerate() {
            let start = ((ymin + j) * w + cols.start) * 3;
            for (a, &p) in acc.iter_mut().zip(&src[start..start + stride]) {
                *a += p as i32 * kw;
            }
        }
        for (d, &a) in out[i * stride..(i + 1) * stride].iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_a_copy_and_constant_stays_constant() {
        let img = RgbImage::from_fn(7, 5, |x, y| image::Rgb([(x * 30) as u8, (y * 40) as u8, 9]));
        assert_eq!(resize_bilinear(&img, 7, 5), img);
        let flat = RgbImage::from_pixel(300, 200, image::Rgb([17, 200, 99]));
        let small = resize_bilinear(&flat, 31, 13);
        assert!(small.pixels().all(|p| p.0 == [17, 200, 99]));
        let big = resize_bilinear(&flat, 901, 403);
        assert!(big.pixels().all(|p| p.0 == [17, 200, 99]));
    }

    #[test]
    fn window_equals_crop_of_full_resize() {
        let img = RgbImage::from_fn(97, 61, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 13 % 256) as u8, ((x * y) % 256) as u8]));
        for (w, h) in [(40, 30), (97, 61), (150, 61), (97, 20), (200, 130), (150, 40), (60, 90)] {
            let full = resize_bilinear(&img, w, h);
            let (l, t, cw, ch) = (w / 5, h / 4, w / 2, h / 2);
            let win = resize_bilinear_window(&img, w, h, l, t, cw, ch);
            assert_eq!(win, image::imageops::crop_imm(&full, l, t, cw, ch).to_image(), "{w}x{h}");
        }
    }
}
