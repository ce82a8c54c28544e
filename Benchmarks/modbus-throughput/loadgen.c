/*
 * loadgen.c - Modbus TCP load generator for the throughput benchmark.
 *
 * One thread, epoll. Opens CONNS connections to 127.0.0.1:PORT; each keeps DEPTH requests in
 * flight (1 = request/response, 8 = pipelined): by default FC3, read QUANTITY (10) holding
 * registers at address 0, unit 1; with -f 16, FC16, write QUANTITY holding registers at address 0
 * (values 1...QUANTITY). Transaction ids count up per connection (so the ids in flight are
 * distinct). Every reply is checked: transaction id equal to the oldest request in flight,
 * protocol id 0, unit 1, and for FC3 MBAP length 3 + 2 x QUANTITY, function code 0x03 and byte
 * count 2 x QUANTITY; for FC16 MBAP length 6, function code 0x10, the address and the quantity
 * echoed. A reply for an id further back in the queue means the requests before it were
 * skipped: those count as lost.
 *
 * After WARMUP seconds the counters are reset and the run lasts SECONDS more; then no new
 * request is sent and the requests still in flight get DRAIN_MS to be answered. Whatever is
 * still unanswered then, or was in flight on a connection the server closed, counts as lost.
 *
 *     loadgen -p PORT [-c CONNS] [-d DEPTH] [-t SECONDS] [-w WARMUP_SECONDS] [-f 3|16] [-n QUANTITY]
 *             [-i INTERVAL_MS]
 *
 * QUANTITY: 1...125 for FC3, 1...123 for FC16 (the Modbus limits).
 *
 * With -i INTERVAL_MS each connection is paced like a polling master: a request goes out
 * INTERVAL_MS after the previous one of that connection was sent, or as soon as its reply has
 * come if that is later (the connections' first requests spread evenly over one interval).
 * Without it a connection sends its next request the moment a reply arrives (a closed loop,
 * the most load the server can take).
 *
 * Prints a human summary on stderr and one machine-readable line on stdout:
 *     RESULT rps=... replies=... errors=... lost=... closed=... p50_us=... p99_us=... max_us=...
 *            seconds=... loadgen_cpu=... total=... cpu_s=...
 * (replies: valid replies in the measured seconds; loadgen_cpu: its CPU use in those seconds,
 * 1 = one core; total: valid replies in the whole run; cpu_s: its CPU seconds in the whole run.)
 * Latency is from the write() of a request to the read() that brought its reply; it is
 * meaningful as a per-request latency for DEPTH 1 (with DEPTH > 1 it includes queueing).
 * Exit status: 0 if every reply was valid and none was lost, 1 otherwise, 2 on usage errors.
 *
 * Build: gcc -O2 -Wall -Wextra -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define MAX_DEPTH 256
#define IN_CAP 65536
#define MAX_REQ_LEN 260 /* MBAP 7 + the largest PDU, 253 */
#define UNIT 1
#define DRAIN_MS 2000
#define HIST_NS_PER_BUCKET 100
#define HIST_BUCKETS 1000000 /* 100 ns buckets up to 100 ms; slower replies go to the last one (max_us is exact) */

struct conn {
    int fd;
    int dead;
    uint16_t next_tid;
    unsigned owed;                  /* paced: requests due once next_due has come */
    uint64_t next_due;
    unsigned head, count;           /* ring of requests in flight */
    uint16_t tids[MAX_DEPTH];
    uint64_t sent_ns[MAX_DEPTH];
    size_t in_len;
    size_t out_off, out_len;
    uint8_t in[IN_CAP];
    uint8_t out[MAX_DEPTH * MAX_REQ_LEN];
};

enum phase { WARMUP, MEASURE, DRAIN };

static enum phase phase = WARMUP;
static uint64_t replies;            /* valid replies during MEASURE */
static uint64_t replies_all;        /* valid replies in every phase */
static uint64_t errors_bad;         /* malformed or wrong content (whole run) */
static uint64_t errors_tid;         /* id not in flight on that connection (whole run) */
static uint64_t lost;               /* requests never answered (whole run) */
static uint64_t closed_by_server;
static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_count, max_latency_ns;
static int ep;
static int function_code = 3;
static unsigned quantity = 10;
static size_t request_length;   /* the ADU, MBAP header included */
static unsigned reply_mbap_length;
static uint64_t interval_ns;    /* 0: closed loop */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void record_latency(uint64_t ns)
{
    uint64_t b = ns / HIST_NS_PER_BUCKET;
    hist[b < HIST_BUCKETS ? b : HIST_BUCKETS - 1]++;
    hist_count++;
    if (ns > max_latency_ns)
        max_latency_ns = ns;
}

static double percentile_us(double p)
{
    if (hist_count == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)hist_count);
    if (rank >= hist_count)
        rank = hist_count - 1;
    uint64_t seen = 0;
    for (size_t b = 0; b < HIST_BUCKETS; b++) {
        seen += hist[b];
        if (seen > rank)
            return (double)(b * HIST_NS_PER_BUCKET + HIST_NS_PER_BUCKET / 2) / 1000.0;
    }
    return (double)max_latency_ns / 1000.0;
}

static void kill_conn(struct conn *c, const char *why)
{
    if (c->dead)
        return;
    fprintf(stderr, "loadgen: connection fd %d: %s (%u requests in flight counted lost)\n", c->fd, why,
            c->count);
    lost += c->count;
    c->count = 0;
    c->dead = 1;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

static void queue_request(struct conn *c, uint64_t t)
{
    if (c->out_off > 0) { /* keep the unsent bytes at the front */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    uint16_t tid = c->next_tid++;
    uint8_t *q = c->out + c->out_len;
    q[0] = (uint8_t)(tid >> 8);
    q[1] = (uint8_t)tid;
    q[2] = 0;
    q[3] = 0;
    q[4] = (uint8_t)((request_length - 6) >> 8);
    q[5] = (uint8_t)(request_length - 6);
    q[6] = UNIT;
    q[7] = (uint8_t)function_code;
    q[8] = 0; /* address 0 */
    q[9] = 0;
    q[10] = 0;
    q[11] = (uint8_t)quantity;
    if (function_code == 16) {
        q[12] = (uint8_t)(2 * quantity);
        for (unsigned i = 0; i < quantity; i++) {
            q[13 + 2 * i] = 0;
            q[14 + 2 * i] = (uint8_t)(i + 1);
        }
    }
    c->out_len += request_length;
    unsigned slot = (c->head + c->count) % MAX_DEPTH;
    c->tids[slot] = tid;
    c->sent_ns[slot] = t;
    c->count++;
}

static int flush_out(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                return 0;
            }
            kill_conn(c, strerror(errno));
            return -1;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_len > 0 && c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    }
    return 1;
}

/* Checks the replies buffered on c; returns how many requests left the queue. */
static unsigned take_replies(struct conn *c, uint64_t t)
{
    unsigned done = 0;
    size_t pos = 0;
    while (!c->dead && c->in_len - pos >= 6) {
        const uint8_t *r = c->in + pos;
        uint16_t tid = (uint16_t)(r[0] << 8 | r[1]);
        unsigned proto = (unsigned)r[2] << 8 | r[3];
        unsigned len = (unsigned)r[4] << 8 | r[5];
        if (proto != 0 || len < 3 || len > 254) {
            errors_bad++;
            kill_conn(c, "unframeable reply (protocol id or length); stream lost");
            return done;
        }
        if (c->in_len - pos < 6 + (size_t)len)
            break;
        pos += 6 + len;
        /* Find the request this reply answers: normally the oldest in flight. */
        unsigned k = 0;
        while (k < c->count && c->tids[(c->head + k) % MAX_DEPTH] != tid)
            k++;
        if (k == c->count) {
            errors_tid++;
            continue;
        }
        if (k > 0) {
            /* Replies for the k older requests were skipped (lost or out of order). */
            lost += k;
            errors_tid++;
        }
        unsigned slot = (c->head + k) % MAX_DEPTH;
        uint64_t sent = c->sent_ns[slot];
        c->head = (slot + 1) % MAX_DEPTH;
        c->count -= k + 1;
        done += k + 1;
        int ok = len == reply_mbap_length && r[6] == UNIT && r[7] == function_code &&
                 (function_code == 3 ? r[8] == 2 * quantity
                                     : r[8] == 0 && r[9] == 0 && r[10] == 0 && r[11] == quantity);
        if (!ok) {
            errors_bad++;
            continue;
        }
        replies_all++;
        if (phase == MEASURE) {
            replies++;
            record_latency(t - sent);
        }
    }
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    return done;
}

static void on_event(struct conn *c, uint32_t events)
{
    if (c->dead)
        return;
    if (events & EPOLLOUT) {
        int f = flush_out(c);
        if (f <= 0)
            return;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    ssize_t n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
    if (n == 0) {
        closed_by_server++;
        kill_conn(c, "closed by the server");
        return;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        closed_by_server++;
        kill_conn(c, strerror(errno));
        return;
    }
    c->in_len += (size_t)n;
    uint64_t t = now_ns();
    unsigned done = take_replies(c, t);
    if (c->dead || phase == DRAIN)
        return;
    /* Keep DEPTH in flight: one new request for each one that left the queue (paced: when due). */
    if (interval_ns > 0) {
        c->owed += done;
        return;
    }
    int was_idle = c->out_len == 0;
    for (unsigned i = 0; i < done; i++)
        queue_request(c, t);
    if (was_idle && c->out_len > 0)
        flush_out(c);
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s -p PORT [-c CONNS] [-d DEPTH] [-t SECONDS] [-w WARMUP_SECONDS] [-f 3|16] [-n QUANTITY] "
            "[-i INTERVAL_MS]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 0, nconns = 16, depth = 1;
    double seconds = 5, warmup = 1;
    int opt;
    double interval_ms = 0;
    while ((opt = getopt(argc, argv, "p:c:d:t:w:f:n:i:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        case 'd': depth = atoi(optarg); break;
        case 't': seconds = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'f': function_code = atoi(optarg); break;
        case 'n': quantity = (unsigned)atoi(optarg); break;
        case 'i': interval_ms = atof(optarg); break;
        default: usage(argv[0]);
        }
    }
    if (port <= 0 || port > 65535 || nconns < 1 || nconns > MAX_CONNS || depth < 1 || depth > MAX_DEPTH ||
        seconds <= 0 || seconds > 600 || warmup < 0 || warmup > 60 || (function_code != 3 && function_code != 16) ||
        quantity < 1 || quantity > (function_code == 3 ? 125u : 123u) || interval_ms < 0 || interval_ms > 60000)
        usage(argv[0]);
    interval_ns = (uint64_t)(interval_ms * 1e6);
    request_length = function_code == 3 ? 12 : 13 + 2 * (size_t)quantity;
    reply_mbap_length = function_code == 3 ? 3 + 2 * quantity : 6;
    signal(SIGPIPE, SIG_IGN);

    ep = epoll_create1(0);
    if (ep < 0) {
        perror("epoll_create1");
        return 1;
    }
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    if (conns == NULL) {
        perror("calloc");
        return 1;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
            fprintf(stderr, "loadgen: connect to 127.0.0.1:%d: %s\n", port, strerror(errno));
            return 1;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) {
            perror("fcntl");
            return 1;
        }
        c->next_tid = (uint16_t)(i * 4099); /* distinct across connections too, for traces */
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }

    uint64_t start = now_ns();
    uint64_t measure_at = start + (uint64_t)(warmup * 1e9);
    uint64_t end_at = measure_at + (uint64_t)(seconds * 1e9);
    uint64_t drain_until = 0, measured_ns = 0;
    double cpu_at_measure = 0, cpu_used = 0;
    for (int i = 0; i < nconns; i++) {
        if (interval_ns > 0) {
            conns[i].owed = (unsigned)depth;
            conns[i].next_due = start + interval_ns * (uint64_t)i / (uint64_t)nconns;
            continue;
        }
        for (int k = 0; k < depth; k++)
            queue_request(&conns[i], start);
        flush_out(&conns[i]);
    }
    if (warmup == 0) {
        phase = MEASURE;
        cpu_at_measure = cpu_seconds();
    }

    struct epoll_event events[MAX_CONNS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_CONNS, interval_ns > 0 ? 1 : 5);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++)
            on_event(events[i].data.ptr, events[i].events);
        uint64_t t = now_ns();
        if (interval_ns > 0 && phase != DRAIN) {
            for (int i = 0; i < nconns; i++) {
                struct conn *c = &conns[i];
                if (c->dead || c->owed == 0 || t < c->next_due)
                    continue;
                int was_idle = c->out_len == 0;
                for (; c->owed > 0; c->owed--)
                    queue_request(c, t);
                c->next_due = t + interval_ns;
                if (was_idle)
                    flush_out(c);
            }
        }
        if (phase == WARMUP && t >= measure_at) {
            phase = MEASURE;
            measure_at = t;
            cpu_at_measure = cpu_seconds();
        } else if (phase == MEASURE && t >= end_at) {
            phase = DRAIN;
            measured_ns = t - measure_at;
            cpu_used = cpu_seconds() - cpu_at_measure;
            drain_until = t + (uint64_t)DRAIN_MS * 1000000u;
        }
        if (phase == DRAIN) {
            unsigned in_flight = 0;
            for (int i = 0; i < nconns; i++)
                in_flight += conns[i].dead ? 0 : conns[i].count;
            if (in_flight == 0)
                break;
            if (t >= drain_until) {
                fprintf(stderr, "loadgen: %u requests still unanswered %d ms after the end (counted lost)\n",
                        in_flight, DRAIN_MS);
                lost += in_flight;
                break;
            }
        }
        int alive = 0;
        for (int i = 0; i < nconns; i++)
            alive += !conns[i].dead;
        if (alive == 0) {
            fprintf(stderr, "loadgen: every connection is closed\n");
            if (phase != DRAIN) {
                measured_ns = t - measure_at;
                cpu_used = cpu_seconds() - cpu_at_measure;
            }
            break;
        }
    }
    for (int i = 0; i < nconns; i++)
        if (!conns[i].dead)
            close(conns[i].fd);

    double secs = measured_ns / 1e9;
    double rps = secs > 0 ? (double)replies / secs : 0;
    uint64_t errors = errors_bad + errors_tid;
    fprintf(stderr,
            "loadgen: %d connections x depth %d, %.2f s measured (after %.1f s warm-up)\n"
            "  %.0f requests/s (%llu valid replies), errors %llu (bad %llu, id mismatch %llu), lost %llu, "
            "connections closed by server %llu\n"
            "  latency p50 %.1f us, p99 %.1f us, max %.1f us; loadgen CPU %.0f %%\n",
            nconns, depth, secs, warmup, rps, (unsigned long long)replies, (unsigned long long)errors,
            (unsigned long long)errors_bad, (unsigned long long)errors_tid, (unsigned long long)lost,
            (unsigned long long)closed_by_server, percentile_us(0.50), percentile_us(0.99),
            max_latency_ns / 1000.0, secs > 0 ? 100.0 * cpu_used / secs : 0);
    printf("RESULT rps=%.0f replies=%llu errors=%llu lost=%llu closed=%llu p50_us=%.1f p99_us=%.1f "
           "max_us=%.1f seconds=%.3f loadgen_cpu=%.2f total=%llu cpu_s=%.3f\n",
           rps, (unsigned long long)replies, (unsigned long long)errors, (unsigned long long)lost,
           (unsigned long long)closed_by_server, percentile_us(0.50), percentile_us(0.99),
           max_latency_ns / 1000.0, secs, secs > 0 ? cpu_used / secs : 0, (unsigned long long)replies_all, cpu_seconds());
    free(conns);
    return (errors == 0 && lost == 0 && closed_by_server == 0) ? 0 : 1;
}
