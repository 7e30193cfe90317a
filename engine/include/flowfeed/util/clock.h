// flowfeed/util/clock.h: the monotonic clock every timing in flowfeed is taken from.
// Part of flowfeed/util/ (see flowfeed/util/file.h: shared helpers, not the engine's API).
//
// Thread-safety: all functions read the OS clocks only and are safe from any thread.
#pragma once

#include <sys/resource.h>

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

// Seconds since the Unix epoch on the wall clock, for records read beside other tools' (TensorBoard's
// wall_time); never for durations (the wall clock can jump).
inline double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// CPU time of the whole process, every thread, user and system: what an epoch cost the machine
// (the consumer's thread included, as a peer's in-process training loop is in its own figure).
// 0 when the OS does not say.
inline uint64_t ProcessCpuNs() {
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  auto ns = [](const timeval& t) {
    return uint64_t(t.tv_sec) * 1000000000u + uint64_t(t.tv_usec) * 1000u;
  };
  return ns(ru.ru_utime) + ns(ru.ru_stime);
}

}  // namespace flowfeed
