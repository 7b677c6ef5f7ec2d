//! PDQ's blur and decimation (the reference's `jaroszFilterFloat` with two passes each way, then
//! `decimateFloat` to 64×64), streamed: rows go through luma → row box → column box → row box
//! → column box in blocks, so the full-size float image is never stored and the work stays in
//! cache. Every value gets the reference's float operations in the reference's order, so the
//! result is bit-identical to the plain version (`tests/pdq.rs` checks against the reference).

use image::RgbImage;

/// Side of the decimated image.
pub(super) const DOWNSAMPLE: usize = 64;
/// Rows boxed together along the row direction: one SIMD register of f32 lanes.
const LANES: usize = 8;

/// Blurs the image's luma twice in each direction and samples it at 64×64 points.
pub(super) fn blur_decimate(img: &RgbImage) -> [[f32; DOWNSAMPLE]; DOWNSAMPLE] {
    let (cols, rows) = (img.width() as usize, img.height() as usize);
    let mut small = [[0f32; DOWNSAMPLE]; DOWNSAMPLE];
    if rows == 0 || cols == 0 {
        return small;
    }
    let (win_along_rows, win_along_cols) = (jarosz_window(cols), jarosz_window(rows));
    let sample = |i: usize, n: usize| ((i as f64 + 0.5) * n as f64 / DOWNSAMPLE as f64) as usize;
    let sample_cols: Vec<usize> = (0..DOWNSAMPLE).map(|j| sample(j, cols)).collect();
    let all_cols: Vec<usize> = (0..cols).collect();

    let mut boxer = RowBoxer::new(cols);
    let mut first_cols = ColumnBox::new(rows, cols, win_along_cols);
    // Pass 2 only keeps the 64 columns decimation reads (each still summed in full order).
    let mut second_rows = Vec::with_capacity(LANES * cols);
    let mut narrow = vec![0f32; rows * DOWNSAMPLE];
    let mut narrow_filled = 0;
    let mut luma = vec![0f32; LANES * cols];
    let mut boxed = vec![0f32; LANES * cols];
    let raw = img.as_raw();
    let lut = luma_tables();
    let mut feed_second = |row: &[f32], boxer: &mut RowBoxer, flush: bool| {
        second_rows.extend_from_slice(row);
        let k = second_rows.len() / cols;
        if k == LANES || (flush && k > 0) {
            let out = &mut narrow[narrow_filled * DOWNSAMPLE..(narrow_filled + k) * DOWNSAMPLE];
            boxer.run(&second_rows, out, k, win_along_rows, &sample_cols);
            narrow_filled += k;
            second_rows.clear();
        }
    };
    for r0 in (0..rows).step_by(LANES) {
        let k = LANES.min(rows - r0);
        let (rgb, out) = (&raw[r0 * cols * 3..(r0 + k) * cols * 3], &mut luma[..k * cols]);
        let done = crate::simd::luma_avx2(rgb, out, LUMA);
        for (v, p) in out[done..].iter_mut().zip(rgb[done * 3..].chunks_exact(3)) {
            // The same f32 products and sum order as 0.299·R + 0.587·G + 0.114·B.
            *v = lut[0][p[0] as usize] + lut[1][p[1] as usize] + lut[2][p[2] as usize];
        }
        boxer.run(&luma[..k * cols], &mut boxed[..k * cols], k, win_along_rows, &all_cols);
        for row in boxed[..k * cols].chunks_exact(cols) {
            first_cols.push(row, &mut |out| feed_second(out, &mut boxer, false));
        }
    }
    first_cols.finish(&mut |out| feed_second(out, &mut boxer, false));
    feed_second(&[], &mut boxer, true);
    let mut narrow_out = vec![0f32; rows * DOWNSAMPLE];
    box_columns(&narrow, &mut narrow_out, rows, DOWNSAMPLE, win_along_cols);
    for (i, row) in small.iter_mut().enumerate() {
        let r = sample(i, rows);
        row.copy_from_slice(&narrow_out[r * DOWNSAMPLE..(r + 1) * DOWNSAMPLE]);
    }
    small
}

/// The reference's luma weights for R, G and B.
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// Each channel's contribution to luma for every byte value: the reference's products, looked
/// up instead of converted and multiplied per pixel.
fn luma_tables() -> &'static [[f32; 256]; 3] {
    static T: std::sync::OnceLock<[[f32; 256]; 3]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = [[0f32; 256]; 3];
        for (table, coeff) in t.iter_mut().zip(LUMA) {
            for (v, x) in table.iter_mut().enumerate() {
                *x = coeff * v as f32;
            }
        }
        t
    })
}

/// The reference's `computeJaroszFilterWindowSize`.
fn jarosz_window(old: usize) -> usize {
    old.div_ceil(2 * DOWNSAMPLE)
}

/// Phase counts of the reference's `box1DFloat` for a vector of `len` and window `full`; the
/// window is clipped to the vector, which the reference (reading out of bounds) does not do.
fn box_phases(len: usize, full: usize) -> (usize, usize, usize, usize) {
    let full = full.clamp(1, len);
    let half = (full + 2) / 2;
    (half - 1, full - half + 1, len - full, half - 1)
}

/// One box-blur pass along a contiguous vector, with the reference's running sum and its
/// shrinking windows at both ends (`box1DFloat`).
fn box_1d(src: &[f32], dst: &mut [f32], full: usize) {
    let (p1, p2, p3, p4) = box_phases(src.len(), full);
    let (mut li, mut ri, mut oi) = (0, 0, 0);
    let mut sum = 0f32;
    let mut n = 0usize;
    for _ in 0..p1 {
        sum += src[ri];
        n += 1;
        ri += 1;
    }
    for _ in 0..p2 {
        sum += src[ri];
        n += 1;
        dst[oi] = sum / n as f32;
        ri += 1;
        oi += 1;
    }
    for _ in 0..p3 {
        sum += src[ri];
        sum -= src[li];
        dst[oi] = sum / n as f32;
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..p4 {
        sum -= src[li];
        n -= 1;
        dst[oi] = sum / n as f32;
        li += 1;
        oi += 1;
    }
}

/// Boxes blocks of up to [`LANES`] rows along the row direction. A full block is interleaved so
/// that each lane runs one row's running sum — the reference's operations, vectorised across
/// rows instead of stalled on one row's chain of additions.
struct RowBoxer {
    lanes_in: Vec<[f32; LANES]>,
    lanes_out: Vec<[f32; LANES]>,
    row_out: Vec<f32>,
}

impl RowBoxer {
    fn new(cols: usize) -> Self {
        Self { lanes_in: vec![[0f32; LANES]; cols], lanes_out: vec![[0f32; LANES]; cols], row_out: vec![0f32; cols] }
    }

    /// Boxes the `k` rows of `src` (k ≤ LANES), writing the columns listed in `keep` to `dst`
    /// (`k × keep.len()`).
    fn run(&mut self, src: &[f32], dst: &mut [f32], k: usize, full: usize, keep: &[usize]) {
        let cols = self.row_out.len();
        let width = keep.len();
        if k < LANES {
            for (r, row) in src.chunks_exact(cols).take(k).enumerate() {
                box_1d(row, &mut self.row_out, full);
                for (n, &t) in keep.iter().enumerate() {
                    dst[r * width + n] = self.row_out[t];
                }
            }
            return;
        }
        for (t, v) in self.lanes_in.iter_mut().enumerate() {
            for (l, x) in v.iter_mut().enumerate() {
                *x = src[l * cols + t];
            }
        }
        let (p1, p2, p3, p4) = box_phases(cols, full);
        let (input, out) = (&self.lanes_in, &mut self.lanes_out);
        let (mut li, mut ri, mut oi) = (0, 0, 0);
        let mut sum = [0f32; LANES];
        let mut n = 0usize;
        let add = |sum: &mut [f32; LANES], v: &[f32; LANES]| (0..LANES).for_each(|l| sum[l] += v[l]);
        let sub = |sum: &mut [f32; LANES], v: &[f32; LANES]| (0..LANES).for_each(|l| sum[l] -= v[l]);
        let div = |o: &mut [f32; LANES], sum: &[f32; LANES], n: usize| (0..LANES).for_each(|l| o[l] = sum[l] / n as f32);
        for _ in 0..p1 {
            add(&mut sum, &input[ri]);
            n += 1;
            ri += 1;
        }
        for _ in 0..p2 {
            add(&mut sum, &input[ri]);
            n += 1;
            div(&mut out[oi], &sum, n);
            ri += 1;
            oi += 1;
        }
        for _ in 0..p3 {
            add(&mut sum, &input[ri]);
            sub(&mut sum, &input[li]);
            div(&mut out[oi], &sum, n);
            li += 1;
            ri += 1;
            oi += 1;
        }
        for _ in 0..p4 {
            sub(&mut sum, &input[li]);
            n -= 1;
            div(&mut out[oi], &sum, n);
            li += 1;
            oi += 1;
        }
        for (m, &t) in keep.iter().enumerate() {
            for (l, x) in out[t].iter().enumerate() {
                dst[l * width + m] = *x;
            }
        }
    }
}

/// `box_1d` down every column at once, fed one row at a time: running sums per column, and a
/// ring of the rows still inside the window. Emits output rows in order.
struct ColumnBox {
    cols: usize,
    phases: [usize; 4],
    sums: Vec<f32>,
    ring: Vec<f32>,
    ring_rows: usize,
    n: usize,
    li: usize,
    ri: usize,
    out: Vec<f32>,
}

impl ColumnBox {
    fn new(rows: usize, cols: usize, full: usize) -> Self {
        let (p1, p2, p3, p4) = box_phases(rows, full);
        let ring_rows = full.clamp(1, rows) + 1;
        Self { cols, phases: [p1, p2, p3, p4], sums: vec![0f32; cols], ring: vec![0f32; ring_rows * cols], ring_rows, n: 0, li: 0, ri: 0, out: vec![0f32; cols] }
    }

    fn row(&self, r: usize) -> &[f32] {
        let s = (r % self.ring_rows) * self.cols;
        &self.ring[s..s + self.cols]
    }

    fn emit(&mut self, sink: &mut impl FnMut(&[f32])) {
        let n = self.n as f32;
        for (o, s) in self.out.iter_mut().zip(&self.sums) {
            *o = s / n;
        }
        sink(&self.out);
    }

    /// Takes the next input row (phases 1–3 of `box_1d`, one step per row).
    fn push(&mut self, row: &[f32], sink: &mut impl FnMut(&[f32])) {
        let s = (self.ri % self.ring_rows) * self.cols;
        self.ring[s..s + self.cols].copy_from_slice(row);
        let [p1, p2, _, _] = self.phases;
        self.sums.iter_mut().zip(row).for_each(|(a, v)| *a += v);
        if self.ri < p1 + p2 {
            self.n += 1;
            if self.ri >= p1 {
                self.emit(sink);
            }
        } else {
            let (li, cols) = (self.li, self.cols);
            let s = (li % self.ring_rows) * cols;
            self.sums.iter_mut().zip(&self.ring[s..s + cols]).for_each(|(a, v)| *a -= v);
            self.li += 1;
            self.emit(sink);
        }
        self.ri += 1;
    }

    /// After the last row: phase 4, the shrinking window at the end.
    fn finish(&mut self, sink: &mut impl FnMut(&[f32])) {
        for _ in 0..self.phases[3] {
            let li = self.li;
            let sums = std::mem::take(&mut self.sums);
            let sums: Vec<f32> = sums.into_iter().zip(self.row(li)).map(|(a, v)| a - v).collect();
            self.sums = sums;
            self.n -= 1;
            self.li += 1;
            self.emit(sink);
        }
    }
}

/// `box_1d` down every column of a stored `rows × cols` buffer, a whole row at a time.
fn box_columns(src: &[f32], dst: &mut [f32], rows: usize, cols: usize, full: usize) {
    let mut col = ColumnBox::new(rows, cols, full);
    let mut oi = 0;
    let mut sink = |out: &[f32]| {
        dst[oi * cols..(oi + 1) * cols].copy_from_slice(out);
        oi += 1;
    };
    for row in src.chunks_exact(cols) {
        col.push(row, &mut sink);
    }
    col.finish(&mut sink);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_filter_of_constant_is_constant() {
        let src = vec![3.0f32; 10];
        let mut dst = vec![0.0f32; 10];
        box_1d(&src, &mut dst, 4);
        assert!(dst.iter().all(|v| (v - 3.0).abs() < 1e-6), "{dst:?}");
        box_1d(&src, &mut dst, 40);
        assert!(dst.iter().all(|v| (v - 3.0).abs() < 1e-6), "{dst:?}");
    }

    #[test]
    fn streamed_column_box_equals_box_1d_per_column() {
        let (rows, cols) = (23, 5);
        let src: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 251) as f32 * 0.37).collect();
        for full in [1, 2, 3, 6, 23, 40] {
            let mut dst = vec![0f32; rows * cols];
            box_columns(&src, &mut dst, rows, cols, full);
            for c in 0..cols {
                let column: Vec<f32> = (0..rows).map(|r| src[r * cols + c]).collect();
                let mut want = vec![0f32; rows];
                box_1d(&column, &mut want, full);
                let got: Vec<f32> = (0..rows).map(|r| dst[r * cols + c]).collect();
                assert_eq!(got, want, "full {full} column {c}");
            }
        }
    }
}
