//! PDQ, Meta's 256-bit perceptual hash with a quality score, ported from the reference C++
//! (`pdq/cpp/hashing/pdqhashing.cpp`, ThreatExchange): float luma, two passes of Jarosz box
//! blur in each direction, decimation to 64×64, a 16×16 DCT without the DC row/column, and one
//! bit per coefficient above the median. Checked against Meta's expected hashes in
//! `tests/pdq.rs`.

use std::sync::OnceLock;

use image::RgbImage;

use super::jarosz::{blur_decimate, DOWNSAMPLE};

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
        let mut bits = [[false; 16]; 16];
        for (k, b) in bits.iter_mut().flatten().enumerate() {
            *b = self.bit(k);
        }
        SYMMETRIES.map(|sym| {
            let mut out = Pdq::default();
            for (k, b) in apply_symmetry(&bits, sym, |b: bool| !b).iter().flatten().enumerate() {
                if *b {
                    out.set(k);
                }
            }
            out
        })
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
    (SYMMETRIES.map(|sym| bits_above_median(&apply_symmetry(&dct, sym, |v: f32| -v))), quality)
}

/// A 16×16 DCT-domain matrix (coefficients, or their bits) as the image rotated or mirrored by
/// `sym` would have it: index i holds frequency i + 1, so a mirror negates the even indices of
/// its axis; a transpose swaps rows and columns. `negate` is minus for coefficients, not for bits.
fn apply_symmetry<T: Copy + Default>(m: &[[T; 16]; 16], sym: (bool, bool, bool), negate: impl Fn(T) -> T) -> [[T; 16]; 16] {
    let (transpose, flip_rows, flip_cols) = sym;
    let mut out = [[T::default(); 16]; 16];
    for (i, row) in m.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            let v = if (flip_rows && i % 2 == 0) ^ (flip_cols && j % 2 == 0) { negate(v) } else { v };
            let (r, c) = if transpose { (j, i) } else { (i, j) };
            out[r][c] = v;
        }
    }
    out
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
    let small = blur_decimate(img);
    (dct_64_to_16(&small), quality(&small))
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
}
