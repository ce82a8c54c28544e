/*
 * mqtt_flood.c - publishes a flood of MQTT messages for the bridge benchmarks (libmosquitto).
 *
 * ROUNDS rounds over TOPICS topics PREFIX/0 ... PREFIX/(TOPICS-1); in round r (1-based) topic t
 * gets the text of the number (t + r + BASE) mod 65536, so after the flood every topic's last
 * value is known: (t + ROUNDS + BASE) mod 65536. QoS 0 by default, as fast as libmosquitto
 * writes (the network loop runs in this thread; a full socket buffer makes it wait, nothing is
 * dropped on this side). With -r the messages are retained (the cold-start set: one round).
 * At the end a QoS 1 message on PREFIX-done, whose PUBACK says the broker has the whole flood.
 *
 *     mqtt_flood -p PORT -n TOPICS [-R ROUNDS] [-b BASE] [-q QOS] [-r] [-t PREFIX]
 *
 * Prints one line on stdout: RESULT published=... seconds=... rate=... (the marker not counted)
 * Build: gcc -O2 -Wall -Wextra -o mqtt_flood mqtt_flood.c -lmosquitto
 */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int marker_mid, marker_acknowledged;
static void on_publish(struct mosquitto *m, void *u, int mid) {
    (void)m; (void)u;
    if (mid == marker_mid) marker_acknowledged = 1;
}

int main(int argc, char **argv) {
    int port = 0, topics = 0, rounds = 1, base = 0, qos = 0, retain = 0, opt;
    const char *prefix = "bench";
    while ((opt = getopt(argc, argv, "p:n:R:b:q:rt:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'n': topics = atoi(optarg); break;
        case 'R': rounds = atoi(optarg); break;
        case 'b': base = atoi(optarg); break;
        case 'q': qos = atoi(optarg); break;
        case 'r': retain = 1; break;
        case 't': prefix = optarg; break;
        default: goto usage;
        }
    }
    if (port <= 0 || topics <= 0 || rounds <= 0 || qos < 0 || qos > 1) goto usage;

    mosquitto_lib_init();
    struct mosquitto *mosq = mosquitto_new(NULL, true, NULL);
    if (!mosq) { fprintf(stderr, "mosquitto_new failed\n"); return 1; }
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_publish_callback_set(mosq, on_publish);
    if (mosquitto_connect(mosq, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "cannot connect to 127.0.0.1:%d\n", port);
        return 1;
    }
    char topic[256], payload[16];
    long published = 0;
    double start = now_s();
    for (int r = 1; r <= rounds; r++) {
        for (int t = 0; t < topics; t++) {
            snprintf(topic, sizeof topic, "%s/%d", prefix, t);
            int len = snprintf(payload, sizeof payload, "%d", (t + r + base) % 65536);
            int rc;
            while ((rc = mosquitto_publish(mosq, NULL, topic, len, payload, qos, retain)) == MOSQ_ERR_NOMEM) {
                mosquitto_loop(mosq, 10, 1);
            }
            if (rc != MOSQ_ERR_SUCCESS) {
                fprintf(stderr, "publish failed: %s\n", mosquitto_strerror(rc));
                return 1;
            }
            published++;
            /* Write out what is queued every few messages; libmosquitto queues without bound. */
            if (published % 64 == 0) mosquitto_loop(mosq, 0, 1);
        }
    }
    /* Flush the queue, then a QoS 1 marker: its PUBACK comes after the broker has handled
     * every message before it, so the flood (and a retained set) is complete at the broker. */
    while (mosquitto_want_write(mosq)) mosquitto_loop(mosq, 10, 1);
    snprintf(topic, sizeof topic, "%s-done", prefix);
    if (mosquitto_publish(mosq, &marker_mid, topic, 1, "1", 1, false) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "marker publish failed\n");
        return 1;
    }
    double deadline = now_s() + 60;
    while (!marker_acknowledged && now_s() < deadline) mosquitto_loop(mosq, 100, 1);
    if (!marker_acknowledged) {
        fprintf(stderr, "the broker did not acknowledge the end of the flood within 60 s\n");
        return 1;
    }
    double seconds = now_s() - start;
    mosquitto_disconnect(mosq);
    mosquitto_loop(mosq, 10, 1);
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    printf("RESULT published=%ld seconds=%.3f rate=%.0f\n", published, seconds, published / (seconds > 0 ? seconds : 1));
    return 0;
usage:
    fprintf(stderr, "usage: mqtt_flood -p PORT -n TOPICS [-R ROUNDS] [-b BASE] [-q 0|1] [-r] [-t PREFIX]\n");
    return 2;
}
