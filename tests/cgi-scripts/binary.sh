#!/bin/sh
# cgi:DIR test script: a binary body with NUL, 0xff, CR and LF bytes, exactly these 12 bytes:
# 00 01 02 ff fe 0d 0a 0a 00 65 6e 64 ("...\0end"), type application/octet-stream.
printf 'Content-Type: application/octet-stream\n\n'
printf '\000\001\002\377\376\r\n\n\000end'
