/* Latency helpers the write benchmark's clients share (modbus_writer.c, mqtt5_requester.c):
 * a monotonic clock in microseconds, and the percentiles of the samples of several threads. */
#ifndef BENCHMARKS_WRITES_LATENCIES_H
#define BENCHMARKS_WRITES_LATENCIES_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct percentiles {
    double p50, p99, max;
};

/* The percentiles of `counts[i]` samples at `samples[i]`, for i < `sources`, all together;
 * zeros without samples. */
static struct percentiles percentiles_of(double *const *samples, const size_t *counts, int sources) {
    size_t total = 0;
    for (int i = 0; i < sources; i++) total += counts[i];
    struct percentiles result = {0, 0, 0};
    if (total == 0) return result;
    double *merged = malloc(total * sizeof *merged);
    if (merged == NULL) return result;
    size_t at = 0;
    for (int i = 0; i < sources; i++) {
        memcpy(merged + at, samples[i], counts[i] * sizeof *merged);
        at += counts[i];
    }
    qsort(merged, total, sizeof *merged, compare_doubles);
    size_t rank99 = (size_t)(total * 0.99);
    result.p50 = merged[total / 2];
    result.p99 = merged[rank99 < total ? rank99 : total - 1];
    result.max = merged[total - 1];
    free(merged);
    return result;
}

#endif
