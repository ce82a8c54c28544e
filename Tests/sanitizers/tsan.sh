#!/usr/bin/env bash
# Runs the test suite under the thread sanitizer, with its own build in .build-tsan.
#
#   Tests/sanitizers/tsan.sh                      every test target
#   Tests/sanitizers/tsan.sh ModbusTCPServerTests BridgeEndToEndTests/ReloadEndToEndTests
#
# The end-to-end tests start the bridge program from the same build, so it runs under TSan too;
# every process's reports are collected and any report fails the run. docs/testing.md says what
# CI runs and how long it takes.
sanitizer=thread
scratch=.build-tsan
runtime_symbol=__tsan_init
options_variable=TSAN_OPTIONS
# halt_on_error=0: report every race of a run, not just the first; second_deadlock_stack for
# lock-order reports that name both acquisitions.
options="halt_on_error=0:second_deadlock_stack=1:history_size=4"
[ "$#" -gt 0 ] || set -- ModbusCoreTests ModbusTCPServerTests MosquittoTests MQTTModbusBridgeTests BridgeEndToEndTests
source "$(dirname "$0")/common.sh"
