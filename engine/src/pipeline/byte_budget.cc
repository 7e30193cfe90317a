// pipeline/byte_budget.cc: the in-flight byte budget (byte_budget.h).
#include "pipeline/byte_budget.h"

#include <algorithm>
#include <chrono>

namespace flowfeed {

int64_t ByteBudget::Admit() {
  std::unique_lock<std::mutex> lock(mu_);
  auto must_wait = [this] {
    if (cancelled_ || held_ == 0) return false;
    return estimate_ < 0 || held_ + estimate_ > limit_;
  };
  if (must_wait() && waiting_ < max_waiting_) {
    ++waiting_;
    const auto stall = std::chrono::duration<double>(kStallSeconds);
    while (must_wait()) {
      const uint64_t seen = progress_.load(std::memory_order_relaxed);
      released_.wait_for(lock, stall);
      // Nothing moved for a while: go ahead rather than risk waiting forever.
      if (progress_.load(std::memory_order_relaxed) == seen && must_wait()) break;
    }
    --waiting_;
  }
  // At least a byte: until its first step, a sample must still count as holding something.
  const int64_t charge = std::max<int64_t>(estimate_, 1);
  held_ += charge;
  peak_ = std::max(peak_, held_);
  return charge;
}

void ByteBudget::Grow(int64_t bytes, int64_t* charged, int64_t* peak) {
  progress_.fetch_add(1, std::memory_order_relaxed);
  *peak = std::max(*peak, bytes);
  if (bytes <= *charged) return;
  std::lock_guard<std::mutex> lock(mu_);
  held_ += bytes - *charged;
  *charged = bytes;
  peak_ = std::max(peak_, held_);
}

void ByteBudget::Release(int64_t charged, int64_t peak) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    held_ -= charged;
    estimate_ = peak;
    progress_.fetch_add(1, std::memory_order_relaxed);
  }
  released_.notify_all();
}

void ByteBudget::Cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
  }
  released_.notify_all();
}

int64_t ByteBudget::peak() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_;
}

}  // namespace flowfeed
