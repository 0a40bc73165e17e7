//! Fuzz target: see `cgate_fuzz::socket`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cgate_fuzz::socket::check(data));
