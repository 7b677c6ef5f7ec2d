//! Fuzz target `model_toml`: model.toml text through ModelManifest::parse and preprocessing to its input size (tests/fuzz_harness/mod.rs).
#![no_main]

#[path = "../../tests/fuzz_harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::model_toml(data));
