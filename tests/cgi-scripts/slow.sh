#!/bin/sh
# cgi:DIR test script: streams "one\n", pauses, then "two\n" (text/plain).
# The pause lasts until a line can be read from ./gate when that FIFO exists in the
# script's directory (the in-process test writes to it once it has seen "one\n"),
# otherwise 1 second. A streaming gateway delivers "one\n" before the pause ends.
printf 'Content-Type: text/plain\n\none\n'
if [ -p gate ]; then read -r _ < gate; else sleep 1; fi
printf 'two\n'
