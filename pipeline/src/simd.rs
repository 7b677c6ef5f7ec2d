//! Runtime CPU dispatch for the per-pixel loops: the same safe code compiled a second time for
//! AVX2, chosen when the CPU has it. Rust never fuses multiplies and adds on its own, so both
//! compilations give the same bits (integer resampling, PDQ's float box blur).

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
