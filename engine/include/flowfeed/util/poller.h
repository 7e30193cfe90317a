// flowfeed/util/poller.h: a thread that checks a condition periodically until destroyed.
// Part of flowfeed/util/ (see flowfeed/util/file.h: shared helpers, not the engine's API).
//
// Why a poller and not a wake-up: the flags it watches are set where nothing may block or lock
// (a signal handler) or by code that must not call into the pipeline itself (Trainer::
// RequestStop() from any thread); acting on them -- Pipeline::Cancel() -- has to happen on a
// thread of its own. Both the trainer's stop watcher and the CLI's signal watcher are this.
//
// Thread-safety: `tick` runs on the poller's thread only. Destruction wakes the thread and
// joins it; it waits for a `tick` in progress.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace flowfeed {

class Poller {
 public:
  // Calls `tick` every `period` (the first after one period) until it returns false or the
  // Poller is destroyed. `tick` must not destroy the Poller.
  Poller(std::chrono::milliseconds period, std::function<bool()> tick);
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

 private:
  void Loop();

  const std::chrono::milliseconds period_;
  const std::function<bool()> tick_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace flowfeed
