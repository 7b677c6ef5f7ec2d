//! PDQ, Meta's 256-bit perceptual hash with a quality score, ported from the reference C++
//! (`pdq/cpp/hashing/pdqhashing.cpp`, ThreatExchange): float luma, two passes of Jarosz box
//! blur in each direction, decimation to 64×64, a 16×16 DCT without the DC row/column, and one
//! bit per coefficient above the median. Checked against Meta's expected hashes in
//! `tests/pdq.rs`.

use std::sync::OnceLock;

use image::RgbImage;

/// Side of the decimated image the DCT reads.
const DOWNSAMPLE: usize = 64;
/// Meta's cut-off: hashes of images below this quality are unreliable (featureless images).
pub const MIN_QUALITY: u8 = 50;

/// A 256-bit PDQ hash: `words[0]` holds bits 0..63, where bit `k` belongs to DCT coefficient
/// (row `k / 16`, column `k % 16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Pdq(pub [u64; 4]);

impl Pdq {
    /// Whether bit `k` (0..256) is set.
    pub fn bit(&self, k: usize) -> bool {
        self.0[k / 64] >> (k % 64) & 1 == 1
    }

    fn set(&mut self, k: usize) {
        self.0[k / 64] |= 1 << (k % 64);
    }

    /// Number of differing bits.
    pub fn distance(&self, other: &Pdq) -> u32 {
        self.0.iter().zip(other.0).map(|(a, b)| (a ^ b).count_ones()).sum()
    }

    /// The reference's hex form: 64 digits, most significant 16-bit word (bits 240..255) first.
    pub fn to_hex(&self) -> String {
        self.0.iter().rev().map(|w| format!("{w:016x}")).collect()
    }

    /// Parses the 64-digit hex form.
    pub fn from_hex(s: &str) -> Option<Pdq> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut words = [0u64; 4];
        for (i, w) in words.iter_mut().rev().enumerate() {
            *w = u64::from_str_radix(&s[i * 16..i * 16 + 16], 16).ok()?;
        }
        Some(Pdq(words))
    }

    /// The hashes the image would have if it were rotated or mirrored (the eight symmetries of
    /// the square, identity first), derived from the bits alone — a mirror negates the DCT's
    /// odd frequencies, a rotation also transposes — so they exist for stored hashes. They
    /// differ from the exact [`pdq_dihedral`] in a few bits (coefficients between the old and
    /// the new median; 4–12 bits on Meta's test photo).
    pub fn dihedral(&self) -> [Pdq; 8] {
        let mut all = [Pdq::default(); 8];
        for (n, (transpose, flip_rows, flip_cols)) in SYMMETRIES.into_iter().enumerate() {
            // Index i holds frequency i + 1: a mirror negates odd frequencies, i.e. even indices.
            for i in 0..16 {
                for j in 0..16 {
                    let negate = (flip_rows && i % 2 == 0) ^ (flip_cols && j % 2 == 0);
                    if self.bit(i * 16 + j) ^ negate {
                        let (r, c) = if transpose { (j, i) } else { (i, j) };
                        all[n].set(r * 16 + c);
                    }
                }
            }
        }
        all
    }

    /// The smallest distance between `other` and any rotation or mirror image of `self`.
    pub fn dihedral_distance(&self, other: &Pdq) -> u32 {
        self.dihedral().iter().map(|d| d.distance(other)).min().unwrap_or(256)
    }
}

/// Hashes an RGB image at full resolution, as the reference does; returns the hash and its
/// quality (0–100).
pub fn pdq(img: &RgbImage) -> (Pdq, u8) {
    let (dct, quality) = dct_of(img);
    (bits_above_median(&dct), quality)
}

/// The hashes of the image's eight rotations and mirror images (identity first, in
/// [`Pdq::dihedral`]'s order), computed exactly as the reference does — from the DCT, with a
/// median per variant — and the quality. Used for query images.
pub fn pdq_dihedral(img: &RgbImage) -> ([Pdq; 8], u8) {
    let (dct, quality) = dct_of(img);
    let mut all = [Pdq::default(); 8];
    for (n, (transpose, flip_rows, flip_cols)) in SYMMETRIES.into_iter().enumerate() {
        let mut b = [[0f32; 16]; 16];
        for i in 0..16 {
            for j in 0..16 {
                let negate = (flip_rows && i % 2 == 0) ^ (flip_cols && j % 2 == 0);
                let v = if negate { -dct[i][j] } else { dct[i][j] };
                if transpose {
                    b[j][i] = v;
                } else {
                    b[i][j] = v;
                }
            }
        }
        all[n] = bits_above_median(&b);
    }
    (all, quality)
}

/// The eight symmetries of the square as (transpose, mirror rows, mirror columns).
const SYMMETRIES: [(bool, bool, bool); 8] = [
    (false, false, false),
    (false, false, true),
    (false, true, false),
    (false, true, true),
    (true, false, false),
    (true, false, true),
    (true, true, false),
    (true, true, true),
];

/// The 16×16 DCT coefficients and the quality of an RGB image.
fn dct_of(img: &RgbImage) -> ([[f32; 16]; 16], u8) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut luma: Vec<f32> = img
        .as_raw()
        .chunks_exact(3)
        .map(|p| 0.299f32 * p[0] as f32 + 0.587f32 * p[1] as f32 + 0.114f32 * p[2] as f32)
        .collect();
    dct_of_luma(&mut luma, h, w)
}

/// The 16×16 DCT coefficients and the quality of a row-major `rows × cols` luma buffer
/// (blurred in place).
fn dct_of_luma(luma: &mut [f32], rows: usize, cols: usize) -> ([[f32; 16]; 16], u8) {
    assert_eq!(luma.len(), rows * cols, "luma buffer size");
    if rows == 0 || cols == 0 {
        return ([[0f32; 16]; 16], 0);
    }
    let win_along_rows = jarosz_window(cols);
    let win_along_cols = jarosz_window(rows);
    let sample = |i: usize, n: usize| ((i as f64 + 0.5) * n as f64 / DOWNSAMPLE as f64) as usize;
    let sample_cols: Vec<usize> = (0..DOWNSAMPLE).map(|j| sample(j, cols)).collect();
    let all_cols: Vec<usize> = (0..cols).collect();
    // Two blur passes each way (the reference's PDQ_NUM_JAROSZ_XY_PASSES). Pass 1 in full; in
    // pass 2 only the 64 columns that decimation reads are kept: every
    // column's running sum is still computed in the reference's order, so the values are equal.
    let mut scratch = vec![0f32; luma.len()];
    box_rows(luma, &mut scratch, rows, cols, win_along_rows, &all_cols);
    box_columns(&scratch, luma, rows, cols, win_along_cols);
    let mut narrow = vec![0f32; rows * DOWNSAMPLE];
    box_rows(luma, &mut narrow, rows, cols, win_along_rows, &sample_cols);
    let mut narrow_out = vec![0f32; rows * DOWNSAMPLE];
    box_columns(&narrow, &mut narrow_out, rows, DOWNSAMPLE, win_along_cols);
    let mut small = [[0f32; DOWNSAMPLE]; DOWNSAMPLE];
    for (i, row) in small.iter_mut().enumerate() {
        let r = sample(i, rows);
        row.copy_from_slice(&narrow_out[r * DOWNSAMPLE..(r + 1) * DOWNSAMPLE]);
    }
    (dct_64_to_16(&small), quality(&small))
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

/// Rows processed together by [`box_rows`]: one SIMD register of f32 lanes.
const LANES: usize = 8;

/// `box_1d` along every row, keeping the output columns listed in `keep` (`dst` is
/// `rows × keep.len()`). Rows go in groups of [`LANES`], interleaved so that each lane runs one
/// row's running sum — the same float operations as the reference, vectorised across rows
/// instead of stalled on one row's chain of additions.
fn box_rows(src: &[f32], dst: &mut [f32], rows: usize, cols: usize, full: usize, keep: &[usize]) {
    let width = keep.len();
    let mut row_out = vec![0f32; cols];
    let (p1, p2, p3, p4) = box_phases(cols, full);
    let mut lanes_in = vec![[0f32; LANES]; cols];
    let mut lanes_out = vec![[0f32; LANES]; cols];
    let blocks = rows / LANES;
    for b in 0..blocks {
        let r0 = b * LANES;
        for (t, v) in lanes_in.iter_mut().enumerate() {
            for (k, x) in v.iter_mut().enumerate() {
                *x = src[(r0 + k) * cols + t];
            }
        }
        let (mut li, mut ri, mut oi) = (0, 0, 0);
        let mut sum = [0f32; LANES];
        let mut n = 0usize;
        let add = |sum: &mut [f32; LANES], v: &[f32; LANES]| (0..LANES).for_each(|k| sum[k] += v[k]);
        let sub = |sum: &mut [f32; LANES], v: &[f32; LANES]| (0..LANES).for_each(|k| sum[k] -= v[k]);
        let div = |out: &mut [f32; LANES], sum: &[f32; LANES], n: usize| (0..LANES).for_each(|k| out[k] = sum[k] / n as f32);
        for _ in 0..p1 {
            add(&mut sum, &lanes_in[ri]);
            n += 1;
            ri += 1;
        }
        for _ in 0..p2 {
            add(&mut sum, &lanes_in[ri]);
            n += 1;
            div(&mut lanes_out[oi], &sum, n);
            ri += 1;
            oi += 1;
        }
        for _ in 0..p3 {
            add(&mut sum, &lanes_in[ri]);
            sub(&mut sum, &lanes_in[li]);
            div(&mut lanes_out[oi], &sum, n);
            li += 1;
            ri += 1;
            oi += 1;
        }
        for _ in 0..p4 {
            sub(&mut sum, &lanes_in[li]);
            n -= 1;
            div(&mut lanes_out[oi], &sum, n);
            li += 1;
            oi += 1;
        }
        for (n, &t) in keep.iter().enumerate() {
            for (k, x) in lanes_out[t].iter().enumerate() {
                dst[(r0 + k) * width + n] = *x;
            }
        }
    }
    for r in blocks * LANES..rows {
        box_1d(&src[r * cols..(r + 1) * cols], &mut row_out, full);
        for (n, &t) in keep.iter().enumerate() {
            dst[r * width + n] = row_out[t];
        }
    }
}

/// `box_1d` down every column at once, a whole row at a time (cache-friendly, vectorisable,
/// and the same float operations per column as the reference's strided loop).
fn box_columns(src: &[f32], dst: &mut [f32], rows: usize, cols: usize, full: usize) {
    let (p1, p2, p3, p4) = box_phases(rows, full);
    let row = |r: usize| &src[r * cols..(r + 1) * cols];
    let mut sum = vec![0f32; cols];
    let (mut li, mut ri, mut oi) = (0, 0, 0);
    let mut n = 0usize;
    let write = |dst: &mut [f32], oi: usize, sum: &[f32], n: usize| {
        for (d, s) in dst[oi * cols..(oi + 1) * cols].iter_mut().zip(sum) {
            *d = s / n as f32;
        }
    };
    for _ in 0..p1 {
        sum.iter_mut().zip(row(ri)).for_each(|(s, v)| *s += v);
        n += 1;
        ri += 1;
    }
    for _ in 0..p2 {
        sum.iter_mut().zip(row(ri)).for_each(|(s, v)| *s += v);
        n += 1;
        write(dst, oi, &sum, n);
        ri += 1;
        oi += 1;
    }
    for _ in 0..p3 {
        sum.iter_mut().zip(row(ri)).for_each(|(s, v)| *s += v);
        sum.iter_mut().zip(row(li)).for_each(|(s, v)| *s -= v);
        write(dst, oi, &sum, n);
        li += 1;
        ri += 1;
        oi += 1;
    }
    for _ in 0..p4 {
        sum.iter_mut().zip(row(li)).for_each(|(s, v)| *s -= v);
        n -= 1;
        write(dst, oi, &sum, n);
        li += 1;
        oi += 1;
    }
}

/// The reference's `pdqImageDomainQualityMetric`: summed, scaled neighbour gradients.
fn quality(a: &[[f32; DOWNSAMPLE]; DOWNSAMPLE]) -> u8 {
    let step = |u: f32, v: f32| (((u - v) * 100.0) / 255.0) as i32;
    let mut sum: i64 = 0;
    for pair in a.windows(2) {
        for (u, v) in pair[0].iter().zip(&pair[1]) {
            sum += step(*u, *v).abs() as i64;
        }
    }
    for row in a {
        for pair in row.windows(2) {
            sum += step(pair[0], pair[1]).abs() as i64;
        }
    }
    (sum / 90).min(100) as u8
}

/// Rows 1..=16 of the 64-point DCT-II basis (the reference's `dct_matrix_64`).
fn dct_matrix() -> &'static [[f32; DOWNSAMPLE]; 16] {
    static M: OnceLock<[[f32; DOWNSAMPLE]; 16]> = OnceLock::new();
    M.get_or_init(|| {
        let scale = (2.0f64 / DOWNSAMPLE as f64).sqrt();
        let mut m = [[0f32; DOWNSAMPLE]; 16];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let angle = std::f64::consts::PI / 2.0 / DOWNSAMPLE as f64 * (i + 1) as f64 * (2 * j + 1) as f64;
                *v = (scale * angle.cos()) as f32;
            }
        }
        m
    })
}

/// `B = D A Dᵀ`, in the reference's summation order.
fn dct_64_to_16(a: &[[f32; DOWNSAMPLE]; DOWNSAMPLE]) -> [[f32; 16]; 16] {
    let d = dct_matrix();
    let mut t = [[0f32; DOWNSAMPLE]; 16];
    for i in 0..16 {
        for j in 0..DOWNSAMPLE {
            let mut s = 0f32;
            for k in 0..DOWNSAMPLE {
                s += d[i][k] * a[k][j];
            }
            t[i][j] = s;
        }
    }
    let mut b = [[0f32; 16]; 16];
    for i in 0..16 {
        for j in 0..16 {
            let mut s = 0f32;
            for k in 0..DOWNSAMPLE {
                s += t[i][k] * d[j][k];
            }
            b[i][j] = s;
        }
    }
    b
}

/// One bit per coefficient strictly above the lower median (the reference's Torben median).
fn bits_above_median(b: &[[f32; 16]; 16]) -> Pdq {
    let mut values: Vec<f32> = b.iter().flatten().copied().collect();
    values.sort_by(f32::total_cmp);
    let median = values[(values.len() - 1) / 2];
    let mut hash = Pdq::default();
    for (k, v) in b.iter().flatten().enumerate() {
        if *v > median {
            hash.set(k);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_in_reference_word_order() {
        let mut h = Pdq::default();
        h.set(255);
        h.set(0);
        let hex = h.to_hex();
        assert!(hex.starts_with('8') && hex.ends_with('1'), "{hex}");
        assert_eq!(Pdq::from_hex(&hex), Some(h));
        assert_eq!(Pdq::from_hex("xyz"), None);
    }

    #[test]
    fn dihedral_group_closes_and_starts_with_identity() {
        let h = Pdq([0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, 0x0f0f_0f0f_f0f0_f0f0, 0xdead_beef_cafe_f00d]);
        let all = h.dihedral();
        assert_eq!(all[0], h);
        for d in &all {
            // Applying any symmetry twice or composing lands inside the same set of eight.
            for dd in d.dihedral() {
                assert!(all.contains(&dd));
            }
        }
    }

    #[test]
    fn box_filter_of_constant_is_constant() {
        let src = vec![3.0f32; 10];
        let mut dst = vec![0.0f32; 10];
        box_1d(&src, &mut dst, 4);
        assert!(dst.iter().all(|v| (v - 3.0).abs() < 1e-6), "{dst:?}");
        box_1d(&src, &mut dst, 40);
        assert!(dst.iter().all(|v| (v - 3.0).abs() < 1e-6), "{dst:?}");
    }
}
