//! Pillow's resampling (`Image.resize` with `BILINEAR`, antialiased), reproduced bit for bit:
//! the same coefficients, 22-bit fixed point, two passes with an 8-bit intermediate in Pillow's
//! order. Models are trained on Pillow's pixels, and quantised models react to a single
//! grey level, so model inputs are resized with this; hashing uses `fast_image_resize`.

use std::ops::Range;

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
    let (x0, y0, cw, chh) = (left as usize, top as usize, cw as usize, ch as usize);
    assert!(x0 + cw <= w as usize && y0 + chh <= h as usize, "window outside the resized image");
    let input = (img.width() as usize, img.height() as usize);
    let out = passes(img.as_raw(), input, (w as usize, h as usize), x0..x0 + cw, y0..y0 + chh);
    RgbImage::from_raw(cw as u32, chh as u32, out).expect("buffer sized for the output")
}

/// Runs `passes_inline` compiled for AVX2 when the CPU has it (the 32-bit multiplies then go
/// eight at a time), else for the baseline target.
fn passes(src: &[u8], input: (usize, usize), output: (usize, usize), cols: Range<usize>, rows: Range<usize>) -> Vec<u8> {
    crate::simd::with_avx2(
        #[inline(always)]
        || passes_inline(src, input, output, cols, rows),
    )
}

/// The output pixels `cols × rows` of `src` (`input` = width, height) resized to `output`.
#[inline(always)]
fn passes_inline(src: &[u8], input: (usize, usize), output: (usize, usize), cols: Range<usize>, rows: Range<usize>) -> Vec<u8> {
    let ((iw, ih), (ow, oh)) = (input, output);
    match (ow != iw, oh != ih) {
        (false, false) => crop(src, iw, cols, rows),
        (true, false) => horizontal(src, iw, &coeffs(iw, 0.0, iw as f64, ow), cols, rows),
        (false, true) => vertical(src, iw, &coeffs(ih, 0.0, ih as f64, oh), cols, rows),
        (true, true) => {
            let (chz, cv) = (coeffs(iw, 0.0, iw as f64, ow), coeffs(ih, 0.0, ih as f64, oh));
            if ow > iw && oh < ih {
                // vertical first, over only the columns the horizontal pass will read
                let read = span(&chz.bounds[cols.clone()]);
                let tmp = vertical(src, iw, &cv, read.clone(), rows.clone());
                horizontal(&tmp, read.len(), &chz.shifted(read.start), cols, 0..rows.len())
            } else {
                // horizontal first, over only the rows the vertical pass will read
                let read = span(&cv.bounds[rows.clone()]);
                let tmp = horizontal(src, iw, &chz, cols.clone(), read.clone());
                vertical(&tmp, cols.len(), &cv.shifted(read.start), 0..cols.len(), rows)
            }
        }
    }
}

/// The input range a run of output pixels reads.
fn span(bounds: &[(usize, usize)]) -> Range<usize> {
    let first = bounds.first().map(|b| b.0).unwrap_or(0);
    let last = bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(first);
    first..last
}

/// Copies a window of an RGB buffer `w` pixels wide.
fn crop(src: &[u8], w: usize, cols: Range<usize>, rows: Range<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(cols.len() * rows.len() * 3);
    for y in rows {
        out.extend_from_slice(&src[(y * w + cols.start) * 3..(y * w + cols.end) * 3]);
    }
    out
}

/// Rows handled together by the horizontal pass: they share every weight, so one tap
/// multiplies `3 × BLOCK` values laid side by side.
const BLOCK: usize = 8;

/// Pillow's horizontal pass over output columns `cols` (indices into `c`) of input rows `rows`,
/// `BLOCK` rows at a time: the rows' pixels are interleaved so that each
/// input column's samples of all rows are adjacent (`[channel][row]`), and every tap becomes
/// one contiguous multiply-add over `3 × BLOCK` lanes. Same sums as Pillow's loop, bit for bit
/// (integer arithmetic; only the order of the rows changes).
#[inline(always)]
fn horizontal(src: &[u8], w: usize, c: &Coeffs, cols: Range<usize>, rows: Range<usize>) -> Vec<u8> {
    const LANES: usize = 3 * BLOCK;
    let half = 1i32 << (PRECISION_BITS - 1);
    let cw = cols.len();
    let mut out = vec![0u8; rows.len() * cw * 3];
    let read = span(&c.bounds[cols.clone()]);
    let mut t = vec![0u8; read.len() * LANES];
    let rows: Vec<usize> = rows.collect();
    let n = read.len() * 3;
    // The block's outputs, `[x][channel][row]` like `t`, turned back into rows at the end.
    let mut o = vec![0u8; cw * LANES];
    for (b, block) in rows.chunks(BLOCK).enumerate() {
        // A short last block repeats its last row; those lanes are computed and dropped.
        let lines: [&[u8]; BLOCK] = std::array::from_fn(|r| {
            let start = (block[r.min(block.len() - 1)] * w + read.start) * 3;
            &src[start..start + n]
        });
        interleave(&lines, &mut t);
        for (xx, dst) in cols.clone().zip(o.chunks_exact_mut(LANES)) {
            let (xmin, count) = c.bounds[xx];
            let k = &c.weights[xx * c.ksize..xx * c.ksize + count];
            let taps = &t[(xmin - read.start) * LANES..(xmin - read.start + count) * LANES];
            let mut acc = [half; LANES];
            for (px, &kw) in taps.chunks_exact(LANES).zip(k) {
                let px: &[u8; LANES] = px.try_into().expect("LANES bytes");
                // Opaque to the optimiser: otherwise LLVM also vectorises across taps, gathering
                // bytes 24 apart and reducing at the end, which measured 1.6× slower overall.
                let kw = std::hint::black_box(kw);
                for l in 0..LANES {
                    acc[l] += px[l] as i32 * kw;
                }
            }
            for (d, &a) in dst.iter_mut().zip(&acc) {
                *d = clip8(a);
            }
        }
        let first = b * BLOCK * cw * 3;
        let mut lines: [&mut [u8]; BLOCK] = Default::default();
        for (r, line) in out[first..].chunks_mut(cw * 3).take(block.len()).enumerate() {
            lines[r] = line;
        }
        deinterleave(&o, &mut lines);
    }
    out
}

/// `t[j * BLOCK + r] = lines[r][j]`: the rows' bytes side by side, 16 columns at a time by
/// [`crate::simd::transpose_8x16`] (a per-byte loop compiles to scalar moves, as does a fixed-size tile).
#[inline(always)]
fn interleave(lines: &[&[u8]; BLOCK], t: &mut [u8]) {
    const TILE: usize = 16;
    let n = lines[0].len();
    assert!(lines.iter().all(|l| l.len() == n) && t.len() == n * BLOCK);
    let full = n / TILE * TILE;
    for (j0, out) in (0..full).step_by(TILE).zip(t.chunks_exact_mut(TILE * BLOCK)) {
        let tile: [[u8; TILE]; BLOCK] = std::array::from_fn(|r| lines[r][j0..j0 + TILE].try_into().expect("16 bytes"));
        out.copy_from_slice(bytemuck::cast_slice(&crate::simd::transpose_8x16(&tile)));
    }
    for j in full..n {
        for r in 0..BLOCK {
            t[j * BLOCK + r] = lines[r][j];
        }
    }
}

/// `lines[r][j] = t[j * BLOCK + r]` for the rows present (a short last block has fewer).
#[inline(always)]
fn deinterleave(t: &[u8], lines: &mut [&mut [u8]; BLOCK]) {
    let n = t.len() / BLOCK;
    for (r, line) in lines.iter_mut().enumerate().filter(|(_, l)| !l.is_empty()) {
        assert_eq!(line.len(), n);
        for (j, d) in line.iter_mut().enumerate() {
            *d = t[j * BLOCK + r];
        }
    }
}

/// Pillow's vertical pass (inlined into `passes_inline`'s two compilations): output rows `rows` (indices into `c`) over input columns `cols` of a
/// buffer `w` pixels wide.
#[inline(always)]
fn vertical(src: &[u8], w: usize, c: &Coeffs, cols: Range<usize>, rows: Range<usize>) -> Vec<u8> {
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

    /// Pillow's horizontal loop as written in `Resample.c`, one pixel at a time.
    fn horizontal_pillow(src: &[u8], w: usize, c: &Coeffs, cols: Range<usize>, rows: Range<usize>) -> Vec<u8> {
        let half = 1i32 << (PRECISION_BITS - 1);
        let mut out = Vec::new();
        for row in rows {
            for xx in cols.clone() {
                let (xmin, count) = c.bounds[xx];
                for ch in 0..3 {
                    let mut s = half;
                    for x in 0..count {
                        s += src[(row * w + xmin + x) * 3 + ch] as i32 * c.weights[xx * c.ksize + x];
                    }
                    out.push(clip8(s));
                }
            }
        }
        out
    }

    #[test]
    fn blocked_horizontal_pass_equals_pillows_loop() {
        let (iw, ih) = (203, 29);
        let img = RgbImage::from_fn(iw, ih, |x, y| {
            let v = x.wrapping_mul(2654435761).wrapping_add(y.wrapping_mul(40503)).rotate_left(x % 13);
            image::Rgb([(v >> 3) as u8, (v >> 11) as u8, (v >> 19) as u8])
        });
        let src = img.as_raw();
        for ow in [1, 7, 48, 100, 202, 203, 350] {
            let c = coeffs(iw as usize, 0.0, iw as f64, ow);
            // all rows (three full blocks and a short one), then a window of both
            for (cols, rows) in [(0..ow, 0..ih as usize), (ow / 3..ow - ow / 4, 3..12)] {
                let want = horizontal_pillow(src, iw as usize, &c, cols.clone(), rows.clone());
                assert_eq!(horizontal(src, iw as usize, &c, cols.clone(), rows.clone()), want, "{ow}");
                // the whole resize, as dispatched (AVX2 here when the CPU has it) and baseline
                for oh in [5, 29, 60] {
                    let (input, output) = ((iw as usize, ih as usize), (ow, oh));
                    let rows = 0..oh;
                    let baseline = passes_inline(src, input, output, cols.clone(), rows.clone());
                    assert_eq!(passes(src, input, output, cols.clone(), rows), baseline, "{ow}x{oh}");
                }
            }
        }
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
