/*
 * dispatch_main_shim.c - for profiling only: valgrind 3.19 ("the 'impossible' happened", SIGSEGV
 * in the tool) cannot follow a Swift program with an async main, whose main thread ends in
 * dispatch_main() -> pthread_exit while the other threads go on. Preloaded (LD_PRELOAD), this
 * dispatch_main() keeps the main thread and drains the main queue itself, as CoreFoundation's
 * run loop does on Linux. Nothing else changes.
 *
 * Build: gcc -O2 -shared -fPIC -o dispatch_main_shim.so dispatch_main_shim.c \
 *            -L$SWIFT_LIB -ldispatch -Wl,-rpath,$SWIFT_LIB
 */
#include <poll.h>

extern int _dispatch_get_main_queue_handle_4CF(void);
extern void _dispatch_main_queue_callback_4CF(void *);

void dispatch_main(void) {
    int fd = _dispatch_get_main_queue_handle_4CF();
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, 100);
        _dispatch_main_queue_callback_4CF(0);
    }
}
