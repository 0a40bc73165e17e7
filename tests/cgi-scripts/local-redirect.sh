#!/bin/sh
# cgi:DIR test script: a local redirect (Location is a path, no Status).
# cgate answers it as a client redirect: 302 Found, Location: /hello.sh?from=local, empty body.
printf 'Location: /hello.sh?from=local\n\n'
