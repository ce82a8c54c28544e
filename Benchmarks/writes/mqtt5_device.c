/* A minimal MQTT 5 device for the write benchmarks: it subscribes to bench/cmd/+ and answers
 * every command that carries a Response Topic at once, on that topic, with the command's
 * Correlation Data and an empty payload (a positive acknowledgement for the bridge's `mqtt5`
 * ack mode, docs/design.md §4). Commands without a Response Topic are counted and ignored.
 *
 *   mqtt5_device -p BROKER_PORT [-q QOS]
 *
 * Prints READY on stderr once subscribed; on SIGTERM/SIGINT prints "answered=N ignored=N" on
 * stdout and exits. One thread, libmosquitto's loop, TCP_NODELAY. Loopback only.
 *
 * Build: gcc -O2 -Wall -Wextra -o mqtt5_device mqtt5_device.c -lmosquitto */
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested = 0;
static long answered = 0, ignored = 0;
static int reply_qos = 1;

static void on_signal(int signal_number) {
    (void)signal_number;
    stop_requested = 1;
}

static void on_subscribe(struct mosquitto *mosq, void *user, int mid, int count, const int *granted) {
    (void)mosq; (void)user; (void)mid;
    if (count < 1 || granted[0] > 2) {
        fprintf(stderr, "mqtt5_device: subscription refused\n");
        exit(1);
    }
    fprintf(stderr, "READY\n");
}

static void on_message(struct mosquitto *mosq, void *user, const struct mosquitto_message *message,
                       const mosquitto_property *properties) {
    (void)user;
    char *response_topic = NULL;
    void *correlation = NULL;
    uint16_t correlation_length = 0;
    mosquitto_property_read_string(properties, MQTT_PROP_RESPONSE_TOPIC, &response_topic, false);
    mosquitto_property_read_binary(properties, MQTT_PROP_CORRELATION_DATA, &correlation, &correlation_length, false);
    (void)message;
    if (response_topic == NULL) {
        ignored++;
        free(correlation);
        return;
    }
    mosquitto_property *reply = NULL;
    if (correlation != NULL) mosquitto_property_add_binary(&reply, MQTT_PROP_CORRELATION_DATA, correlation, correlation_length);
    if (mosquitto_publish_v5(mosq, NULL, response_topic, 0, NULL, reply_qos, false, reply) == MOSQ_ERR_SUCCESS) answered++;
    mosquitto_property_free_all(&reply);
    free(response_topic);
    free(correlation);
}

static void on_connect(struct mosquitto *mosq, void *user, int rc, int flags, const mosquitto_property *properties) {
    (void)user; (void)flags; (void)properties;
    if (rc != 0) {
        fprintf(stderr, "mqtt5_device: connection refused (%d)\n", rc);
        exit(1);
    }
    mosquitto_subscribe_v5(mosq, NULL, "bench/cmd/+", 1, 0, NULL);
}

int main(int argc, char **argv) {
    int port = 0, option;
    while ((option = getopt(argc, argv, "p:q:")) != -1) {
        switch (option) {
        case 'p': port = atoi(optarg); break;
        case 'q': reply_qos = atoi(optarg); break;
        default: fprintf(stderr, "usage: mqtt5_device -p BROKER_PORT [-q QOS]\n"); return 2;
        }
    }
    if (port <= 0 || port > 65535 || reply_qos < 0 || reply_qos > 2) {
        fprintf(stderr, "usage: mqtt5_device -p BROKER_PORT [-q QOS]\n");
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    mosquitto_lib_init();
    struct mosquitto *mosq = mosquitto_new("bench-device", true, NULL);
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_v5_callback_set(mosq, on_connect);
    mosquitto_subscribe_callback_set(mosq, on_subscribe);
    mosquitto_message_v5_callback_set(mosq, on_message);
    if (mosquitto_connect_bind_v5(mosq, "127.0.0.1", port, 60, NULL, NULL) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "mqtt5_device: cannot connect to 127.0.0.1:%d\n", port);
        return 1;
    }
    while (!stop_requested) {
        int rc = mosquitto_loop(mosq, 100, 1);
        if (rc != MOSQ_ERR_SUCCESS && !stop_requested) {
            fprintf(stderr, "mqtt5_device: connection lost (%s)\n", mosquitto_strerror(rc));
            return 1;
        }
    }
    printf("answered=%ld ignored=%ld\n", answered, ignored);
    mosquitto_disconnect(mosq);
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    return 0;
}
