//! The CGI side: the CGI gateway (RFC 3875) and the parser of CGI script replies.

pub mod gateway;
pub mod reply;
