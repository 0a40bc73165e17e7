#!/bin/sh
# cgi:DIR test script: writes 2 MiB to stderr (32 blocks of 65536 "e") interleaved with
# 32 stdout lines "line 0\n" .. "line 31\n" (text/plain). The body is exactly those lines.
printf 'Content-Type: text/plain\n\n'
i=0
while [ "$i" -lt 32 ]; do
  head -c 65536 /dev/zero | tr '\000' 'e' >&2
  echo "line $i"
  i=$((i + 1))
done
