/* FastCGI responder on libfcgi (FCGX API) that answers every request with a
 * body of N bytes (default 65536): the peer of cgate's `bytes:N` app.
 *
 *     spawn-fcgi -F PROCS -s SOCK -- bytes-fcgi [N]
 *
 * Single-threaded, listening socket on fd 0 (as hello_fcgi.c). The reply, headers
 * and body, is built once at start-up; each request costs one FCGX_PutStr. Headers and
 * body are those of cgate's bytes:N app: octet-stream, Content-Length, N bytes of 'x'. */
#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (64L * 1024 * 1024)

int main(int argc, char **argv)
{
    FCGX_Request req;
    long n = 65536;
    char head[128];
    char *reply, *end;
    int head_len;

    if (argc > 1) {
        n = strtol(argv[1], &end, 10);
        if (*argv[1] == '\0' || *end != '\0' || n < 0 || n > MAX_BODY) {
            fprintf(stderr, "bytes_fcgi: body size must be 0..%ld, got %s\n", MAX_BODY, argv[1]);
            return 2;
        }
    }
    head_len = snprintf(head, sizeof head,
                        "Content-Type: application/octet-stream\r\nContent-Length: %ld\r\n\r\n", n);
    reply = malloc((size_t)head_len + (size_t)n);
    if (reply == NULL) {
        fputs("bytes_fcgi: out of memory\n", stderr);
        return 1;
    }
    memcpy(reply, head, (size_t)head_len);
    memset(reply + head_len, 'x', (size_t)n);

    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0) {
        fputs("bytes_fcgi: libfcgi initialisation failed\n", stderr);
        return 1;
    }
    while (FCGX_Accept_r(&req) >= 0) {
        FCGX_PutStr(reply, head_len + (int)n, req.out);
        FCGX_Finish_r(&req);
    }
    free(reply);
    return 0;
}
