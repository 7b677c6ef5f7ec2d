//! Fuzz target `manifest_line`: JSONL manifest lines through the manifest parser and the record line (tests/fuzz_harness/mod.rs).
#![no_main]

#[path = "../../tests/fuzz_harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::manifest_line(data));
