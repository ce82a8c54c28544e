/*
 * mqtt_count.c - the C reference subscriber of the ingest benchmark (libmosquitto).
 *
 * Subscribes to PREFIX/# at QoS 0 and counts messages (retained ones left out) until COUNT have arrived, checking the
 * flood's final values on the way: for each topic PREFIX/t it keeps the last number received,
 * and at the end it counts the topics whose last value is not (t + ROUNDS + BASE) mod 65536
 * (the values mqtt_flood publishes last). Prints "READY" on stderr once subscribed, then one
 * line on stdout when done: RESULT messages=... seconds=... rate=... wrong=...
 * seconds run from the first message to the COUNT-th. Gives up after TIMEOUT seconds (exit 1).
 *
 *     mqtt_count -p PORT -n TOPICS -c COUNT [-R ROUNDS] [-b BASE] [-t PREFIX] [-T TIMEOUT]
 *
 * Build: gcc -O2 -Wall -Wextra -o mqtt_count mqtt_count.c -lmosquitto
 */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long received, wanted;
static int topics, rounds = 1, base;
static int *last;
static double first_at, done_at;
static size_t prefix_len;


static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void on_subscribe(struct mosquitto *m, void *u, int mid, int n, const int *granted) {
    (void)m; (void)u; (void)mid; (void)n; (void)granted;

    fprintf(stderr, "READY\n");
}

static void on_message(struct mosquitto *m, void *u, const struct mosquitto_message *msg) {
    (void)m; (void)u;
    if (msg->retain) return; /* the retained set from before the flood */
    if (received == 0) first_at = now_s();
    received++;
    if (strlen(msg->topic) > prefix_len) {
        int t = atoi(msg->topic + prefix_len + 1);
        char text[16] = {0};
        int len = msg->payloadlen < 15 ? msg->payloadlen : 15;
        memcpy(text, msg->payload, (size_t)len);
        if (t >= 0 && t < topics) last[t] = atoi(text);
    }
    if (received == wanted) done_at = now_s();
}

int main(int argc, char **argv) {
    int port = 0, opt, timeout = 120;
    const char *prefix = "bench";
    while ((opt = getopt(argc, argv, "p:n:c:R:b:t:T:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'n': topics = atoi(optarg); break;
        case 'c': wanted = atol(optarg); break;
        case 'R': rounds = atoi(optarg); break;
        case 'b': base = atoi(optarg); break;
        case 't': prefix = optarg; break;
        case 'T': timeout = atoi(optarg); break;
        default: goto usage;
        }
    }
    if (port <= 0 || topics <= 0 || wanted <= 0) goto usage;
    prefix_len = strlen(prefix);
    last = calloc((size_t)topics, sizeof *last);
    for (int t = 0; t < topics; t++) last[t] = -1;
    char filter[256];
    snprintf(filter, sizeof filter, "%s/#", prefix);

    mosquitto_lib_init();
    struct mosquitto *mosq = mosquitto_new(NULL, true, NULL);
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_subscribe_callback_set(mosq, on_subscribe);
    mosquitto_message_callback_set(mosq, on_message);
    if (mosquitto_connect(mosq, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "cannot connect to 127.0.0.1:%d\n", port);
        return 1;
    }
    mosquitto_subscribe(mosq, NULL, filter, 0);
    double deadline = now_s() + timeout;
    while (received < wanted && now_s() < deadline) {
        if (mosquitto_loop(mosq, 100, 1) != MOSQ_ERR_SUCCESS) break;
    }
    int wrong = 0;
    for (int t = 0; t < topics; t++) {
        if (last[t] != (t + rounds + base) % 65536) wrong++;
    }
    double seconds = done_at > first_at ? done_at - first_at : 0;
    printf("RESULT messages=%ld seconds=%.3f rate=%.0f wrong=%d\n", received, seconds,
           seconds > 0 ? received / seconds : 0, wrong);
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    return received == wanted ? 0 : 1;
usage:
    fprintf(stderr, "usage: mqtt_count -p PORT -n TOPICS -c COUNT [-R ROUNDS] [-b BASE] [-t PREFIX] [-T TIMEOUT]\n");
    return 2;
}
