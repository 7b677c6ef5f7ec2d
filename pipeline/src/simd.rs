//! Runtime CPU dispatch for the per-pixel loops: the same safe code compiled a second time for
//! AVX2, chosen when the CPU has it. Rust never fuses multiplies and adds on its own, so both
//! compilations give the same bits (integer resampling, PDQ's float box blur). Also the two
//! byte shuffles LLVM does not find by itself: a row transpose and PDQ's RGB-to-luma.

/// Runs `f` compiled with AVX2 enabled when the CPU supports it, else as built for the target.
///
/// `f` should be a closure that calls `#[inline(always)]` code, so that the loops are compiled
/// inside the AVX2 function rather than called from it.
#[inline(always)]
pub(crate) fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: `run`'s one requirement is a CPU that executes AVX2, checked just above; the
        // code it runs is safe Rust.
        #[allow(unsafe_code)]
        return unsafe { run(f) };
    }
    f()
}

/// `out[j / 2][(j % 2) * 8 + r] = tile[r][j]`: eight rows of 16 bytes turned into 16 columns of 8,
/// for resampling several rows at once. LLVM compiles the plain loop to scalar byte moves.
#[inline(always)]
pub(crate) fn transpose_8x16(tile: &[[u8; 16]; 8]) -> [[u8; 16]; 8] {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `transpose_sse2` needs SSE2, which is part of the x86-64 baseline: every
        // x86-64 CPU executes it.
        #[allow(unsafe_code)]
        return unsafe { transpose_sse2(tile) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut out = [[0u8; 16]; 8];
        for j in 0..16 {
            for r in 0..8 {
                out[j / 2][(j % 2) * 8 + r] = tile[r][j];
            }
        }
        out
    }
}

/// [`transpose_8x16`] as three rounds of unpacks: bytes of row pairs, then pairs of rows into
/// fours, then fours into eights.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn transpose_sse2(tile: &[[u8; 16]; 8]) -> [[u8; 16]; 8] {
    use std::arch::x86_64::{
        __m128i, _mm_unpackhi_epi16, _mm_unpackhi_epi32, _mm_unpackhi_epi8, _mm_unpacklo_epi16, _mm_unpacklo_epi32,
        _mm_unpacklo_epi8,
    };
    let a: [__m128i; 8] = std::array::from_fn(|r| bytemuck::cast(tile[r]));
    // rows 2i and 2i+1 interleaved: [0] holds columns 0–7, [1] columns 8–15
    let b: [[__m128i; 2]; 4] =
        std::array::from_fn(|i| [_mm_unpacklo_epi8(a[2 * i], a[2 * i + 1]), _mm_unpackhi_epi8(a[2 * i], a[2 * i + 1])]);
    // rows 4i … 4i+3 interleaved: [q] holds columns 4q … 4q+3
    let c: [[__m128i; 4]; 2] = std::array::from_fn(|i| {
        let (x, y) = (b[2 * i], b[2 * i + 1]);
        [_mm_unpacklo_epi16(x[0], y[0]), _mm_unpackhi_epi16(x[0], y[0]), _mm_unpacklo_epi16(x[1], y[1]), _mm_unpackhi_epi16(x[1], y[1])]
    });
    // all eight rows: output m holds columns 2m and 2m+1
    std::array::from_fn(|m| {
        let (x, y) = (c[0][m / 2], c[1][m / 2]);
        bytemuck::cast(if m % 2 == 0 { _mm_unpacklo_epi32(x, y) } else { _mm_unpackhi_epi32(x, y) })
    })
}

/// PDQ's luma, `w[0]·R + w[1]·G + w[2]·B` with f32 products summed left to right, for the
/// first pixels of `rgb`, 16 at a time with AVX2 when the CPU has it. Returns how many pixels it
/// wrote (0 without AVX2); the caller does the rest the plain way, with the same bits.
pub(crate) fn luma_avx2(rgb: &[u8], out: &mut [f32], w: [f32; 3]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: `luma_avx2_inner` needs AVX2, which the CPU has (checked just above); the code
        // it runs is safe Rust.
        #[allow(unsafe_code)]
        return unsafe { luma_avx2_inner(rgb, out, w) };
    }
    let _ = (rgb, out, w);
    0
}

/// [`luma_avx2`]: three byte shuffles per channel pick its 16 bytes out of 48, which are widened,
/// converted and multiplied eight at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn luma_avx2_inner(rgb: &[u8], out: &mut [f32], w: [f32; 3]) -> usize {
    use std::arch::x86_64::{
        __m128i, __m256, _mm256_add_ps, _mm256_cvtepi32_ps, _mm256_cvtepu8_epi32, _mm256_mul_ps, _mm256_set1_ps,
        _mm_or_si128, _mm_shuffle_epi8, _mm_srli_si128,
    };
    /// For channel `ch` and the 16-byte part `part` of 48 bytes: where pixel i's byte sits in
    /// that part, or 0x80 (gives zero) when it is in another part.
    const fn mask(ch: usize, part: usize) -> [u8; 16] {
        let mut m = [0x80u8; 16];
        let mut i = 0;
        while i < 16 {
            let at = 3 * i + ch;
            if at / 16 == part {
                m[i] = (at % 16) as u8;
            }
            i += 1;
        }
        m
    }
    const MASKS: [[[u8; 16]; 3]; 3] = {
        let mut all = [[[0u8; 16]; 3]; 3];
        let mut ch = 0;
        while ch < 3 {
            let mut part = 0;
            while part < 3 {
                all[ch][part] = mask(ch, part);
                part += 1;
            }
            ch += 1;
        }
        all
    };
    let masks: [[__m128i; 3]; 3] = MASKS.map(|parts| parts.map(bytemuck::cast));
    let weights = w.map(|x| _mm256_set1_ps(x));
    for (px, o) in rgb.chunks_exact(48).zip(out.chunks_exact_mut(16)) {
        let parts: [__m128i; 3] = std::array::from_fn(|k| bytemuck::cast::<[u8; 16], __m128i>(px[16 * k..16 * (k + 1)].try_into().expect("16 bytes")));
        // products of each channel: [pixels 0–7, pixels 8–15]
        let products: [[__m256; 2]; 3] = std::array::from_fn(|ch| {
            let m = &masks[ch];
            let bytes = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(parts[0], m[0]), _mm_shuffle_epi8(parts[1], m[1])), _mm_shuffle_epi8(parts[2], m[2]));
            let half = |b: __m128i| _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b)), weights[ch]);
            [half(bytes), half(_mm_srli_si128::<8>(bytes))]
        });
        let sums: [__m256; 2] = std::array::from_fn(|h| _mm256_add_ps(_mm256_add_ps(products[0][h], products[1][h]), products[2][h]));
        o.copy_from_slice(&bytemuck::cast::<[__m256; 2], [f32; 16]>(sums));
    }
    (rgb.len() / 48).min(out.len() / 16) * 16
}

#[cfg(test)]
mod tests {
    #[test]
    fn transpose_puts_each_rows_byte_in_its_column_group() {
        let tile: [[u8; 16]; 8] = std::array::from_fn(|r| std::array::from_fn(|j| (r * 16 + j) as u8));
        let out = super::transpose_8x16(&tile);
        for j in 0..16 {
            for r in 0..8 {
                assert_eq!(out[j / 2][(j % 2) * 8 + r], tile[r][j], "row {r} column {j}");
            }
        }
    }

    #[test]
    fn vector_luma_has_the_plain_formulas_bits() {
        let w = [0.299f32, 0.587, 0.114];
        let rgb: Vec<u8> = (0..3 * 101u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut out = vec![0f32; 101];
        let done = super::luma_avx2(&rgb, &mut out, w);
        assert!(done == 0 || done == 96, "{done}");
        for (i, p) in rgb.chunks_exact(3).enumerate().take(done) {
            let want = w[0] * p[0] as f32 + w[1] * p[1] as f32 + w[2] * p[2] as f32;
            assert_eq!(out[i].to_bits(), want.to_bits(), "pixel {i}");
        }
    }
}
