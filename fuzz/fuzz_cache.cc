// fuzz/fuzz_cache.cc: the disk cache's reader (SampleCache::Open on existing files, Recover,
// Lookup) on files made from the input.
//
// Input: one flags byte, then flowfeed-cache.meta, kSeparator, flowfeed-cache.index,
// kSeparator, flowfeed-cache.data (a missing part: no such file). Flags:
//   bit 0: write the fixture's valid meta file instead of the input's meta part
//   bit 1: recompute the index segments' checksums (seeded with the fixture's fingerprint), so
//          that the fuzzer reaches the entries
//   bit 2: also recompute the checksums of the records (and of the index entries naming them),
//          so that a forged record can be served: then only shapes, not pixels, are checked
//   bit 3: after the lookups, insert every missing sample, close, reopen, and expect every
//          sample to hit with the right pixels (a damaged cache is repaired or rebuilt)
//
// Invariants besides "no crash, no sanitizer report": Open succeeds; a hit returns the pixels
// that sample was cached with (never other pixels: checksums cannot be forged without bit 2)
// and the byte count of its shape; stats stay consistent.
#include <xxhash.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "cache_fixture.h"
#include "flowfeed/cache.h"
#include "fuzz_util.h"

namespace flowfeed {
namespace {

constexpr uint32_t kRecordMagic = 0x46464352;  // "FFCR", engine/src/cache/format.h
constexpr uint32_t kIndexMagic = 0x46464349;   // "FFCI"
constexpr size_t kFileHeader = 16, kHeader = 48, kEntry = 40;

// The seed of every checksum: the fingerprint's value (format.h).
uint64_t Seed() { return fuzz::CacheFixtureFingerprint().Value(); }

template <typename T>
T Load(const std::string& s, size_t at) {
  T v;
  std::memcpy(&v, s.data() + at, sizeof v);
  return v;
}
template <typename T>
void Store(std::string* s, size_t at, T v) {
  std::memcpy(s->data() + at, &v, sizeof v);
}

// Calls fn(entry_offset) for every entry of every well-formed segment after the file header
// (left as it is), then rewrites the segment's checksum.
template <typename Fn>
void ForEachSegment(std::string* index, Fn fn) {
  size_t pos = kFileHeader;
  while (pos + 16 <= index->size()) {
    const uint32_t magic = Load<uint32_t>(*index, pos), count = Load<uint32_t>(*index, pos + 4);
    if (magic != kIndexMagic || count > (index->size() - pos - 16) / kEntry) break;
    const size_t body = 8 + size_t(count) * kEntry;
    for (uint32_t k = 0; k < count; ++k) fn(pos + 8 + size_t(k) * kEntry);
    Store<uint64_t>(index, pos + body, XXH3_64bits_withSeed(index->data() + pos, body, Seed()));
    pos += body + 8;
  }
}

// The record checksum as engine/src/cache/format.cc computes it; rewrites it in the header at `at`.
bool FixRecord(std::string* data, uint64_t at, uint64_t* checksum) {
  if (at > data->size() || data->size() - at < kHeader) return false;
  if (Load<uint32_t>(*data, at) != kRecordMagic) return false;
  const uint64_t payload = Load<uint64_t>(*data, at + 32);
  if (payload > data->size() - at - kHeader) return false;
  const uint64_t seed = XXH3_64bits_withSeed(data->data() + at, 40, Seed());
  *checksum = XXH3_64bits_withSeed(data->data() + at + kHeader, payload, seed);
  Store<uint64_t>(data, at + 40, *checksum);
  return true;
}

void Write(const std::string& dir, const char* name, const std::string* bytes) {
  const std::string path = dir + "/" + name;
  if (bytes)
    fuzz::WriteFile(path, *bytes);
  else
    fuzz::RemoveFile(path);
}

bool SameImage(const Image& a, const Image& b) {
  return a.height() == b.height() && a.width() == b.width() && a.channels() == b.channels() &&
         a.dtype() == b.dtype() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

std::unique_ptr<SampleCache> MustOpen(const std::string& dir) {
  Result<std::unique_ptr<SampleCache>> r =
      SampleCache::Open(fuzz::CacheFixtureOptions(dir), fuzz::kCacheSamples,
                        fuzz::CacheFixtureFingerprint());
  FUZZ_CHECK(r.ok(), "Open failed: %s", r.status().ToString().c_str());
  return std::move(r.value());
}

// Looks up every sample; returns which hit. `forged`: pixels need not be the fixture's.
uint32_t LookupAll(SampleCache* cache, bool forged) {
  uint32_t hits = 0;
  for (int64_t i = -1; i <= fuzz::kCacheSamples; ++i) {
    Image img;
    int64_t bytes = -1;
    if (!cache->Lookup(i, &img, &bytes)) continue;
    FUZZ_CHECK(i >= 0 && i < fuzz::kCacheSamples, "a hit for index %lld", (long long)i);
    FUZZ_CHECK(!img.empty() && bytes == int64_t(img.size_bytes()), "hit %lld: %s, %lld bytes",
               (long long)i, img.ShapeString().c_str(), (long long)bytes);
    if (!forged)
      FUZZ_CHECK(SameImage(img, fuzz::CacheFixtureImage(i)), "hit %lld: wrong pixels (%s)",
                 (long long)i, img.ShapeString().c_str());
    hits |= 1u << i;
  }
  const CacheStats s = cache->stats();
  FUZZ_CHECK(s.disk_entries >= 0 && s.disk_entries <= fuzz::kCacheSamples && s.disk_bytes >= 0 &&
                 s.corrupt >= 0 && s.reused_entries >= 0,
             "stats: %lld entries, %lld bytes, %lld corrupt", (long long)s.disk_entries,
             (long long)s.disk_bytes, (long long)s.corrupt);
  return hits;
}

}  // namespace
}  // namespace flowfeed

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flowfeed;
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const std::vector<std::string_view> parts = fuzz::SplitParts(data + 1, size - 1);
  std::string meta(parts[0]);
  std::unique_ptr<std::string> index, records;
  if (parts.size() > 1) index = std::make_unique<std::string>(parts[1]);
  if (parts.size() > 2) records = std::make_unique<std::string>(parts[2]);

  const std::string dir = fuzz::ProcessTempDir() + "/cache";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (flags & 1) {
    // The meta file a cache with the fixture's fingerprint writes (see engine/src/cache/meta.cc MetaText).
    const CacheFingerprint fp = fuzz::CacheFixtureFingerprint();
    meta = "{\"format\":2,\"fingerprint\":\"" + fp.Hex() + "\",\"parts\":[";
    for (size_t i = 0; i < fp.parts.size(); ++i)
      meta += std::string(i ? "," : "") + "[\"" + fp.parts[i].first + "\",\"" +
              fp.parts[i].second + "\"]";
    meta += "]}\n";
  }
  const bool forged = (flags & 4) && index && records;
  if (forged) {
    ForEachSegment(index.get(), [&](size_t e) {
      uint64_t sum;
      if (FixRecord(records.get(), Load<uint64_t>(*index, e + 8), &sum))
        Store<uint64_t>(index.get(), e + 32, sum);
    });
  } else if ((flags & 2) && index) {
    ForEachSegment(index.get(), [](size_t) {});
  }
  // An empty meta part (without bit 0): no meta file at all.
  Write(dir, "flowfeed-cache.meta", (flags & 1) || !meta.empty() ? &meta : nullptr);
  Write(dir, "flowfeed-cache.index", index.get());
  Write(dir, "flowfeed-cache.data", records.get());

  uint32_t hits;
  {
    std::unique_ptr<SampleCache> cache = MustOpen(dir);
    hits = LookupAll(cache.get(), forged);
    const CacheStats opened = cache->stats();
    FUZZ_LOG("hits %02x, reused %lld, corrupt %lld", hits, (long long)opened.reused_entries,
             (long long)opened.corrupt);
    for (const std::string& m : opened.messages) FUZZ_LOG("%s", m.c_str());
    if (!(flags & 8)) return 0;
    for (int64_t i = 0; i < fuzz::kCacheSamples; ++i)
      if (!(hits & (1u << i))) cache->Insert(i, fuzz::CacheFixtureImage(i));
    cache->Flush();
    const CacheStats s = cache->stats();
    FUZZ_CHECK(!s.disk_disabled && s.dropped == 0, "the repaired cache dropped %lld samples",
               (long long)s.dropped);
    // Every sample now hits, the inserted ones with the fixture's pixels.
    FUZZ_CHECK(LookupAll(cache.get(), forged) == (1u << fuzz::kCacheSamples) - 1,
               "misses after inserting every missing sample");
  }
  // The next run reuses all of it.
  std::unique_ptr<SampleCache> cache = MustOpen(dir);
  FUZZ_CHECK(cache->stats().reused_entries == fuzz::kCacheSamples, "reopened with %lld of %lld",
             (long long)cache->stats().reused_entries, (long long)fuzz::kCacheSamples);
  FUZZ_CHECK(LookupAll(cache.get(), forged) == (1u << fuzz::kCacheSamples) - 1,
             "misses after reopening");
  (void)hits;
  return 0;
}
