#!/bin/sh
# cgi:DIR test script: never finishes. Prints "pid=<its pid>" to stderr (its pid is also
# its process group id), then waits on a child "sleep 1000" in the same process group.
# QUERY_STRING picks a variant:
#   partial      first sends a complete head and the body "partial\n"
#   ignore-term  ignores SIGTERM (the script and its sleep), so only SIGKILL ends them
echo "pid=$$" >&2
case "$QUERY_STRING" in
  partial) printf 'Content-Type: text/plain\n\npartial\n' ;;
  ignore-term) trap '' TERM ;;
esac
sleep 1000
