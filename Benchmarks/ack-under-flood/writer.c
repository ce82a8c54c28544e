/* A Modbus master for the ack-under-flood benchmark: FC6 writes of one register, one at a time
 * on one connection, for a given time; prints the count, errors and latency percentiles.
 *
 *   writer PORT SECONDS [ADDRESS]
 *
 * Output (one line): writes=N ok=N exceptions=N other=N p50_us=X p99_us=X max_us=X writes_per_s=X
 * An exception reply (FC | 0x80) counts as an exception; a timeout (6 s) or a bad frame as
 * "other", and ends the run. Loopback only. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int read_exact(int fd, uint8_t *buffer, size_t length) {
    size_t got = 0;
    while (got < length) {
        ssize_t n = recv(fd, buffer + got, length - got, 0);
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: writer PORT SECONDS [ADDRESS]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    double seconds = atof(argv[2]);
    int address = argc > 3 ? atoi(argv[3]) : 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
    if (connect(fd, (struct sockaddr *)&peer, sizeof peer) != 0) {
        perror("connect");
        return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval timeout = {.tv_sec = 6};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);

    size_t capacity = 1 << 20, count = 0;
    double *latencies = malloc(capacity * sizeof *latencies);
    long ok = 0, exceptions = 0, other = 0;
    double start = now_us(), end = start + seconds * 1e6;
    for (uint16_t transaction = 1; now_us() < end && count < capacity; transaction++) {
        uint16_t value = (transaction % 2) ? 100 : 200;
        uint8_t request[12] = {transaction >> 8, transaction & 0xFF, 0, 0, 0, 6, 1, 6,
                               address >> 8, address & 0xFF, value >> 8, value & 0xFF};
        double sent = now_us();
        if (send(fd, request, sizeof request, 0) != sizeof request) { other++; break; }
        uint8_t header[8];
        if (read_exact(fd, header, 8) != 0) { other++; break; }
        uint16_t length = (uint16_t)(header[4] << 8 | header[5]);
        uint8_t rest[260];
        if (length < 2 || length > 254 || read_exact(fd, rest, length - 2) != 0) { other++; break; }
        latencies[count++] = now_us() - sent;
        if (((header[0] << 8) | header[1]) != transaction) { other++; break; }
        if (header[7] & 0x80) exceptions++; else ok++;
    }
    double elapsed = (now_us() - start) / 1e6;
    qsort(latencies, count, sizeof *latencies, compare);
    double p50 = count ? latencies[count / 2] : 0;
    double p99 = count ? latencies[(size_t)(count * 0.99) < count ? (size_t)(count * 0.99) : count - 1] : 0;
    double max = count ? latencies[count - 1] : 0;
    printf("writes=%zu ok=%ld exceptions=%ld other=%ld p50_us=%.1f p99_us=%.1f max_us=%.1f writes_per_s=%.0f\n",
           count, ok, exceptions, other, p50, p99, max, count / elapsed);
    close(fd);
    return other ? 1 : 0;
}
