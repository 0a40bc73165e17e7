/* FastCGI "hello" responder on libfcgi (FCGX API), single-threaded.
 * The listening socket is fd 0, as spawn-fcgi hands it over; the bench runs N
 * copies with `spawn-fcgi -F N`. libfcgi honours FCGI_KEEP_CONN: with it, the
 * process stays on its connection and reads the next request from it. */
#include <fcgiapp.h>
#include <stdio.h>

int main(void)
{
    FCGX_Request req;

    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0) {
        fputs("hello_fcgi: libfcgi initialisation failed\n", stderr);
        return 1;
    }
    while (FCGX_Accept_r(&req) >= 0) {
        FCGX_PutS("Content-Type: text/plain\r\n\r\nHello, world!\n", req.out);
        FCGX_Finish_r(&req);
    }
    return 0;
}
