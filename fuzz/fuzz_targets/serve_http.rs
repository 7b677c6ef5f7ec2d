//! Fuzz target `serve_http`: raw HTTP/1.1 connections through hyper and tusk serve's router, in process (tests/fuzz_harness/mod.rs).
#![no_main]

#[path = "../../tests/fuzz_harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::serve_http(data));
