#!/bin/sh
# Interop test script: silent forever, with a child. Writes its pid (also its process
# group id under cgi:DIR) to ./silent.pid, then waits on a `sleep 1000` in its group.
echo $$ > silent.pid.tmp && mv silent.pid.tmp silent.pid
sleep 1000 &
wait
