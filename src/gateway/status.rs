//! HTTP status codes: a numeric type with the standard reasons, constants, and the `NNN Reason` form.

use std::borrow::Cow;
use std::fmt;

use super::rules::{HeadError, is_field_value};

/// An HTTP status code, 100..=599, with its standard reason phrase (RFC 9110 section 15).
///
/// ```
/// use cgate::Status;
/// assert_eq!(Status::NOT_FOUND.code(), 404);
/// assert_eq!(Status::NOT_FOUND.reason(), "Not Found");
/// assert_eq!(Status::new(418).map(Status::reason), Some("I'm a teapot"));
/// assert_eq!(Status::new(600), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Status(u16);

macro_rules! statuses {
    ($($name:ident = $code:literal $reason:literal;)*) => {
        impl Status {
            $(
                #[doc = concat!("`", stringify!($code), " ", $reason, "`")]
                pub const $name: Status = Status($code);
            )*

            /// The standard reason phrase; empty for a code without one.
            pub fn reason(self) -> &'static str {
                match self.0 {
                    $($code => $reason,)*
                    _ => "",
                }
            }

            /// `NNN Reason`, without an allocation for the standard codes.
            fn line(self) -> Cow<'static, str> {
                match self.0 {
                    $($code => Cow::Borrowed(concat!(stringify!($code), " ", $reason)),)*
                    c => Cow::Owned(format!("{c} ")),
                }
            }
        }
    };
}

statuses! {
    CONTINUE = 100 "Continue";
    SWITCHING_PROTOCOLS = 101 "Switching Protocols";
    EARLY_HINTS = 103 "Early Hints";
    OK = 200 "OK";
    CREATED = 201 "Created";
    ACCEPTED = 202 "Accepted";
    NON_AUTHORITATIVE_INFORMATION = 203 "Non-Authoritative Information";
    NO_CONTENT = 204 "No Content";
    RESET_CONTENT = 205 "Reset Content";
    PARTIAL_CONTENT = 206 "Partial Content";
    MULTIPLE_CHOICES = 300 "Multiple Choices";
    MOVED_PERMANENTLY = 301 "Moved Permanently";
    FOUND = 302 "Found";
    SEE_OTHER = 303 "See Other";
    NOT_MODIFIED = 304 "Not Modified";
    TEMPORARY_REDIRECT = 307 "Temporary Redirect";
    PERMANENT_REDIRECT = 308 "Permanent Redirect";
    BAD_REQUEST = 400 "Bad Request";
    UNAUTHORIZED = 401 "Unauthorized";
    PAYMENT_REQUIRED = 402 "Payment Required";
    FORBIDDEN = 403 "Forbidden";
    NOT_FOUND = 404 "Not Found";
    METHOD_NOT_ALLOWED = 405 "Method Not Allowed";
    NOT_ACCEPTABLE = 406 "Not Acceptable";
    REQUEST_TIMEOUT = 408 "Request Timeout";
    CONFLICT = 409 "Conflict";
    GONE = 410 "Gone";
    LENGTH_REQUIRED = 411 "Length Required";
    PRECONDITION_FAILED = 412 "Precondition Failed";
    CONTENT_TOO_LARGE = 413 "Content Too Large";
    URI_TOO_LONG = 414 "URI Too Long";
    UNSUPPORTED_MEDIA_TYPE = 415 "Unsupported Media Type";
    RANGE_NOT_SATISFIABLE = 416 "Range Not Satisfiable";
    EXPECTATION_FAILED = 417 "Expectation Failed";
    IM_A_TEAPOT = 418 "I'm a teapot";
    UNPROCESSABLE_CONTENT = 422 "Unprocessable Content";
    TOO_MANY_REQUESTS = 429 "Too Many Requests";
    REQUEST_HEADER_FIELDS_TOO_LARGE = 431 "Request Header Fields Too Large";
    INTERNAL_SERVER_ERROR = 500 "Internal Server Error";
    NOT_IMPLEMENTED = 501 "Not Implemented";
    BAD_GATEWAY = 502 "Bad Gateway";
    SERVICE_UNAVAILABLE = 503 "Service Unavailable";
    GATEWAY_TIMEOUT = 504 "Gateway Timeout";
}

impl Status {
    /// The status for `code`, if it is within 100..=599.
    pub const fn new(code: u16) -> Option<Status> {
        if code >= 100 && code <= 599 {
            Some(Status(code))
        } else {
            None
        }
    }

    /// The numeric code.
    pub const fn code(self) -> u16 {
        self.0
    }

    /// `true` for 4xx.
    pub const fn is_client_error(self) -> bool {
        self.0 >= 400 && self.0 < 500
    }

    /// `true` for 5xx.
    pub const fn is_server_error(self) -> bool {
        self.0 >= 500
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

/// Anything [`Response::start`](crate::Response::start) accepts as a status: a [`Status`], a
/// `u16` code (standard reason), or a `"NNN Reason"` string as PEP 3333 writes it.
pub trait IntoStatus {
    /// The code and the whole status line (`200 OK`), or why the status is refused.
    fn into_status(self) -> Result<(u16, Cow<'static, str>), HeadError>;
}

impl IntoStatus for Status {
    fn into_status(self) -> Result<(u16, Cow<'static, str>), HeadError> {
        Ok((self.0, self.line()))
    }
}

impl IntoStatus for u16 {
    fn into_status(self) -> Result<(u16, Cow<'static, str>), HeadError> {
        Status::new(self)
            .ok_or_else(|| HeadError::Status(self.to_string()))?
            .into_status()
    }
}

impl IntoStatus for &str {
    fn into_status(self) -> Result<(u16, Cow<'static, str>), HeadError> {
        let code = parse_status(self)?;
        if self[4..] == *Status(code).reason() {
            return Status(code).into_status();
        }
        Ok((code, Cow::Owned(self.to_owned())))
    }
}

impl IntoStatus for &String {
    fn into_status(self) -> Result<(u16, Cow<'static, str>), HeadError> {
        self.as_str().into_status()
    }
}

/// Checks a status line `NNN Reason`; returns the code.
pub fn parse_status(status: &str) -> Result<u16, HeadError> {
    let bad = || HeadError::Status(status.chars().take(80).collect());
    let b = status.as_bytes();
    if b.len() < 4 || b[3] != b' ' || !b[..3].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let code = u16::from(b[0] - b'0') * 100 + u16::from(b[1] - b'0') * 10 + u16::from(b[2] - b'0');
    if !(100..=599).contains(&code) || !is_field_value(&b[4..]) {
        return Err(bad());
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(parse_status("200 OK"), Ok(200));
        assert_eq!(parse_status("404 "), Ok(404));
        for bad in [
            "200", "20 OK", "2000 OK", "099 X", "600 X", "200\tOK", "200 O\rK", "abc OK",
        ] {
            assert!(parse_status(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn forms_agree() {
        let std = Ok((404, Cow::Borrowed("404 Not Found")));
        assert_eq!(Status::NOT_FOUND.into_status(), std);
        assert_eq!(404u16.into_status(), std);
        assert_eq!("404 Not Found".into_status(), std);
        assert_eq!(
            "404 Nope".into_status(),
            Ok((404, Cow::Owned("404 Nope".into())))
        );
        assert_eq!(99u16.into_status(), Err(HeadError::Status("99".into())));
        assert_eq!(Status::new(299).map(Status::reason), Some(""));
        assert_eq!(
            Status::CONTENT_TOO_LARGE.to_string(),
            "413 Content Too Large"
        );
    }
}
