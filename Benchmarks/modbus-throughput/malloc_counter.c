/*
 * malloc_counter.c - counts a process's heap allocations, for "allocations per request".
 *
 * Preloaded into a server (LD_PRELOAD=malloc_counter.so), it counts every call of malloc,
 * calloc, realloc, memalign, aligned_alloc and posix_memalign (Swift's allocations all end up
 * in malloc) and, on SIGUSR1, writes "allocs N" (the count so far) to standard error. run.sh
 * reads the count around two loads of different lengths on the same connections count: the
 * difference in allocations over the difference in requests is the cost of one request, with
 * start-up and per-connection allocations cancelled out.
 *
 * glibc only (it forwards to __libc_malloc and friends).
 *
 * Build: gcc -O2 -Wall -Wextra -shared -fPIC -o malloc_counter.so malloc_counter.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *pointer);

static unsigned long long allocations;

static inline void count_one(void)
{
    __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED);
}

void *malloc(size_t size)
{
    count_one();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size)
{
    count_one();
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size)
{
    count_one();
    return __libc_realloc(pointer, size);
}

void *memalign(size_t alignment, size_t size)
{
    count_one();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    count_one();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size)
{
    count_one();
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL)
        return ENOMEM;
    *result = pointer;
    return 0;
}

void free(void *pointer)
{
    __libc_free(pointer);
}

/* Async-signal-safe: formats the number by hand and uses write(2). */
static void report(int sig)
{
    (void)sig;
    int saved_errno = errno;
    char text[32];
    size_t at = sizeof text;
    text[--at] = '\n';
    unsigned long long value = __atomic_load_n(&allocations, __ATOMIC_RELAXED);
    do {
        text[--at] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    static const char label[] = "allocs ";
    at -= sizeof label - 1;
    memcpy(text + at, label, sizeof label - 1);
    ssize_t written = write(STDERR_FILENO, text + at, sizeof text - at);
    (void)written;
    errno = saved_errno;
}

__attribute__((constructor)) static void install(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = report;
    action.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &action, NULL);
}
