//! FastCGI records and name-value pairs built byte by byte from the specification, for tests.
//!
//! Independent of the crate's encoders, so tests check the code against the spec, not
//! against itself. Shared by the codec tests and the wire tests.
#![allow(dead_code)]

/// Record type bytes (FastCGI specification, section 8).
pub const BEGIN: u8 = 1;
pub const ABORT: u8 = 2;
pub const END: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;
pub const DATA: u8 = 8;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;

/// One record with an explicit padding length (padding bytes are 0xAA to catch misuse).
pub fn rec(record_type: u8, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    let len = u16::try_from(content.len()).expect("test record over 65535 bytes");
    let mut out = vec![1, record_type];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[padding, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0xAA, usize::from(padding)));
    out
}

/// BEGIN_REQUEST with a role, flags and padding.
pub fn begin_padded(id: u16, role: u16, flags: u8, padding: u8) -> Vec<u8> {
    let [hi, lo] = role.to_be_bytes();
    rec(BEGIN, id, &[hi, lo, flags, 0, 0, 0, 0, 0], padding)
}

/// A name-value length: 1 byte below 128, else 4 bytes with the high bit set.
pub fn nv_len(out: &mut Vec<u8>, len: usize) {
    if len < 128 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
    }
}

/// Name-value pairs encoded by hand.
pub fn nv(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        nv_len(&mut out, name.len());
        nv_len(&mut out, value.len());
        out.extend_from_slice(name);
        out.extend_from_slice(value);
    }
    out
}
