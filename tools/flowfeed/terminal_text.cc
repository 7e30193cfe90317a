// tools/flowfeed/terminal_text.cc: see terminal_text.h.
#include "terminal_text.h"

#include <cstdlib>
#include <iostream>
#include <mutex>
#include <streambuf>
#include <string>

#include "flowfeed/util/strings.h"

namespace flowfeed::cli {

namespace {

// Collects what is written and passes it on escaped at each newline and flush (so std::cout
// stays line-buffered). std::cerr flushes after every <<, so a UTF-8 character could arrive in
// two pieces: an unfinished one at the end is held back until the rest comes (or the process
// ends). A mutex, since a stream may be written from more than one thread.
class EscapingBuf final : public std::streambuf {
 public:
  explicit EscapingBuf(std::streambuf* out) : out_(out) {}

  void FlushAll() {
    std::lock_guard<std::mutex> lock(mu_);
    Emit(pending_.size());
    out_->pubsync();
  }

 protected:
  int_type overflow(int_type c) override {
    if (c == traits_type::eof()) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    xsputn(&ch, 1);
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.append(s, size_t(n));
    const size_t line_end = pending_.rfind('\n');
    if (line_end != std::string::npos) Emit(line_end + 1);
    return n;
  }
  int sync() override {
    std::lock_guard<std::mutex> lock(mu_);
    Emit(CompletePrefix());
    return out_->pubsync();
  }

 private:
  // The length of pending_ without an unfinished UTF-8 sequence at its end.
  size_t CompletePrefix() const {
    const size_t size = pending_.size();
    for (size_t back = 1; back <= 3 && back <= size; ++back) {
      const unsigned char c = static_cast<unsigned char>(pending_[size - back]);
      if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
      const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 1;
      return c >= 0xC2 && c <= 0xF4 && need > back ? size - back : size;
    }
    return size;
  }

  void Emit(size_t n) {
    if (n == 0) return;
    const std::string text = EscapeForTerminal(std::string_view(pending_).substr(0, n));
    out_->sputn(text.data(), std::streamsize(text.size()));
    pending_.erase(0, n);
  }

  std::streambuf* const out_;
  std::mutex mu_;
  std::string pending_;  // guarded by mu_
};

EscapingBuf* out_buf = nullptr;
EscapingBuf* err_buf = nullptr;

void FlushAtExit() {
  if (out_buf) out_buf->FlushAll();
  if (err_buf) err_buf->FlushAll();
}

}  // namespace

void EscapeControlBytesInOutput() {
  if (out_buf) return;
  // Never freed: the streams use them until the process ends.
  out_buf = new EscapingBuf(std::cout.rdbuf());
  err_buf = new EscapingBuf(std::cerr.rdbuf());
  std::cout.rdbuf(out_buf);
  std::cerr.rdbuf(err_buf);
  std::atexit(FlushAtExit);
}

}  // namespace flowfeed::cli
