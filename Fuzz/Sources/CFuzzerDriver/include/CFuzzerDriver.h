#ifndef C_FUZZER_DRIVER_H
#define C_FUZZER_DRIVER_H

#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver, for programs that have a main of their own (libFuzzer 11 and later).
// SwiftPM renames an executable's entry point and points `main` at it, so a fuzzer cannot use
// libFuzzer's main: its @main calls this instead.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
