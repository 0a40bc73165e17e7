#!/bin/sh
# cgi:DIR test script: a 10 MiB body of the letter "x" (10485760 bytes), streamed.
printf 'Content-Type: application/octet-stream\n\n'
head -c 10485760 /dev/zero | tr '\000' 'x'
