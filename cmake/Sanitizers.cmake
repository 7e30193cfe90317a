# Sanitizer builds: -DFLOWFEED_SANITIZE=address,undefined or -DFLOWFEED_SANITIZE=thread.
#
# Included from the top-level CMakeLists.txt before any target is defined, so the flags reach
# every target the project builds (engine, trainer, CLI, plugins, test plugins, tests, bench
# tools, fuzzers) through add_compile_options / add_link_options, with no per-target code.
# Third-party libraries (TBB, OpenCV, LibTorch, libjpeg-turbo) come from Debian and are not
# instrumented; tools/sanitizers/ holds the suppressions for what they do, each with its reason,
# and tools/run.sh (modes asan, tsan) and CMakePresets.json set the runtime options.
#
#   ""                    (default) no sanitizer
#   "address,undefined"   ASan + UBSan; UBSan findings abort (vptr through halt_on_error, below)
#   "thread"              TSan
set(FLOWFEED_SANITIZE "" CACHE STRING
    "Sanitizers for every target: empty (none), address,undefined or thread")
set_property(CACHE FLOWFEED_SANITIZE PROPERTY STRINGS "" "address,undefined" "thread")

if(FLOWFEED_SANITIZE STREQUAL "")
  return()
elseif(FLOWFEED_SANITIZE STREQUAL "address,undefined")
  # Every UBSan check aborts, except vptr: oneTBB's own flow-graph header trips it on every task
  # (tools/sanitizers/ubsan.supp says why), and the UBSan runtime honours a suppression only in a
  # recoverable check. With UBSAN_OPTIONS=halt_on_error=1 (tools/run.sh, CMakePresets.json) an
  # unsuppressed vptr finding still stops the test that hit it.
  set(_flowfeed_sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined
                               -fsanitize-recover=vptr)
elseif(FLOWFEED_SANITIZE STREQUAL "thread")
  set(_flowfeed_sanitize_flags -fsanitize=thread)
else()
  message(FATAL_ERROR "FLOWFEED_SANITIZE='${FLOWFEED_SANITIZE}' is not supported: use "
                      "'address,undefined', 'thread' or leave it empty")
endif()

add_compile_options(${_flowfeed_sanitize_flags} -fno-omit-frame-pointer -g)
add_link_options(${_flowfeed_sanitize_flags})
message(STATUS "flowfeed: sanitizers ${FLOWFEED_SANITIZE}")
