// pipeline/cache_choice.cc: the cost model of cache_choice.h.
#include "pipeline/cache_choice.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "flowfeed/util/text_format.h"

namespace flowfeed {
namespace {

std::string Ms(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, seconds < 0.01 ? "%.3f ms" : "%.2f ms", seconds * 1e3);
  return buf;
}

std::string Fixed1(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string Sec(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", seconds);
  return buf;
}

}  // namespace

CacheChoice ChooseCacheStore(const CacheCosts& c, int64_t samples, int epochs,
                             int64_t budget_bytes, bool disk, const std::string& pixels_stage) {
  CacheChoice out;
  const double n = double(std::max<int64_t>(samples, 0));
  const double e = double(std::max(epochs, 1));
  const double rate = c.fresh_bytes_per_second > 0 ? c.fresh_bytes_per_second : 0.5e9;
  const double fill_files = c.file_bytes / rate;
  const double fill_pixels = c.pixel_bytes / rate;
  // The share of the dataset the memory budget holds; with a disk store, all of it.
  auto held = [&](double bytes) {
    if (disk || bytes <= 0 || n <= 0) return 1.0;
    return std::min(1.0, double(std::max<int64_t>(budget_bytes, 0)) / (bytes * n));
  };
  // Samples not held are read and recomputed every epoch.
  const double unheld = e * (c.read_seconds + c.rerun_seconds);
  const double hf = held(c.file_bytes), hp = held(c.pixel_bytes);
  out.files_seconds = n * (hf * (fill_files + e * c.rerun_seconds) + (1 - hf) * unheld);
  out.pixels_seconds = n * (hp * (fill_pixels + c.compute_seconds) + (1 - hp) * unheld);
  // Later epochs pixels need to catch up: fill_p + compute = fill_f + (1 + L) * rerun.
  out.payback_epochs =
      c.rerun_seconds > 0
          ? std::max(0.0, (fill_pixels + c.compute_seconds - fill_files) / c.rerun_seconds - 1)
          : std::numeric_limits<double>::infinity();
  // Half the later epochs: the probe's fill rate is a few megabytes' worth, and the bulk of a
  // fill has measured up to 4x slower (cache_choice.h), so pixels must win with room to spare.
  out.keep_pixels = c.probed > 0 && out.pixels_seconds < out.files_seconds &&
                    out.payback_epochs <= (e - 1) / 2;

  const std::string files = "the encoded files (" + text::Bytes(int64_t(c.file_bytes * n)) + ")";
  const std::string pixels = "the output of '" + pixels_stage + "' (" +
                             text::Bytes(int64_t(c.pixel_bytes * n)) + ")";
  if (c.probed == 0) {
    out.reason = "keeping " + files + ": no sample could be measured to weigh " + pixels;
    return out;
  }
  std::string why = "per sample, a file hit reruns '" + pixels_stage + "' for " +
                    Ms(c.rerun_seconds) + " every epoch; keeping its output costs " +
                    Ms(fill_pixels) + " to fill (" + text::Bytes(int64_t(c.pixel_bytes)) +
                    " of fresh memory at " + text::Bytes(int64_t(rate)) + "/s) and " +
                    Ms(c.compute_seconds) + " to compute on the whole image, against " +
                    Ms(fill_files) + " to keep the file; ";
  if (std::isfinite(out.payback_epochs))
    why += "pixels pay back after " + Fixed1(out.payback_epochs) + " later epochs";
  else
    why += "pixels never pay back";
  why += " (this run has " + std::to_string(int(e) - 1) + "; pixels need at most half); over the run: " +
         Sec(out.files_seconds) + " of work for files, " + Sec(out.pixels_seconds) + " for pixels";
  out.reason = "keeping " + (out.keep_pixels ? pixels : files) + ": " + why;
  return out;
}

FreshMemoryProbe::FreshMemoryProbe(size_t capacity) : capacity_(capacity) {
  void* p = ::mmap(nullptr, capacity_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  base_ = p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
}

FreshMemoryProbe::~FreshMemoryProbe() {
  if (base_) ::munmap(base_, capacity_);
}

bool FreshMemoryProbe::Copy(const uint8_t* data, size_t size) {
  if (!base_ || size == 0 || size > capacity_ - used_) return false;
  const auto t0 = std::chrono::steady_clock::now();
  std::memcpy(base_ + used_, data, size);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  used_ += (size + 63) / 64 * 64;
  if (seconds > 0) slowest_ = slowest_ > 0 ? std::min(slowest_, double(size) / seconds)
                                           : double(size) / seconds;
  return true;
}

double FreshMemoryProbe::SlowestBytesPerSecond() const { return slowest_; }

}  // namespace flowfeed
