//! Fuzz target: see `cgate_fuzz::environ`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cgate_fuzz::environ::check(data));
