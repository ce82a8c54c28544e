#!/usr/bin/env bash
# Runs the test suite under the address sanitizer, with its own build in .build-asan.
#
#   Tests/sanitizers/asan.sh                      every test target
#   Tests/sanitizers/asan.sh ModbusCoreTests
#
# As tsan.sh: the end-to-end tests run the bridge program of the same (ASan) build, and every
# process's reports are collected; any report fails the run. See docs/testing.md.
sanitizer=address
scratch=.build-asan
runtime_symbol=__asan_init
options_variable=ASAN_OPTIONS
options="${ASAN_EXTRA_OPTIONS:-detect_leaks=1}:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export LSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
[ "$#" -gt 0 ] || set -- ModbusCoreTests ModbusTCPServerTests MosquittoTests MQTTModbusBridgeTests BridgeEndToEndTests
source "$(dirname "$0")/common.sh"
