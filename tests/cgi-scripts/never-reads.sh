#!/bin/sh
# cgi:DIR test script: answers "did not read\n" (text/plain) without reading its stdin,
# then exits, whatever the size of the request body.
exec 0<&-
printf 'Content-Type: text/plain\n\ndid not read\n'
