#!/bin/sh
# cgi:DIR test script: a complete reply ("partial\n", text/plain), then exit status 3.
# cgate logs the status and keeps the response as written.
printf 'Content-Type: text/plain\n\npartial\n'
exit 3
