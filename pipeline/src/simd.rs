//! Runtime CPU dispatch for the per-pixel loops: the same safe code compiled a second time for
//! AVX2, chosen when the CPU has it. Rust never fuses multiplies and adds on its own, so both
//! compilations give the same bits (integer resampling, PDQ's float box blur). Also the one
//! shuffle LLVM does not find by itself: a byte transpose.

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
}
