/* A Modbus master for the write benchmarks (../ack-under-flood, ./run.sh): FC6 writes of one
 * holding register per connection, one write at a time on each connection, for a given time;
 * prints the count, the exceptions and the latency percentiles of all connections together.
 *
 *   modbus_writer PORT SECONDS [ADDRESS] [CONNECTIONS] [WARMUP_SECONDS]
 *
 * Connection i (0-based) writes register ADDRESS + i of unit 1, alternating 100 and 200, each
 * on its own thread. Writes sent during the warm-up (default 0 s) are not counted.
 *
 * Output (one line): writes=N ok=N exceptions=N other=N p50_us=X p99_us=X max_us=X writes_per_s=X
 * An exception reply (FC | 0x80) counts as an exception; a timeout (6 s), a closed connection
 * or a reply with the wrong transaction id counts as "other" and ends that connection; the exit
 * status is 1 if any did. Loopback only.
 *
 * Build: gcc -O2 -Wall -Wextra -pthread -o modbus_writer modbus_writer.c */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "latencies.h"

#define MAX_CONNECTIONS 256
#define MAX_SAMPLES (1 << 20)

static int port, base_address;
static double seconds, warmup;
static pthread_barrier_t connected;

struct master {
    int index;
    long ok, exceptions, other;
    size_t count;
    double *latencies;
};

static int read_exact(int fd, uint8_t *buffer, size_t length) {
    size_t got = 0;
    while (got < length) {
        ssize_t n = recv(fd, buffer + got, length - got, 0);
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

static void *run_master(void *argument) {
    struct master *m = argument;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
    int failed = connect(fd, (struct sockaddr *)&peer, sizeof peer) != 0;
    if (failed) {
        perror("modbus_writer: connect");
        m->other++;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval timeout = {.tv_sec = 6};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    pthread_barrier_wait(&connected);
    if (failed) {
        close(fd);
        return NULL;
    }

    int address = base_address + m->index;
    double start = now_us(), measured_from = start + warmup * 1e6, end = measured_from + seconds * 1e6;
    for (uint16_t transaction = 1; now_us() < end && m->count < MAX_SAMPLES; transaction++) {
        uint16_t value = (transaction % 2) ? 100 : 200;
        uint8_t request[12] = {transaction >> 8, transaction & 0xFF, 0, 0, 0, 6, 1, 6,
                               address >> 8, address & 0xFF, value >> 8, value & 0xFF};
        double sent = now_us();
        if (send(fd, request, sizeof request, 0) != sizeof request) { m->other++; break; }
        uint8_t header[8];
        if (read_exact(fd, header, 8) != 0) { m->other++; break; }
        uint16_t length = (uint16_t)(header[4] << 8 | header[5]);
        uint8_t rest[260];
        if (length < 2 || length > 254 || read_exact(fd, rest, length - 2) != 0) { m->other++; break; }
        double latency = now_us() - sent;
        if (((header[0] << 8) | header[1]) != transaction) { m->other++; break; }
        if (sent < measured_from) continue;
        m->latencies[m->count++] = latency;
        if (header[7] & 0x80) m->exceptions++; else m->ok++;
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: modbus_writer PORT SECONDS [ADDRESS] [CONNECTIONS] [WARMUP_SECONDS]\n");
        return 2;
    }
    port = atoi(argv[1]);
    seconds = atof(argv[2]);
    base_address = argc > 3 ? atoi(argv[3]) : 0;
    int connections = argc > 4 ? atoi(argv[4]) : 1;
    warmup = argc > 5 ? atof(argv[5]) : 0;
    if (port <= 0 || port > 65535 || seconds <= 0 || base_address < 0 || connections < 1 ||
        connections > MAX_CONNECTIONS || base_address + connections > 65536 || warmup < 0) {
        fprintf(stderr, "modbus_writer: bad arguments (CONNECTIONS 1...%d)\n", MAX_CONNECTIONS);
        return 2;
    }
    pthread_barrier_init(&connected, NULL, (unsigned)connections);
    static struct master masters[MAX_CONNECTIONS];
    pthread_t threads[MAX_CONNECTIONS];
    for (int i = 0; i < connections; i++) {
        masters[i].index = i;
        masters[i].latencies = malloc(MAX_SAMPLES * sizeof(double));
        pthread_create(&threads[i], NULL, run_master, &masters[i]);
    }
    size_t total = 0;
    long ok = 0, exceptions = 0, other = 0;
    for (int i = 0; i < connections; i++) {
        pthread_join(threads[i], NULL);
        total += masters[i].count;
        ok += masters[i].ok;
        exceptions += masters[i].exceptions;
        other += masters[i].other;
    }
    double *samples[MAX_CONNECTIONS];
    size_t counts[MAX_CONNECTIONS];
    for (int i = 0; i < connections; i++) {
        samples[i] = masters[i].latencies;
        counts[i] = masters[i].count;
    }
    struct percentiles latency = percentiles_of(samples, counts, connections);
    double p50 = latency.p50, p99 = latency.p99, max = latency.max;
    printf("writes=%zu ok=%ld exceptions=%ld other=%ld p50_us=%.1f p99_us=%.1f max_us=%.1f writes_per_s=%.0f\n",
           total, ok, exceptions, other, p50, p99, max, total / seconds);
    return other ? 1 : 0;
}
