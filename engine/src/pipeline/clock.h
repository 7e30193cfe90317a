// pipeline/clock.h (internal): the pipeline's clocks. Any thread; no state.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdint>

namespace flowfeed {

// Monotonic nanoseconds: every span and stage time the pipeline records.
inline uint64_t NowNs() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
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
