#!/bin/sh
# cgi:DIR test script: invalid replies; each must become a 502 with none of the script's
# headers. QUERY_STRING picks one:
#   nohead     output ends before the blank line that ends the head
#   empty      no output at all
#   notype     no Content-Type and no Location
#   badname    a header name with a space
#   hopbyhop   a Transfer-Encoding header (only the web server may set it)
#   cr         a bare CR inside a header value (response splitting attempt)
#   badstatus  Status: 99 Nope
#   huge       a 70000-byte header line (over the 64 KiB head limit)
#   folded     an obsolete folded header line
case "$QUERY_STRING" in
  nohead) printf 'Content-Type: text/plain\nX-Leak: 1\n' ;;
  empty) ;;
  notype) printf 'X-Leak: 1\n\n<html>guess me</html>\n' ;;
  badname) printf 'Content-Type: text/plain\nX Leak: 1\n\nbody\n' ;;
  hopbyhop) printf 'Content-Type: text/plain\nTransfer-Encoding: chunked\nX-Leak: 1\n\nbody\n' ;;
  cr) printf 'Content-Type: text/plain\nX-Leak: a\rSet-Cookie: evil=1\n\nbody\n' ;;
  badstatus) printf 'Status: 99 Nope\nContent-Type: text/plain\nX-Leak: 1\n\nbody\n' ;;
  huge) printf 'Content-Type: text/plain\nX-Leak: '; head -c 70000 /dev/zero | tr '\000' 'h'; printf '\n\nbody\n' ;;
  folded) printf 'Content-Type: text/plain\nX-Leak: 1\n  folded\n\nbody\n' ;;
esac
