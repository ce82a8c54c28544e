/*
 * trivial_responder.c - the "C reference" ceiling for the Modbus TCP benchmark.
 *
 * One thread, epoll, no data store: every FC3 (read holding registers) is answered with
 * zeros, every well-formed FC16 (write multiple registers) with its echo (nothing is stored),
 * any other function code with exception 01. Pipelined requests are framed out of a
 * per-connection buffer and all replies of one read() go back in one write().
 *
 *     trivial_responder PORT          (listens on 127.0.0.1 only; SIGINT/SIGTERM stop it)
 *
 * Build: gcc -O2 -Wall -Wextra -o trivial_responder trivial_responder.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP 65536
#define OUT_CAP (IN_CAP * 24) /* worst case: 12-byte requests each answered with 259 bytes */
#define MAX_EVENTS 64

struct conn {
    int fd;
    size_t in_len;      /* bytes buffered, not yet framed */
    size_t out_off;     /* first unsent byte of out */
    size_t out_len;     /* bytes in out */
    uint8_t in[IN_CAP];
    uint8_t out[OUT_CAP];
};

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void close_conn(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Frames every complete request in c->in and appends its reply to c->out.
 * Returns -1 if the stream cannot be trusted (bad protocol id or length). */
static int answer_buffered(struct conn *c)
{
    size_t pos = 0;
    while (c->in_len - pos >= 7) {
        const uint8_t *q = c->in + pos;
        unsigned proto = (unsigned)q[2] << 8 | q[3];
        unsigned len = (unsigned)q[4] << 8 | q[5];
        if (proto != 0 || len < 2 || len > 254)
            return -1;
        if (c->in_len - pos < 6 + (size_t)len)
            break;
        uint8_t *r = c->out + c->out_len;
        unsigned fc = q[7];
        unsigned qty = len >= 6 ? ((unsigned)q[10] << 8 | q[11]) : 0;
        r[0] = q[0];
        r[1] = q[1];
        r[2] = 0;
        r[3] = 0;
        r[6] = q[6];
        if (fc == 0x03 && len == 6 && qty >= 1 && qty <= 125) {
            unsigned bytes = qty * 2;
            r[4] = (uint8_t)((bytes + 3) >> 8);
            r[5] = (uint8_t)(bytes + 3);
            r[7] = 0x03;
            r[8] = (uint8_t)bytes;
            memset(r + 9, 0, bytes);
            c->out_len += 9 + bytes;
        } else if (fc == 0x10 && len >= 9 && qty >= 1 && qty <= 123 && q[12] == 2 * qty && len == 7 + 2 * qty) {
            /* Write multiple registers: nothing is stored; the reply echoes address and quantity. */
            r[4] = 0;
            r[5] = 6;
            r[7] = 0x10;
            memcpy(r + 8, q + 8, 4);
            c->out_len += 12;
        } else {
            r[4] = 0;
            r[5] = 3;
            r[7] = (uint8_t)(fc | 0x80);
            r[8] = fc == 0x03 ? 0x03 : 0x01;
            c->out_len += 9;
        }
        pos += 6 + len;
    }
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    return 0;
}

/* Writes what is pending. Returns 1 if all was sent, 0 if the socket is full, -1 on error. */
static int flush_out(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return 1;
}

static int set_events(int ep, struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* One readable or writable event for a connection. Returns -1 to close it. */
static int serve(int ep, struct conn *c, uint32_t events)
{
    if (events & EPOLLOUT) {
        int f = flush_out(c);
        if (f < 0)
            return -1;
        if (f == 0)
            return 0;
        /* Output drained: read again. */
        if (set_events(ep, c, EPOLLIN) < 0)
            return -1;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || c->out_len > 0)
        return 0;
    ssize_t n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
    if (n == 0)
        return -1;
    if (n < 0)
        return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    c->in_len += (size_t)n;
    if (answer_buffered(c) < 0)
        return -1;
    int f = flush_out(c);
    if (f < 0)
        return -1;
    if (f == 0) /* Socket full: stop reading until the replies are out. */
        return set_events(ep, c, EPOLLOUT);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "bad port %s\n", argv[1]);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (lfd < 0) {
        perror("socket");
        return 1;
    }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 256) < 0) {
        perror("bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    if (ep < 0) {
        perror("epoll_create1");
        return 1;
    }
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    printf("trivial responder listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    while (!stop_requested) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = malloc(sizeof *nc);
                    if (nc == NULL) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    nc->in_len = nc->out_off = nc->out_len = 0;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        close(fd);
                        free(nc);
                    }
                }
                continue;
            }
            if (serve(ep, c, events[i].events) < 0)
                close_conn(ep, c);
        }
    }
    close(lfd);
    close(ep);
    return 0;
}
