//! Every input a fuzz target (fuzz/, scripts/fuzz.sh) crashed, hung or allocated beyond the
//! limits on, kept as `tests/fixtures/fuzz/<target>/<name>` and replayed through the same code
//! as the target (tests/fuzz_harness): each must now end cleanly (an error or a success, the
//! harness's checks holding), within seconds and without a large allocation.

#![allow(unsafe_code)] // the counting allocator below; nothing else here is unsafe

mod fuzz_harness;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counts live and peak heap bytes, to bound what one input may make tusk allocate.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Most one kept input may take.
const TIME: Duration = Duration::from_secs(30);
/// Most heap one kept input may add (the decoder's own allocation limit is 512 MiB).
const HEAP: usize = 768 * 1024 * 1024;

/// Replays every kept input of `target`; the number replayed.
fn replay(target: &str) -> usize {
    let dir = fuzz_harness::root().join("tests/fixtures/fuzz").join(target);
    let mut inputs: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect(),
        Err(_) => return 0,
    };
    inputs.sort();
    for path in &inputs {
        let bytes = std::fs::read(path).unwrap();
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let started = Instant::now();
        fuzz_harness::run(target, &bytes);
        let (took, grew) = (started.elapsed(), PEAK.load(Ordering::Relaxed).saturating_sub(before));
        assert!(took < TIME, "{}: took {took:?}", path.display());
        assert!(grew < HEAP, "{}: allocated {} MiB", path.display(), grew >> 20);
    }
    inputs.len()
}

#[test]
fn every_kept_fuzz_input_ends_cleanly_within_bounds() {
    // One test, inputs one after another, so the heap peak is one input's.
    let mut replayed = 0;
    for target in fuzz_harness::TARGETS {
        replayed += replay(target);
    }
    // Folders other than the targets' would be inputs that never run.
    for entry in std::fs::read_dir(fuzz_harness::root().join("tests/fixtures/fuzz")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            assert!(fuzz_harness::TARGETS.contains(&name.as_str()), "tests/fixtures/fuzz/{name} is no fuzz target");
        }
    }
    eprintln!("{replayed} kept fuzz inputs replayed");
}
