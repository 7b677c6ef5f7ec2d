//! Fuzz target `dicos`: DICOS/DICOM DX objects through read_dx, the PNG it makes, and a Threat Detection Report (tests/fuzz_harness/mod.rs).
#![no_main]

#[path = "../../tests/fuzz_harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::dicos(data));
