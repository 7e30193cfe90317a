// signals.cc: StopOnSignals and the exit code of a stopped run (cli.h). The handler runs on
// whichever thread the signal lands on and touches only atomics (and Trainer::RequestStop(),
// one atomic store); the poller's thread calls Pipeline::Cancel().
#include <signal.h>
#include <unistd.h>

#include <atomic>

#include "cli.h"
#if FLOWFEED_WITH_TORCH
#include "flowfeed/trainer.h"
#endif

namespace flowfeed::cli {
namespace {

std::atomic<int> g_signal{0};
#if FLOWFEED_WITH_TORCH
std::atomic<Trainer*> g_stoppable{nullptr};
#endif

extern "C" void OnStopSignal(int sig) {
  g_signal.store(sig);
#if FLOWFEED_WITH_TORCH
  if (Trainer* t = g_stoppable.load()) t->RequestStop();
#endif
  static const char msg[] = "\nflowfeed: stopping (again to abort at once)\n";
  ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
  signal(sig, SIG_DFL);
}

}  // namespace

struct StopOnSignals::Saved {
  struct sigaction old_int {}, old_term {};
};

StopOnSignals::StopOnSignals(Pipeline* cancel, Trainer* trainer) : saved_(new Saved) {
#if FLOWFEED_WITH_TORCH
  g_stoppable.store(trainer);
#else
  (void)trainer;
#endif
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &saved_->old_int);
  sigaction(SIGTERM, &sa, &saved_->old_term);
  if (cancel)
    watcher_ = std::make_unique<Poller>(std::chrono::milliseconds(20), [cancel] {
      if (g_signal.load() == 0) return true;
      cancel->Cancel();
      return false;
    });
}

void StopOnSignals::ForgetTrainer() {
#if FLOWFEED_WITH_TORCH
  g_stoppable.store(nullptr);
#endif
}

StopOnSignals::~StopOnSignals() {
  watcher_.reset();  // before the handlers go: a signal meanwhile is still turned into a stop
  ForgetTrainer();
  sigaction(SIGINT, &saved_->old_int, nullptr);
  sigaction(SIGTERM, &saved_->old_term, nullptr);
}

int StoppedExitCode(const Status& st) {
  return st.code() == StatusCode::kCancelled && g_signal.load() != 0 ? 128 + g_signal.load()
                                                                      : kExitRuntime;
}

}  // namespace flowfeed::cli
