//! Fuzz target: see `cgate_fuzz::response_head`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cgate_fuzz::response_head::check(data));
