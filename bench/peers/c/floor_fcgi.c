/* floor: the least a FastCGI responder can do per kept-alive request: parse records, and on the
 * empty STDIN record answer one canned reply in one write. Single-threaded, blocking,
 * one connection at a time; the listening socket is fd 0 (spawn-fcgi). */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char body[] = "Content-Type: text/plain\r\n\r\nHello, world!\n";

static size_t reply(unsigned char *out, unsigned id)
{
    size_t n = 0, len = sizeof body - 1, pad = (8 - len % 8) % 8;
    unsigned char h[8] = {1, 6, id >> 8, id & 255, len >> 8, len & 255, pad, 0};
    memcpy(out + n, h, 8); n += 8;
    memcpy(out + n, body, len); n += len;
    memset(out + n, 0, pad); n += pad;
    unsigned char e[8] = {1, 6, id >> 8, id & 255, 0, 0, 0, 0};
    memcpy(out + n, e, 8); n += 8;
    unsigned char end[16] = {1, 3, id >> 8, id & 255, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(out + n, end, 16); n += 16;
    return n;
}

int main(void)
{
    static unsigned char buf[1 << 17], out[256];
    for (;;) {
        int c = accept(0, NULL, NULL);
        if (c < 0) return 1;
        size_t have = 0;
        for (;;) {
            ssize_t r = read(c, buf + have, sizeof buf - have);
            if (r <= 0) break;
            have += r;
            size_t at = 0;
            while (have - at >= 8) {
                unsigned char *h = buf + at;
                size_t total = 8 + (h[4] << 8 | h[5]) + h[6];
                if (have - at < total) break;
                if (h[1] == 5 && (h[4] | h[5]) == 0) {
                    size_t n = reply(out, h[2] << 8 | h[3]);
                    if (write(c, out, n) != (ssize_t)n) goto done;
                }
                at += total;
            }
            memmove(buf, buf + at, have - at);
            have -= at;
            if (have == sizeof buf) break;
        }
done:
        close(c);
    }
}
