#!/bin/sh
# cgi:DIR test script: answers its whole environment, one NAME=value per line, sorted
# bytewise (text/plain). /bin/sh adds PWD (the script's directory) itself.
printf 'Content-Type: text/plain\n\n'
env | LC_ALL=C sort
