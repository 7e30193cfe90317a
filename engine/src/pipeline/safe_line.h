// pipeline/safe_line.h (internal): a line of text built in a fixed buffer and written with
// write(2), the only output a fatal-signal handler may make (no malloc, no stdio, no locks).
// Lines longer than the buffer are cut. Not thread-safe: one per writer, on its stack.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace flowfeed {

class SafeLine {
 public:
  SafeLine& operator<<(const char* s) {
    while (*s && n_ < sizeof buf_ - 1) buf_[n_++] = *s++;
    return *this;
  }
  SafeLine& operator<<(int64_t v) {
    char digits[24];
    int k = 0;
    const bool negative = v < 0;
    uint64_t u = negative ? uint64_t(0) - uint64_t(v) : uint64_t(v);
    do {
      digits[k++] = char('0' + u % 10);
      u /= 10;
    } while (u);
    if (negative) *this << "-";
    while (k && n_ < sizeof buf_ - 1) buf_[n_++] = digits[--k];
    return *this;
  }
  void WriteTo(int fd) {
    buf_[n_++] = '\n';
    for (size_t done = 0; done < n_;) {
      ssize_t w = ::write(fd, buf_ + done, n_ - done);
      if (w <= 0) return;
      done += size_t(w);
    }
  }

 private:
  char buf_[1024];
  size_t n_ = 0;
};

}  // namespace flowfeed
