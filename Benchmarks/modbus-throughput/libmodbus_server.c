/*
 * libmodbus_server.c - the libmodbus Modbus TCP server for the benchmark.
 *
 * The usual libmodbus way to serve many clients from one thread (the pattern of libmodbus's
 * tests/bandwidth-server-many-up.c): one modbus_t context, a select() loop over the listening
 * socket and every client, and for each readable client modbus_set_socket + modbus_receive
 * (one request) + modbus_reply against a modbus_mapping_t (holding registers 0..124, constant).
 *
 *     libmodbus_server PORT [nodelay]     (listens on 127.0.0.1 only; SIGINT/SIGTERM stop it)
 *
 * By default accepted sockets keep the system's options, as in libmodbus's own example (Nagle
 * on: with pipelined requests the kernel then coalesces libmodbus's one-write-per-reply into
 * fewer segments). "nodelay" sets TCP_NODELAY on them, as the other servers of the benchmark do.
 *
 * Build: gcc -O2 -Wall -Wextra -o libmodbus_server libmodbus_server.c $(pkg-config --cflags --libs libmodbus)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define REGISTERS MODBUS_MAX_READ_REGISTERS /* 125 */

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "nodelay") != 0)) {
        fprintf(stderr, "usage: %s PORT [nodelay]\n", argv[0]);
        return 2;
    }
    int nodelay = argc == 3;
    int port = atoi(argv[1]);
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "bad port %s\n", argv[1]);
        return 2;
    }
    /* No SA_RESTART: a signal interrupts select() so the loop can end. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    modbus_t *ctx = modbus_new_tcp("127.0.0.1", port);
    if (ctx == NULL) {
        fprintf(stderr, "modbus_new_tcp: %s\n", modbus_strerror(errno));
        return 1;
    }
    modbus_mapping_t *map = modbus_mapping_new(0, 0, REGISTERS, 0);
    if (map == NULL) {
        fprintf(stderr, "modbus_mapping_new: %s\n", modbus_strerror(errno));
        modbus_free(ctx);
        return 1;
    }
    for (int i = 0; i < REGISTERS; i++)
        map->tab_registers[i] = (uint16_t)i;

    int listener = modbus_tcp_listen(ctx, 256);
    if (listener < 0) {
        fprintf(stderr, "modbus_tcp_listen: %s\n", modbus_strerror(errno));
        modbus_mapping_free(map);
        modbus_free(ctx);
        return 1;
    }
    printf("libmodbus %s server listening on 127.0.0.1:%d%s\n", LIBMODBUS_VERSION_STRING, port,
           nodelay ? " (TCP_NODELAY)" : "");
    fflush(stdout);

    fd_set clients;
    FD_ZERO(&clients);
    FD_SET(listener, &clients);
    int max_fd = listener;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];

    while (!stop_requested) {
        fd_set ready = clients;
        if (select(max_fd + 1, &ready, NULL, NULL, NULL) < 0) {
            if (errno == EINTR)
                continue;
            perror("select");
            break;
        }
        for (int fd = 0; fd <= max_fd; fd++) {
            if (!FD_ISSET(fd, &ready))
                continue;
            if (fd == listener) {
                int client = accept(listener, NULL, NULL);
                if (client < 0) {
                    perror("accept");
                    continue;
                }
                if (client >= FD_SETSIZE) {
                    close(client);
                    continue;
                }
                if (nodelay) {
                    int one = 1;
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                }
                FD_SET(client, &clients);
                if (client > max_fd)
                    max_fd = client;
                continue;
            }
            modbus_set_socket(ctx, fd);
            int rc = modbus_receive(ctx, query);
            if (rc > 0) {
                if (modbus_reply(ctx, query, rc, map) < 0) {
                    close(fd);
                    FD_CLR(fd, &clients);
                }
            } else if (rc < 0) {
                /* Closed by the client, or a broken frame: drop the connection. */
                close(fd);
                FD_CLR(fd, &clients);
            }
            /* rc == 0: a request for another unit, ignored by libmodbus. */
        }
        while (max_fd > listener && !FD_ISSET(max_fd, &clients))
            max_fd--;
    }
    close(listener);
    modbus_mapping_free(map);
    modbus_free(ctx);
    return 0;
}
