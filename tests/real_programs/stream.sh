#!/bin/sh
# A large download (40 MiB of zero bytes) for a slow client to read at its own pace.
printf 'Content-Type: application/octet-stream\nContent-Length: 41943040\n\n'
head -c 41943040 /dev/zero
