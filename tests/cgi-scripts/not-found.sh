#!/bin/sh
# cgi:DIR test script: sets its own status with a Status header: 404, body "no such thing\n".
printf 'Status: 404 Not Found\nContent-Type: text/plain\n\nno such thing\n'
