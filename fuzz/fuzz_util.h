// fuzz/fuzz_util.h: helpers shared by the fuzz targets (not part of the engine).
//
// Every target defines LLVMFuzzerTestOneInput. It is linked either with libFuzzer
// (-DFLOWFEED_FUZZ=ON, clang) or with replay_main.cc, which runs it over the checked-in corpus
// as a ctest test. A target that finds a broken invariant calls FUZZ_CHECK, which prints what
// was wrong and aborts, so that both drivers report it as a crash.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "flowfeed/source.h"

#define FUZZ_CHECK(cond, ...)                                                        \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                           \
      std::fprintf(stderr, "  " __VA_ARGS__);                                        \
      std::fprintf(stderr, "\n");                                                    \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

namespace flowfeed::fuzz {

// Separates the files packed into one fuzz input (idx: images + labels; tar: shards; cache:
// meta + index + data). Listed in the dictionaries so that the fuzzer can add and move it.
inline constexpr std::string_view kSeparator = "@@FFSPLIT@@";

// Splits [data, data+size) at every kSeparator; always at least one part.
inline std::vector<std::string_view> SplitParts(const uint8_t* data, size_t size) {
  std::vector<std::string_view> parts;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (;;) {
    const size_t at = rest.find(kSeparator);
    if (at == std::string_view::npos) break;
    parts.push_back(rest.substr(0, at));
    rest.remove_prefix(at + kSeparator.size());
  }
  parts.push_back(rest);
  return parts;
}

// A folder of this process's own (created on first use, removed at exit), for the files that
// the readers under test open. On /dev/shm when it is there: the cache target fsyncs, and
// tmpfs makes that free. FLOWFEED_FUZZ_TMPDIR overrides.
inline const std::string& ProcessTempDir() {
  static const std::string dir = [] {
    std::string base;
    if (const char* env = std::getenv("FLOWFEED_FUZZ_TMPDIR"); env && *env) {
      base = env;
    } else if (::access("/dev/shm", W_OK) == 0) {
      base = "/dev/shm";
    } else if (const char* tmp = std::getenv("TMPDIR"); tmp && *tmp) {
      base = tmp;
    } else {
      base = "/tmp";
    }
    std::string templ = base + "/flowfeed-fuzz-XXXXXX";
    if (!::mkdtemp(templ.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    static std::string keep;
    keep = templ;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return templ;
  }();
  return dir;
}

// Replaces `path` with exactly `bytes` (creating parent folders).
inline void WriteFile(const std::string& path, std::string_view bytes) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(path.c_str());
    std::abort();
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t r = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (r <= 0) {
      std::perror(path.c_str());
      std::abort();
    }
    done += size_t(r);
  }
  ::close(fd);
}

inline void RemoveFile(const std::string& path) { ::unlink(path.c_str()); }

// FLOWFEED_FUZZ_VERBOSE=1: the targets print what each input did (for checking seeds).
inline bool Verbose() {
  static const bool on = [] {
    const char* v = std::getenv("FLOWFEED_FUZZ_VERBOSE");
    return v && *v && *v != '0';
  }();
  return on;
}

#define FUZZ_LOG(...)                                          \
  do {                                                         \
    if (::flowfeed::fuzz::Verbose()) {                         \
      std::fprintf(stderr, "  " __VA_ARGS__);                  \
      std::fprintf(stderr, "\n");                              \
    }                                                          \
  } while (0)

// FNV-1a: a cheap, stable function of the input for choices the input does not spell out.
inline uint64_t Hash(const uint8_t* data, size_t size, uint64_t h = 1469598103934665603ull) {
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 1099511628211ull;
  return h;
}

// What every source target checks of what it opened: an error carries a message; a source has
// samples, keeps to `limit` (0: none) and describes itself. The source, or null after an error.
inline const Source* CheckOpened(const Result<std::unique_ptr<Source>>& opened, int64_t limit) {
  FUZZ_LOG("%s", opened.ok() ? opened.value()->Describe().c_str()
                             : opened.status().ToString().c_str());
  if (!opened.ok()) {
    FUZZ_CHECK(!opened.status().message().empty(), "an error without a message");
    return nullptr;
  }
  const Source& source = *opened.value();
  FUZZ_CHECK(source.size() > 0, "opened with no samples");
  if (limit > 0) FUZZ_CHECK(source.size() <= limit, "limit %lld ignored", (long long)limit);
  (void)source.Describe();
  (void)source.Files();
  return &source;
}

}  // namespace flowfeed::fuzz
