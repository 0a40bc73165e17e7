#!/bin/sh
# cgi:DIR test script: answers 200 with Content-Type text/plain and the body "Hello from CGI\n".
printf 'Content-Type: text/plain\r\n\r\nHello from CGI\n'
