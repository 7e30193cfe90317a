// fuzz/cache_fixture.h: the disk cache that fuzz_cache.cc opens and make_seeds.cc builds: its
// options, fingerprint and the images it holds (sample i's pixels are a fixed pattern, so the
// fuzz target knows what a hit must return).
#pragma once

#include <cstdint>
#include <string>

#include "flowfeed/cache.h"
#include "flowfeed/image.h"

namespace flowfeed::fuzz {

inline constexpr int64_t kCacheSamples = 6;

inline CacheFingerprint CacheFixtureFingerprint() {
  CacheFingerprint fp;
  fp.parts = {{"format", "2"}, {"listing", "6 files, 4096 bytes"}, {"stages", "decode(color=rgb)"}};
  return fp;
}

inline CacheOptions CacheFixtureOptions(const std::string& path) {
  CacheOptions o;
  o.mode = CacheMode::kDisk;  // no memory budget: every sample goes to the files
  o.path = path;
  o.commit_seconds = 1000;    // commits come from Flush() only
  return o;
}

// Sample i: (2 + i) x (3 + i % 4) pixels, 1 or 3 channels; sample 5 is float32.
inline Image CacheFixtureImage(int64_t i) {
  const DType dtype = i == 5 ? DType::kFloat32 : DType::kUInt8;
  Image img = Image::Allocate(int(2 + i), int(3 + i % 4), i % 2 ? 3 : 1, dtype);
  for (size_t k = 0; k < img.size_bytes(); ++k) img.data()[k] = uint8_t(i * 37 + k * 11 + 5);
  return img;
}

}  // namespace flowfeed::fuzz
