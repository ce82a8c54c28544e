/* The reference for write-through: raw MQTT 5 request/response between C clients through the
 * broker, the same exchange the bridge makes for an `mqtt5`-acknowledged Modbus write, without
 * the bridge. Each of CLIENTS threads owns one libmosquitto client (MQTT 5, TCP_NODELAY), is
 * subscribed to its own response topic, and in lockstep publishes a QoS 1 request on
 * bench/cmd/rI (Response Topic bench/cmd/rI/response, an 8-byte Correlation Data) and waits
 * for the response carrying the same correlation data (mqtt5_device answers it).
 *
 *   mqtt5_requester -p BROKER_PORT [-c CLIENTS] [-t SECONDS] [-w WARMUP_SECONDS]
 *
 * Output (one line): requests=N errors=N p50_us=X p99_us=X max_us=X rps=X
 * Latency is from the publish call to the response's arrival; warm-up requests are not
 * counted. A response that does not come within 6 s, or a lost connection, is an error and
 * ends that client. Exit status 0 only without errors. Loopback only.
 *
 * Build: gcc -O2 -Wall -Wextra -pthread -o mqtt5_requester mqtt5_requester.c -lmosquitto */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "latencies.h"

#define MAX_CLIENTS 64
#define MAX_SAMPLES (1 << 20)

static int port = 0, clients = 1;
static double seconds = 5, warmup = 1;
static pthread_barrier_t subscribed;

struct client {
    int index;
    uint64_t expected;  /* correlation of the request in flight */
    int answered;       /* its response has come */
    int ready;          /* SUBACK seen */
    long errors;
    size_t count;
    double *latencies;
};

static void on_subscribe(struct mosquitto *mosq, void *user, int mid, int count, const int *granted) {
    (void)mosq; (void)mid;
    struct client *c = user;
    if (count < 1 || granted[0] > 2) c->errors++;
    c->ready = 1;
}

static void on_message(struct mosquitto *mosq, void *user, const struct mosquitto_message *message,
                       const mosquitto_property *properties) {
    (void)mosq; (void)message;
    struct client *c = user;
    void *correlation = NULL;
    uint16_t length = 0;
    mosquitto_property_read_binary(properties, MQTT_PROP_CORRELATION_DATA, &correlation, &length, false);
    uint64_t value = 0;
    if (correlation != NULL && length == sizeof value) memcpy(&value, correlation, sizeof value);
    free(correlation);
    if (value == c->expected) c->answered = 1;
}

static void *run_client(void *argument) {
    struct client *c = argument;
    char id[32], request_topic[64], response_topic[80];
    snprintf(id, sizeof id, "bench-requester-%d", c->index);
    snprintf(request_topic, sizeof request_topic, "bench/cmd/r%d", c->index);
    snprintf(response_topic, sizeof response_topic, "bench/cmd/r%d/response", c->index);
    struct mosquitto *mosq = mosquitto_new(id, true, c);
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_subscribe_callback_set(mosq, on_subscribe);
    mosquitto_message_v5_callback_set(mosq, on_message);
    if (mosquitto_connect_bind_v5(mosq, "127.0.0.1", port, 60, NULL, NULL) != MOSQ_ERR_SUCCESS) {
        c->errors++;
        pthread_barrier_wait(&subscribed);
        return NULL;
    }
    mosquitto_subscribe_v5(mosq, NULL, response_topic, 1, 0, NULL);
    double give_up = now_us() + 6e6;
    while (!c->ready && now_us() < give_up)
        if (mosquitto_loop(mosq, 100, 1) != MOSQ_ERR_SUCCESS) break;
    if (!c->ready) c->errors++;
    pthread_barrier_wait(&subscribed);

    double start = now_us(), measured_from = start + warmup * 1e6, end = measured_from + seconds * 1e6;
    while (c->errors == 0 && now_us() < end && c->count < MAX_SAMPLES) {
        c->expected++;
        c->answered = 0;
        mosquitto_property *properties = NULL;
        mosquitto_property_add_string(&properties, MQTT_PROP_RESPONSE_TOPIC, response_topic);
        mosquitto_property_add_binary(&properties, MQTT_PROP_CORRELATION_DATA, &c->expected, sizeof c->expected);
        double sent = now_us();
        int rc = mosquitto_publish_v5(mosq, NULL, request_topic, 3, "100", 1, false, properties);
        mosquitto_property_free_all(&properties);
        if (rc != MOSQ_ERR_SUCCESS) { c->errors++; break; }
        double deadline = sent + 6e6;
        while (!c->answered && now_us() < deadline)
            if (mosquitto_loop(mosq, 100, 1) != MOSQ_ERR_SUCCESS) break;
        if (!c->answered) { c->errors++; break; }
        double finished = now_us();
        if (sent >= measured_from) c->latencies[c->count++] = finished - sent;
    }
    mosquitto_disconnect(mosq);
    mosquitto_destroy(mosq);
    return NULL;
}

int main(int argc, char **argv) {
    int option;
    while ((option = getopt(argc, argv, "p:c:t:w:")) != -1) {
        switch (option) {
        case 'p': port = atoi(optarg); break;
        case 'c': clients = atoi(optarg); break;
        case 't': seconds = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        default: goto usage;
        }
    }
    if (port <= 0 || port > 65535 || clients < 1 || clients > MAX_CLIENTS || seconds <= 0 || warmup < 0) goto usage;
    mosquitto_lib_init();
    pthread_barrier_init(&subscribed, NULL, (unsigned)clients);
    static struct client all[MAX_CLIENTS];
    pthread_t threads[MAX_CLIENTS];
    for (int i = 0; i < clients; i++) {
        all[i].index = i;
        all[i].latencies = malloc(MAX_SAMPLES * sizeof(double));
        pthread_create(&threads[i], NULL, run_client, &all[i]);
    }
    size_t total = 0;
    long errors = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(threads[i], NULL);
        total += all[i].count;
        errors += all[i].errors;
    }
    double *samples[MAX_CLIENTS];
    size_t counts[MAX_CLIENTS];
    for (int i = 0; i < clients; i++) {
        samples[i] = all[i].latencies;
        counts[i] = all[i].count;
    }
    struct percentiles latency = percentiles_of(samples, counts, clients);
    double p50 = latency.p50, p99 = latency.p99, max = latency.max;
    printf("requests=%zu errors=%ld p50_us=%.1f p99_us=%.1f max_us=%.1f rps=%.0f\n", total, errors, p50, p99, max,
           total / seconds);
    mosquitto_lib_cleanup();
    return errors ? 1 : 0;
usage:
    fprintf(stderr, "usage: mqtt5_requester -p BROKER_PORT [-c CLIENTS 1...%d] [-t SECONDS] [-w WARMUP_SECONDS]\n",
            MAX_CLIENTS);
    return 2;
}
