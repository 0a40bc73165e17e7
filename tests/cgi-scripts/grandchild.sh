#!/bin/sh
# cgi:DIR test script: answers "body\n" (text/plain), prints "pid=<its pid>" to stderr,
# leaves a background "sleep 1000" holding its stdout and stderr open, and exits 0.
# The runner must not wait for that grandchild forever.
printf 'Content-Type: text/plain\n\nbody\n'
echo "pid=$$" >&2
sleep 1000 &
exit 0
