// The target's only content is its header: LLVMFuzzerRunDriver is libFuzzer's, linked by
// -sanitize=fuzzer. SwiftPM needs a source file to make a C target.
#include "CFuzzerDriver.h"
