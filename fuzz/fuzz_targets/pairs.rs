//! Fuzz target: see `cgate_fuzz::pairs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cgate_fuzz::pairs::check(data));
