//! Fuzz target: see `cgate_fuzz::record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cgate_fuzz::record::check(data));
