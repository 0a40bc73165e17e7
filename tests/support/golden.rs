//! Golden response bytes, in one place: the built-in `hello` app's reply and the gateway's 500.

/// `hello`'s whole reply in CGI format (what FastCGI STDOUT carries and `cgate request` prints).
pub const HELLO: &[u8] = b"Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 14\r\n\r\nHello, world!\n";

/// `hello`'s body.
pub const HELLO_BODY: &[u8] = b"Hello, world!\n";

/// The `demo` example's reply to `GET /` (a user app served through `cgate::run`).
pub const DEMO_HELLO: &[u8] = b"Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 23\r\n\r\nHello from a user app!\n";

/// The `demo` example's body for `GET /`.
pub const DEMO_HELLO_BODY: &[u8] = b"Hello from a user app!\n";

/// The clean 500 a gateway answers when an app fails before its first body byte.
pub const ERROR_500: &[u8] = b"Status: 500 Internal Server Error\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\n\r\nInternal Server Error\n";

/// The 500's body.
pub const ERROR_500_BODY: &[u8] = b"Internal Server Error\n";
