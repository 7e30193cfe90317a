// util/clock.h (internal): the monotonic clock every timing in flowfeed is taken from.
//
// Thread-safety: all functions read std::chrono::steady_clock only and are safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>

namespace flowfeed {

using SteadyClock = std::chrono::steady_clock;

// Nanoseconds on the monotonic clock (its epoch is arbitrary: use differences only).
inline uint64_t NowNs() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      SteadyClock::now().time_since_epoch())
                      .count());
}

// Seconds from `a` to `b`.
inline double SecondsBetween(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Seconds from `t0` to now.
inline double SecondsSince(SteadyClock::time_point t0) {
  return SecondsBetween(t0, SteadyClock::now());
}

}  // namespace flowfeed
