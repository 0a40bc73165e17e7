/* floor_proxy: the least a FastCGI forwarder on an event loop can do: one epoll thread,
 * each front connection paired with its own kept backend connection, bytes copied both
 * ways as they come (no parsing, no validation, no balancing). Level-triggered, so no
 * re-arming per request. Usage: floor_proxy LISTEN_SOCKET BACKEND_SOCKET */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAXFD 65536
static int peer[MAXFD];

static int unix_addr(struct sockaddr_un *a, const char *path)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a->sun_path) return -1;
    strcpy(a->sun_path, path);
    return 0;
}

static void drop(int ep, int fd)
{
    int p = peer[fd];
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    epoll_ctl(ep, EPOLL_CTL_DEL, p, NULL);
    close(fd);
    close(p);
}

int main(int argc, char **argv)
{
    struct sockaddr_un la, ba;
    if (argc != 3 || unix_addr(&la, argv[1]) || unix_addr(&ba, argv[2])) {
        fputs("usage: floor_proxy LISTEN_SOCKET BACKEND_SOCKET\n", stderr);
        return 2;
    }
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    unlink(argv[1]);
    if (l < 0 || bind(l, (struct sockaddr *)&la, sizeof la) || listen(l, 4096)) {
        perror("floor_proxy: listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l}, evs[64];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    static char buf[1 << 17];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0) continue;
                int b = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (c >= MAXFD || b < 0 || b >= MAXFD || connect(b, (struct sockaddr *)&ba, sizeof ba)) {
                    close(c);
                    if (b >= 0) close(b);
                    continue;
                }
                peer[c] = b;
                peer[b] = c;
                ev.events = EPOLLIN;
                ev.data.fd = c;
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                ev.data.fd = b;
                epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev);
                continue;
            }
            ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r <= 0) { drop(ep, fd); continue; }
            /* The peer's socket buffer takes a hello exchange whole; a full one blocks here
             * (a floor, not a forwarder: no output queue). */
            ssize_t off = 0;
            while (off < r) {
                ssize_t w = send(peer[fd], buf + off, r - off, MSG_NOSIGNAL);
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) break;
                off += w;
            }
            if (off < r) drop(ep, fd);
        }
    }
}
