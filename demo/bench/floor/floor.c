/*
 * floor.c: the bare servers that set a floor under ftpdlib's per-operation figures
 * (demo/bench/floor.sh builds it with `cc -O2` and drives it with floor.py).
 *
 * They do the least any server must do for an operation and nothing else, so the server
 * CPU they take is what the kernel and one recv/send per step cost on this machine:
 *
 *   floor ctl PORT       the control floor: one epoll (level-triggered) loop on
 *                        127.0.0.1:PORT. A new connection gets "220" at once; then each
 *                        recv(2) of complete lines gets one send(2) of fixed replies:
 *                        USER -> 331, PASS -> 230, NOOP -> 200, QUIT -> 221 and close,
 *                        anything else -> 500. No parsing past the first four bytes, no
 *                        users, no files.
 *   floor sink PORT DIR  the STOR floor: accept one connection at a time, open
 *                        DIR/floor-sink.bin with O_TRUNC, recv(2) into a 1 MiB buffer and
 *                        write(2) it to the file until EOF, close the file, send "226\r\n"
 *                        (the stand-in of a transfer's final reply) and close.
 *   floor src PORT FILE  the RETR floor: accept one connection at a time, open FILE and
 *                        sendfile(2) all of it, then close.
 *
 * Man pages read: epoll(7), epoll_ctl(2), accept(2), recv(2), send(2), sendfile(2),
 * write(2). Loopback only: the address is 127.0.0.1, fixed. The processes run until a
 * signal ends them (floor.sh stops them on exit).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FDS 65536
#define LINE_MAX_BYTES 512
#define SINK_BUF (1 << 20)

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int listen_on(int port, int nonblock) {
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(fd, 4096) < 0) die("listen");
    return fd;
}

/* --- ctl ------------------------------------------------------------------------- */

/* What a connection has received past its last complete line. */
struct conn {
    unsigned short len;
    char buf[LINE_MAX_BYTES];
};
static struct conn *conns[MAX_FDS];

static const char R220[] = "220 floor ready.\r\n";
static const char R331[] = "331 Username ok, send password.\r\n";
static const char R230[] = "230 Login successful.\r\n";
static const char R200[] = "200 NOOP command successful.\r\n";
static const char R221[] = "221 Goodbye.\r\n";
static const char R500[] = "500 Command not understood.\r\n";

static void drop(int fd) {
    close(fd); /* closing the last reference takes it out of the epoll set */
    free(conns[fd]);
    conns[fd] = NULL;
}

/* Answers every complete line in c; returns 1 when the connection must close after the
 * replies in out (QUIT or a line too long). */
static int answer(struct conn *c, char *out, size_t *outlen) {
    int quit = 0;
    size_t start = 0;
    for (size_t i = 0; i < c->len; i++) {
        if (c->buf[i] != '\n') continue;
        const char *line = c->buf + start;
        size_t n = i + 1 - start;
        const char *r = R500;
        size_t rl = sizeof R500 - 1;
        if (n >= 4) {
            unsigned w = ((unsigned)(line[0] & ~0x20) << 24) | ((unsigned)(line[1] & ~0x20) << 16) |
                         ((unsigned)(line[2] & ~0x20) << 8) | (unsigned)(line[3] & ~0x20);
            switch (w) {
            case 0x55534552u: r = R331, rl = sizeof R331 - 1; break; /* USER */
            case 0x50415353u: r = R230, rl = sizeof R230 - 1; break; /* PASS */
            case 0x4e4f4f50u: r = R200, rl = sizeof R200 - 1; break; /* NOOP */
            case 0x51554954u: r = R221, rl = sizeof R221 - 1; quit = 1; break; /* QUIT */
            }
        }
        if (*outlen + rl <= 4096) {
            memcpy(out + *outlen, r, rl);
            *outlen += rl;
        }
        start = i + 1;
        if (quit) break;
    }
    if (start > 0) {
        memmove(c->buf, c->buf + start, c->len - start);
        c->len = (unsigned short)(c->len - start);
    }
    if (c->len == LINE_MAX_BYTES) quit = 1;
    return quit;
}

static _Noreturn void run_ctl(int port) {
    int lfd = listen_on(port, 1);
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl");
    struct epoll_event evs[256];
    char out[4096];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                if (cfd < 0) continue; /* EAGAIN, or out of descriptors for now */
                if (cfd >= MAX_FDS) { close(cfd); continue; }
                conns[cfd] = calloc(1, sizeof(struct conn));
                if (!conns[cfd]) { close(cfd); continue; }
                struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev) < 0) { drop(cfd); continue; }
                send(cfd, R220, sizeof R220 - 1, MSG_NOSIGNAL);
                continue;
            }
            struct conn *c = conns[fd];
            if (!c) continue;
            ssize_t k = recv(fd, c->buf + c->len, LINE_MAX_BYTES - c->len, 0);
            if (k <= 0) {
                if (k < 0 && errno == EAGAIN) continue;
                drop(fd);
                continue;
            }
            c->len = (unsigned short)(c->len + k);
            size_t outlen = 0;
            int quit = answer(c, out, &outlen);
            if (outlen) send(fd, out, outlen, MSG_NOSIGNAL);
            if (quit) drop(fd);
        }
    }
}

/* --- sink and src ------------------------------------------------------------------ */

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static _Noreturn void run_sink(int port, const char *dir) {
    int lfd = listen_on(port, 0);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/floor-sink.bin", dir) >= (int)sizeof path) die("path");
    char *buf = malloc(SINK_BUF);
    if (!buf) die("malloc");
    for (;;) {
        int cfd = accept(lfd, NULL, NULL);
        if (cfd < 0) continue;
        int file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (file < 0) { close(cfd); continue; }
        int ok = 1;
        for (;;) {
            ssize_t k = recv(cfd, buf, SINK_BUF, 0);
            if (k == 0) break;
            if (k < 0) {
                if (errno == EINTR) continue;
                ok = 0;
                break;
            }
            if (write_all(file, buf, (size_t)k) < 0) { ok = 0; break; }
        }
        close(file);
        if (ok) send(cfd, "226\r\n", 5, MSG_NOSIGNAL);
        close(cfd);
    }
}

static _Noreturn void run_src(int port, const char *file) {
    int lfd = listen_on(port, 0);
    for (;;) {
        int cfd = accept(lfd, NULL, NULL);
        if (cfd < 0) continue;
        int f = open(file, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (f >= 0 && fstat(f, &st) == 0) {
            off_t off = 0;
            while (off < st.st_size) {
                ssize_t s = sendfile(cfd, f, &off, (size_t)(st.st_size - off));
                if (s <= 0 && !(s < 0 && errno == EINTR)) break;
            }
        }
        if (f >= 0) close(f);
        close(cfd);
    }
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "ctl") == 0) run_ctl(atoi(argv[2]));
    if (argc == 4 && strcmp(argv[1], "sink") == 0) run_sink(atoi(argv[2]), argv[3]);
    if (argc == 4 && strcmp(argv[1], "src") == 0) run_src(atoi(argv[2]), argv[3]);
    fprintf(stderr, "usage: floor ctl PORT | floor sink PORT DIR | floor src PORT FILE\n");
    return 2;
}
