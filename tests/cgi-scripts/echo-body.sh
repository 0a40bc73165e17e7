#!/bin/sh
# cgi:DIR test script: echoes the request body back unchanged (application/octet-stream),
# with the CONTENT_LENGTH it was given in the header X-Content-Length.
# With QUERY_STRING=first it first writes 1 MiB of "f" (1048576 bytes) before reading
# anything, so a runner that writes the whole body before reading output would deadlock.
printf 'Content-Type: application/octet-stream\nX-Content-Length: %s\n\n' "${CONTENT_LENGTH-}"
if [ "$QUERY_STRING" = first ]; then head -c 1048576 /dev/zero | tr '\000' 'f'; fi
exec cat
