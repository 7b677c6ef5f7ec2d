//! Fuzz target `image`: image bytes through decode, preprocessing for every committed model, and hashing (listing and query) (tests/fuzz_harness/mod.rs).
#![no_main]

#[path = "../../tests/fuzz_harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::image(data));
