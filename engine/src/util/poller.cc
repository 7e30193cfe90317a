// util/poller.cc: see util/poller.h.
#include "flowfeed/util/poller.h"

#include <utility>

namespace flowfeed {

Poller::Poller(std::chrono::milliseconds period, std::function<bool()> tick)
    : period_(period), tick_(std::move(tick)), thread_([this] { Loop(); }) {}

Poller::~Poller() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Poller::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!done_) {
    cv_.wait_for(lock, period_);
    // Ticks once more after the wake-up by destruction: a stop that came in just before the
    // end is still acted on, as it was before the two watchers shared this.
    if (!tick_()) return;
  }
}

}  // namespace flowfeed
