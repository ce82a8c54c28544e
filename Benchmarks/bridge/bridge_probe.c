/*
 * bridge_probe.c - watches a bridge fill its cache, from outside, for the bridge benchmarks.
 *
 * Reads holding registers 0 ... POINTS-1 of unit 1 over Modbus TCP (FC3, 125 at a time, one
 * request in flight) until every register n holds (n + BASE) mod 65536, the value mqtt_flood
 * publishes for topic n last. Until the listener accepts, it retries the connection every
 * millisecond; an exception reply (a point without a value yet) or a wrong value means "not
 * yet". With -w it first watches only the last register (the last topic of a round-robin
 * flood, so the last to arrive), one request every 2 ms, and sweeps everything only then: a
 * full sweep is 80 requests, which would load the bridge during an ingest measurement.
 *
 * With -b BROKER_PORT -i CLIENT_ID it also subscribes to the broker's log ($SYS/broker/log/#,
 * needs `log_dest topic` and `log_type notice` in the broker's configuration) and notes when
 * the broker logs "New client connected ... as CLIENT_ID": the bridge's broker connection. It
 * prints READY on stderr once that subscription is in place, so the caller can start the bridge.
 *
 * Times are milliseconds since the probe started. Prints one line on stdout:
 *     RESULT listen_ms=... connected_ms=... full_ms=... after_connect_ms=... sweeps=...
 * (connected_ms and after_connect_ms are -1 without -b.) Exit 1 if not full within TIMEOUT s.
 *
 *     bridge_probe -m MODBUS_PORT -n POINTS [-B BASE] [-w] [-b BROKER_PORT -i CLIENT_ID] [-T TIMEOUT]
 *
 * Build: gcc -O2 -Wall -Wextra -o bridge_probe bridge_probe.c -lmosquitto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double start_s;
static volatile double connected_ms = -1;
static const char *client_id;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}
static double elapsed_ms(void) { return (now_s() - start_s) * 1000; }

static void on_log_message(struct mosquitto *m, void *u, const struct mosquitto_message *msg) {
    (void)m; (void)u;
    if (connected_ms >= 0 || msg->payloadlen <= 0) return;
    char text[1024];
    int len = msg->payloadlen < 1023 ? msg->payloadlen : 1023;
    memcpy(text, msg->payload, (size_t)len);
    text[len] = 0;
    char needle[300];
    snprintf(needle, sizeof needle, " as %s ", client_id);
    if (strstr(text, "New client connected") && strstr(text, needle)) connected_ms = elapsed_ms();
}
static int log_subscribed;
static void on_subscribe(struct mosquitto *m, void *u, int mid, int n, const int *g) {
    (void)m; (void)u; (void)mid; (void)n; (void)g;
    log_subscribed = 1;
}

static int modbus_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int read_exact(int fd, uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) { if (r < 0 && errno == EINTR) continue; return -1; }
        got += (size_t)r;
    }
    return 0;
}

/* Reads COUNT registers from ADDRESS; 1 if all hold their expected value, 0 if not (or an
 * exception), -1 on a connection error. */
static uint16_t tid;
static int check(int fd, int address, int count, int base) {
    uint8_t req[12] = {0, 0, 0, 0, 0, 6, 1, 3, (uint8_t)(address >> 8), (uint8_t)address, 0, (uint8_t)count};
    tid++;
    req[0] = (uint8_t)(tid >> 8);
    req[1] = (uint8_t)tid;
    if (write(fd, req, sizeof req) != (ssize_t)sizeof req) return -1;
    uint8_t head[7];
    if (read_exact(fd, head, 7) != 0) return -1;
    int len = (head[4] << 8) | head[5];
    if (len < 2 || len > 260) return -1;
    uint8_t body[260];
    if (read_exact(fd, body, (size_t)(len - 1)) != 0) return -1;
    if (((head[0] << 8) | head[1]) != tid) return -1;
    if (body[0] != 3 || body[1] != 2 * count) return 0;
    for (int i = 0; i < count; i++) {
        int value = (body[2 + 2 * i] << 8) | body[3 + 2 * i];
        if (value != (address + i + base) % 65536) return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    int modbus_port = 0, points = 0, base = 0, watch_last = 0, broker_port = 0, timeout = 120, opt;
    while ((opt = getopt(argc, argv, "m:n:B:wb:i:T:")) != -1) {
        switch (opt) {
        case 'm': modbus_port = atoi(optarg); break;
        case 'n': points = atoi(optarg); break;
        case 'B': base = atoi(optarg); break;
        case 'w': watch_last = 1; break;
        case 'b': broker_port = atoi(optarg); break;
        case 'i': client_id = optarg; break;
        case 'T': timeout = atoi(optarg); break;
        default: goto usage;
        }
    }
    if (modbus_port <= 0 || points <= 0 || points > 65536 || (broker_port && !client_id)) goto usage;
    start_s = now_s();
    struct mosquitto *mosq = NULL;
    if (broker_port) {
        mosquitto_lib_init();
        mosq = mosquitto_new(NULL, true, NULL);
        mosquitto_message_callback_set(mosq, on_log_message);
        mosquitto_subscribe_callback_set(mosq, on_subscribe);
        if (mosquitto_connect(mosq, "127.0.0.1", broker_port, 60) != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "cannot connect to the broker on %d\n", broker_port);
            return 1;
        }
        mosquitto_subscribe(mosq, NULL, "$SYS/broker/log/#", 0);
        while (!log_subscribed) mosquitto_loop(mosq, 100, 1);
        /* The log messages arrive on the loop thread, while this one polls Modbus. */
        mosquitto_loop_start(mosq);
        start_s = now_s();
    }
    fprintf(stderr, "READY\n");
    double deadline = now_s() + timeout;
    double listen_ms = -1;
    int fd = -1, sweeps = 0, full = 0;
    struct timespec pause = {0, 1000000};
    while (!full && now_s() < deadline) {
        if (fd < 0) {
            fd = modbus_connect(modbus_port);
            if (fd < 0) { nanosleep(&pause, NULL); continue; }
            if (listen_ms < 0) listen_ms = elapsed_ms();
        }
        if (watch_last) {
            int r = check(fd, points - 1, 1, base);
            if (r < 0) { close(fd); fd = -1; continue; }
            if (r == 0) { struct timespec p = {0, 2000000}; nanosleep(&p, NULL); continue; }
        }
        sweeps++;
        int all = 1;
        for (int address = 0; address < points && all; address += 125) {
            int count = points - address < 125 ? points - address : 125;
            int r = check(fd, address, count, base);
            if (r < 0) { close(fd); fd = -1; all = 0; break; }
            if (r == 0) all = 0;
        }
        if (all) full = 1;
        else nanosleep(&pause, NULL);
    }
    double full_ms = full ? elapsed_ms() : -1;
    if (mosq) {
        mosquitto_loop_stop(mosq, true);
        mosquitto_destroy(mosq);
        mosquitto_lib_cleanup();
    }
    if (fd >= 0) close(fd);
    printf("RESULT listen_ms=%.1f connected_ms=%.1f full_ms=%.1f after_connect_ms=%.1f sweeps=%d\n", listen_ms,
           connected_ms, full_ms, (full && connected_ms >= 0) ? full_ms - connected_ms : -1, sweeps);
    return full ? 0 : 1;
usage:
    fprintf(stderr, "usage: bridge_probe -m MODBUS_PORT -n POINTS [-B BASE] [-w] [-b BROKER_PORT -i CLIENT_ID] [-T TIMEOUT]\n");
    return 2;
}
