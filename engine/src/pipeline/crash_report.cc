// pipeline/crash_report.cc: the fatal-signal and exit() handlers of flowfeed/crash_report.h,
// reading the pipeline threads' activity records (activity.h). Everything the handlers call is
// async-signal-safe: sigaction, raise, nanosleep, write(2) through SafeLine, atomics, _exit.
#include "flowfeed/crash_report.h"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

#include "pipeline/activity.h"
#include "pipeline/safe_line.h"

namespace flowfeed {
namespace {

constexpr int kFatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
constexpr int kCount = int(sizeof kFatal / sizeof kFatal[0]);

// Set once under g_install_mu before the handlers go in, constant afterwards.
struct sigaction g_previous[kCount];
bool g_chain = true;
std::mutex g_install_mu;
bool g_installed = false;

// 0: nobody is reporting; 1: a thread is writing its lines; 2: written.
std::atomic<int> g_reporting{0};

const char* SignalName(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "a fatal signal";
  }
}

void RestoreAction(int sig) {
  for (int k = 0; k < kCount; ++k) {
    if (kFatal[k] != sig) continue;
    if (g_chain) {
      ::sigaction(sig, &g_previous[k], nullptr);
    } else {
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      sigemptyset(&dfl.sa_mask);
      ::sigaction(sig, &dfl, nullptr);
    }
  }
}

extern "C" void OnFatalSignal(int sig, siginfo_t*, void*) {
  int idle = 0;
  if (g_reporting.compare_exchange_strong(idle, 1)) {
    const int tid = CurrentTid();
    bool in_step = false;
    const bool pipeline_thread = HoldsRecord(tid, &in_step);
    SafeLine head;
    head << "flowfeed: fatal signal " << SignalName(sig) << " in thread " << int64_t(tid)
         << (pipeline_thread ? " (a pipeline thread)" : " (not a pipeline thread)")
         << "; what each pipeline thread was doing:";
    head.WriteTo(STDERR_FILENO);
    char note[32] = "got ";
    const char* name = SignalName(sig);
    size_t n = 4;
    while (*name && n < sizeof note - 1) note[n++] = *name++;
    note[n] = 0;
    WriteActivityLines(STDERR_FILENO, tid, note);
    g_reporting.store(2);
  } else {
    // Another thread crashed too and is writing: let it finish (2 s at most) before this
    // thread's signal ends the process.
    for (int i = 0; i < 200 && g_reporting.load() == 1; ++i) {
      struct timespec ten_ms = {0, 10 * 1000 * 1000};
      ::nanosleep(&ten_ms, nullptr);
    }
  }
  // Blocked while this handler runs: delivered to the restored action when it returns (a
  // hardware fault would also recur at the faulting instruction).
  RestoreAction(sig);
  ::raise(sig);
}

// A pipeline thread left a step by exit() (activity.h's hook, on that thread, before exit()
// runs anything else): an error, not the run's end.
void OnExitInStep(int tid) {
  int idle = 0;
  if (!g_reporting.compare_exchange_strong(idle, 1)) return;  // a crash report is under way
  SafeLine head;
  head << "flowfeed: error: exit() was called inside a stage (thread " << int64_t(tid)
       << ") while the pipeline ran; a stage must return a Status, not end the process. What "
          "each pipeline thread was doing:";
  head.WriteTo(STDERR_FILENO);
  WriteActivityLines(STDERR_FILENO, tid, "called exit()");
  SafeLine tail;
  tail << "flowfeed: the run failed (exit status " << int64_t(kExitCalledFromStage) << ")";
  tail.WriteTo(STDERR_FILENO);
  ::_exit(kExitCalledFromStage);
}

}  // namespace

Status InstallCrashReport(const CrashReportOptions& options) {
  std::lock_guard<std::mutex> lock(g_install_mu);
  if (g_installed) return Status::Ok();
  g_chain = options.chain;
  struct sigaction sa {};
  sa.sa_sigaction = OnFatalSignal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : kFatal) sigaddset(&sa.sa_mask, sig);
  GiveWorkersSignalStacks();
  for (int k = 0; k < kCount; ++k) {
    if (::sigaction(kFatal[k], &sa, &g_previous[k]) != 0) {
      for (int j = 0; j < k; ++j) ::sigaction(kFatal[j], &g_previous[j], nullptr);
      return Status::Internal(std::string("crash report: cannot install the handler for ") +
                              SignalName(kFatal[k]));
    }
  }
  if (options.catch_exit) SetLeftInStepHook(OnExitInStep);
  g_installed = true;
  return Status::Ok();
}

int WritePipelineActivity(int fd) { return WriteActivityLines(fd, 0, ""); }

}  // namespace flowfeed
