/* Classic CGI "hello" (RFC 3875), one process per request: the program that
 * cgate's cgi:DIR app and fcgiwrap run in the bench, and the reference that
 * one `cgate cgi --app hello` run is timed against. */
#include <stdio.h>

int main(void)
{
    fputs("Content-Type: text/plain\r\n\r\nHello, world!\n", stdout);
    return 0;
}
