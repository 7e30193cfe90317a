// flowfeed/crash_report.h: what the pipeline was doing when the process died.
//
// A stage that crashes (a plugin dereferencing a null pointer, a stack overflow, abort()) takes
// the whole process down, and with it every trace of which stage, which plugin and which sample
// did it. InstallCrashReport() installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT
// that write to stderr, before the process dies:
//
//   flowfeed: fatal signal SIGSEGV in thread 4711 (a pipeline thread); what each pipeline thread was doing:
//   flowfeed:   thread 4711 (got SIGSEGV): stage 'crash' (type test_crash, plugin /p/crash.so) on sample 7 (/d/cat/7.jpg), epoch 1
//   flowfeed:   thread 4712: stage 'decode' (type decode) on sample 8 (/d/dog/8.jpg), epoch 1
//   flowfeed:   thread 4713: idle (between samples)
//
// then restore the action that was there before (or the default one) and raise the signal
// again, so the process still ends by that signal (exit status 139 for SIGSEGV in a shell) and
// a core dump or another handler (a sanitizer, Python's faulthandler) still sees it. The lines
// are made with write(2) alone, from fixed records each pipeline thread keeps of its current
// step and sample (no allocation, no lock, no stdio in the handler). Each pipeline thread also
// gets an alternate signal stack, so a stack overflow in a stage is reported too.
//
// It also turns exit() called from inside a stage into an error: the same lines, the culprit's
// marked "called exit()", and the process ends with kExitCalledFromStage (70) instead of the
// status the stage passed, which would have made a broken run look finished. It is caught on
// the stage's thread before exit() runs anything else (glibc runs the calling thread's
// thread_local destructors first), so no atexit handler or static destructor of the program runs.
// exit() from the program's own threads, or from a thread a plugin started itself, is left
// alone; _exit() and quick_exit() are not caught.
//
// Thread-safety: InstallCrashReport may be called from any thread, any number of times; the
// first successful call installs, later ones change nothing. Handlers stay for the process's
// life. Failure: an InternalError naming the signal whose handler could not be installed.
#pragma once

#include "flowfeed/status.h"

namespace flowfeed {

// The exit status of a run in which a stage called exit() (70 is EX_SOFTWARE, sysexits.h).
constexpr int kExitCalledFromStage = 70;

struct CrashReportOptions {
  // After the lines: true restores the handler that was installed before (a sanitizer's,
  // Python's faulthandler) and raises again, so it reports too; false restores the default
  // action, so the process always ends by the signal itself (what the flowfeed CLI does).
  bool chain = true;
  // Whether exit() from inside a stage is turned into an error (kExitCalledFromStage).
  bool catch_exit = true;
};

Status InstallCrashReport(const CrashReportOptions& options = {});

// Writes the lines above (without the first) to `fd` now, marking no thread: what each pipeline
// thread is doing. Async-signal-safe, for a handler of one's own. Returns the number of threads.
int WritePipelineActivity(int fd);

}  // namespace flowfeed
