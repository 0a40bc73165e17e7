#!/bin/sh
# cgi:DIR test script: a client redirect (absolute URL in Location, no Status).
# Expected answer: 302 Found, Location: https://example.com/elsewhere?a=1, empty body
# (the body the script writes is discarded: the reply has no Content-Type).
printf 'Location: https://example.com/elsewhere?a=1\n\nthis body is discarded\n'
