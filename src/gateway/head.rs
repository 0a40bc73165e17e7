//! Status line and response header validation (the one boundary) and CGI-style serialization.

use std::borrow::Cow;
use std::fmt;

pub use super::rules::{HeadError, is_field_value, is_token};
use super::status::IntoStatus;
pub use super::status::parse_status;

/// Hop-by-hop headers an application may not send (RFC 9110 7.6.1 and PEP 3333).
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

/// One validated response header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name, an RFC 9110 token, as the app spelled it.
    pub name: String,
    /// The value: any bytes but controls (HTAB allowed).
    pub value: Vec<u8>,
}

/// A validated status and header list, ready for the wire.
///
/// Middleware sees it in [`Transform::head`](crate::middleware::Transform::head) and may
/// change it with [`Head::push`], [`Head::set`] and [`Head::remove`]; every change is
/// validated again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    code: u16,
    /// The status line, `NNN Reason`.
    status: Cow<'static, str>,
    headers: Vec<Header>,
}

/// A header value: text, bytes or a number (`("X-Count", 3)`).
pub trait HeaderValue {
    /// Appends the value's bytes to `out`.
    fn append_to(&self, out: &mut Vec<u8>);
}

impl<T: HeaderValue + ?Sized> HeaderValue for &T {
    fn append_to(&self, out: &mut Vec<u8>) {
        (**self).append_to(out);
    }
}

macro_rules! bytes_value {
    ($($t:ty),*) => {$(
        impl HeaderValue for $t {
            fn append_to(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(AsRef::<[u8]>::as_ref(self));
            }
        }
    )*};
}
bytes_value!(str, String, [u8], Vec<u8>, Cow<'_, [u8]>);

impl HeaderValue for Cow<'_, str> {
    fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl<const N: usize> HeaderValue for [u8; N] {
    fn append_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

macro_rules! number_value {
    ($($t:ty),*) => {$(
        impl HeaderValue for $t {
            fn append_to(&self, out: &mut Vec<u8>) {
                use std::io::Write as _;
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
number_value!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

/// A list of headers for [`Response::start`](crate::Response::start): an array, slice or
/// `Vec` of `(name, value)` pairs, `()` for none, or a tuple of pairs whose value types
/// differ: `(("Content-Type", "application/json"), ("X-Count", n))`.
pub trait IntoHeaders {
    /// Calls `f` with each name and value, in order, until it fails.
    fn each(
        self,
        f: &mut dyn FnMut(&str, &dyn HeaderValue) -> Result<(), HeadError>,
    ) -> Result<(), HeadError>;
}

impl IntoHeaders for () {
    fn each(
        self,
        _: &mut dyn FnMut(&str, &dyn HeaderValue) -> Result<(), HeadError>,
    ) -> Result<(), HeadError> {
        Ok(())
    }
}

macro_rules! list_headers {
    ($([$($g:tt)*] $t:ty;)*) => {$(
        impl<$($g)* N: AsRef<str>, V: HeaderValue> IntoHeaders for $t {
            fn each(
                self,
                f: &mut dyn FnMut(&str, &dyn HeaderValue) -> Result<(), HeadError>,
            ) -> Result<(), HeadError> {
                for (n, v) in self {
                    f(n.as_ref(), &v)?;
                }
                Ok(())
            }
        }
    )*};
}
list_headers! {
    [const K: usize,] [(N, V); K];
    [] Vec<(N, V)>;
    ['a,] &'a [(N, V)];
    ['a,] &'a Vec<(N, V)>;
}

/// Headers from any iterator of `(name, value)` pairs (see [`from_pairs`]).
#[derive(Debug, Clone)]
pub struct Pairs<I>(I);

/// Wraps an iterator of `(name, value)` pairs as a header list:
/// `Head::new(200, from_pairs(map.iter()))`.
pub fn from_pairs<I>(iter: I) -> Pairs<I::IntoIter>
where
    I: IntoIterator,
{
    Pairs(iter.into_iter())
}

impl<I, N, V> IntoHeaders for Pairs<I>
where
    I: Iterator<Item = (N, V)>,
    N: AsRef<str>,
    V: HeaderValue,
{
    fn each(
        self,
        f: &mut dyn FnMut(&str, &dyn HeaderValue) -> Result<(), HeadError>,
    ) -> Result<(), HeadError> {
        for (n, v) in self.0 {
            f(n.as_ref(), &v)?;
        }
        Ok(())
    }
}

macro_rules! tuple_headers {
    ($(($($n:ident $v:ident $i:tt),*);)*) => {$(
        impl<$($n: AsRef<str>, $v: HeaderValue),*> IntoHeaders for ($(($n, $v),)*) {
            fn each(
                self,
                f: &mut dyn FnMut(&str, &dyn HeaderValue) -> Result<(), HeadError>,
            ) -> Result<(), HeadError> {
                $(f(self.$i.0.as_ref(), &self.$i.1)?;)*
                Ok(())
            }
        }
    )*};
}
tuple_headers! {
    (N0 V0 0);
    (N0 V0 0, N1 V1 1);
    (N0 V0 0, N1 V1 1, N2 V2 2);
    (N0 V0 0, N1 V1 1, N2 V2 2, N3 V3 3);
    (N0 V0 0, N1 V1 1, N2 V2 2, N3 V3 3, N4 V4 4);
    (N0 V0 0, N1 V1 1, N2 V2 2, N3 V3 3, N4 V4 4, N5 V5 5);
    (N0 V0 0, N1 V1 1, N2 V2 2, N3 V3 3, N4 V4 4, N5 V5 5, N6 V6 6);
    (N0 V0 0, N1 V1 1, N2 V2 2, N3 V3 3, N4 V4 4, N5 V5 5, N6 V6 6, N7 V7 7);
}

/// `true` for a Content-Length value `[0-9]+` within `u64`.
fn numeric_length(v: &[u8]) -> bool {
    matches!(
        crate::gateway::input::parse_content_length(Some(v)),
        Ok(Some(_))
    )
}

impl Head {
    /// Validates a status and headers. Nothing invalid is kept: an error means no header of
    /// this call may reach the wire.
    pub fn new(status: impl IntoStatus, headers: impl IntoHeaders) -> Result<Head, HeadError> {
        let (code, status) = status.into_status()?;
        let mut head = Head {
            code,
            status,
            headers: Vec::new(),
        };
        headers.each(&mut |n, v| head.push(n, v))?;
        Ok(head)
    }

    /// The numeric status code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The reason phrase as given (the standard one for a numeric status).
    pub fn reason(&self) -> &str {
        &self.status[4..]
    }

    /// The whole status line, e.g. `200 OK`.
    pub fn status(&self) -> &str {
        &self.status
    }

    /// The headers in the order the app gave them.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// `true` when a header `name` holds `token` as one of its comma-separated elements
    /// (case-insensitive): `head.has_token("vary", "accept-encoding")`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }

    /// Removes every header called `name` (case-insensitive).
    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    /// Replaces every header called `name` with one holding `value`.
    pub fn set(&mut self, name: &str, value: impl HeaderValue) -> Result<(), HeadError> {
        let mut v = Vec::new();
        value.append_to(&mut v);
        check_header(name, &v)?;
        self.remove(name);
        self.push_checked(name.into(), v)
    }

    /// Appends a header after validating it. A second Content-Length with the same value is
    /// dropped; one with a different value is refused.
    pub fn push(&mut self, name: &str, value: impl HeaderValue) -> Result<(), HeadError> {
        let mut v = Vec::new();
        value.append_to(&mut v);
        check_header(name, &v)?;
        self.push_checked(name.into(), v)
    }

    /// A head from a status line and headers already owned (a reply parsed from a backend),
    /// each validated as [`Head::push`] does, none copied.
    pub(crate) fn from_owned(
        status: &str,
        headers: Vec<(String, Vec<u8>)>,
    ) -> Result<Head, HeadError> {
        let (code, status) = status.into_status()?;
        let mut head = Head {
            code,
            status,
            // Room for the headers a gateway adds (Content-Length) without regrowth.
            headers: Vec::with_capacity(headers.len() + 2),
        };
        for (name, value) in headers {
            check_header(&name, &value)?;
            head.push_checked(name.into(), value)?;
        }
        Ok(head)
    }

    fn push_checked(&mut self, name: Cow<'_, str>, value: Vec<u8>) -> Result<(), HeadError> {
        if name.eq_ignore_ascii_case("content-length") {
            if !numeric_length(&value) {
                return Err(HeadError::ContentLength(shown_bytes(&value)));
            }
            match self.get("content-length") {
                Some(old) if old == value => return Ok(()),
                Some(_) => return Err(HeadError::ContentLength(shown_bytes(&value))),
                None => {}
            }
        }
        self.headers.push(Header {
            name: name.into_owned(),
            value,
        });
        Ok(())
    }

    /// Appends `Content-Length: len` to a head that has none (the gateway's own header, valid
    /// by construction: no second check on the hot path).
    pub(crate) fn push_length(&mut self, len: u64) {
        debug_assert!(self.get("content-length").is_none());
        let mut value = Vec::with_capacity(20);
        crate::gateway::input::push_decimal(&mut value, len);
        self.headers.push(Header {
            name: "Content-Length".to_owned(),
            value,
        });
    }

    /// The declared Content-Length (validated: at most one, numeric).
    pub fn content_length(&self) -> Option<u64> {
        crate::gateway::input::parse_content_length(self.get("content-length"))
            .ok()
            .flatten()
    }

    /// Appends the CGI response header block (`Status:` line, headers, blank line; CRLF).
    pub(crate) fn write_cgi(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"Status: ");
        out.extend_from_slice(self.status.as_bytes());
        out.extend_from_slice(b"\r\n");
        for h in &self.headers {
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&h.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn shown_bytes(v: &[u8]) -> String {
    String::from_utf8_lossy(&v[..v.len().min(80)]).into_owned()
}

fn check_header(name: &str, value: &[u8]) -> Result<(), HeadError> {
    let shown = || name.chars().take(80).collect::<String>();
    if !is_token(name.as_bytes()) {
        return Err(HeadError::Name(shown()));
    }
    if name.eq_ignore_ascii_case("status") {
        return Err(HeadError::StatusHeader);
    }
    if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(HeadError::HopByHop(shown()));
    }
    if !is_field_value(value) {
        return Err(HeadError::Value(shown()));
    }
    Ok(())
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rules() {
        assert!(Head::new("200 OK", [("X-A", "a\tb \u{e9}")]).is_ok());
        let cases: [(&str, &str); 6] = [
            ("Bad Name", "v"),
            ("X", "a\r\nInjected: 1"),
            ("X", "nul\0"),
            ("Transfer-Encoding", "chunked"),
            ("connection", "close"),
            ("Status", "302 Found"),
        ];
        for (n, v) in cases {
            assert!(Head::new("200 OK", [(n, v)]).is_err(), "{n}: {v:?}");
            let owned = vec![(n.to_owned(), v.as_bytes().to_vec())];
            assert!(Head::from_owned("200 OK", owned).is_err(), "{n}: {v:?}");
        }
        let owned = vec![("X-A".into(), b"a\tb".to_vec()), ("X-B".into(), vec![])];
        let same = Head::new("404 Gone", [("X-A", "a\tb"), ("X-B", "")]);
        assert_eq!(Head::from_owned("404 Gone", owned), same);
    }

    #[test]
    fn content_length_is_one_number() {
        for bad in ["abc", "+4", "5G", "", " 4", "-1", "18446744073709551616"] {
            assert_eq!(
                Head::new(200, [("Content-Length", bad)]),
                Err(HeadError::ContentLength(bad.into())),
                "{bad:?}"
            );
        }
        let two = Head::new(200, [("Content-Length", "1"), ("content-length", "100")]);
        assert_eq!(two, Err(HeadError::ContentLength("100".into())));
        let same = Head::new(200, [("Content-Length", "4"), ("Content-Length", "4")]).unwrap();
        assert_eq!(same.headers().len(), 1);
        assert_eq!(same.content_length(), Some(4));
        let max = Head::new(200, [("Content-Length", u64::MAX)]).unwrap();
        assert_eq!(max.content_length(), Some(u64::MAX));
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            let mut h = Head::new(200, ()).unwrap();
            h.push_length(n);
            assert_eq!(h.get("content-length"), Some(n.to_string().as_bytes()));
            assert_eq!(h.content_length(), Some(n));
        }
    }

    #[test]
    fn mixed_values_and_empty_lists() {
        let n = 3usize;
        let h = Head::new(
            Status::OK,
            (
                ("Content-Type", "text/plain"),
                ("X-Count", n),
                ("X-S", n.to_string()),
            ),
        )
        .unwrap();
        let names: Vec<_> = h.headers().iter().map(|h| h.value.clone()).collect();
        assert_eq!(names, [&b"text/plain"[..], b"3", b"3"]);
        assert!(Head::new(204, ()).unwrap().headers().is_empty());
        let none: [(&str, &str); 0] = [];
        assert!(Head::new("204 No Content", none).is_ok());
    }

    #[test]
    fn cgi_bytes() {
        let h = Head::new("201 Created", [("Content-Type", "text/plain"), ("X", "1")]).unwrap();
        let mut out = Vec::new();
        h.write_cgi(&mut out);
        assert_eq!(
            out,
            b"Status: 201 Created\r\nContent-Type: text/plain\r\nX: 1\r\n\r\n"
        );
        out.clear();
        Head::new("299 ", ()).unwrap().write_cgi(&mut out);
        assert_eq!(out, b"Status: 299 \r\n\r\n");
    }

    use super::super::status::Status;
}
