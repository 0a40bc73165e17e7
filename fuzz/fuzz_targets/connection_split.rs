//! Fuzz target: see `cgate_fuzz::connection`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cgate_fuzz::connection::check(data));
