// Tests of the first-epoch sample cache (flowfeed/cache.h): memory store, budget accounting,
// the disk store's reuse / rebuild / torn-tail repair / checksums, failure handling, and
// concurrent use.
#include "flowfeed/cache.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace flowfeed {
namespace {

constexpr int64_t kHeaderBytes = 48;  // a record's header in flowfeed-cache.data
// The header each of flowfeed-cache.data and flowfeed-cache.index starts with (the fingerprint
// they were written for); records and segments follow it.
constexpr int64_t kFileHeaderBytes = 16;

CacheFingerprint Fp(const std::string& stages = "decode(color=rgb)") {
  CacheFingerprint fp;
  fp.parts = {{"format", "1"}, {"listing", "20 files, 123456 bytes"}, {"stages", stages}};
  return fp;
}

CacheOptions MemoryOptions(int64_t budget) {
  CacheOptions o;
  o.mode = CacheMode::kMemory;
  o.budget_bytes = budget;
  return o;
}

CacheOptions DiskOptions(const std::string& path, CacheMode mode = CacheMode::kDisk) {
  CacheOptions o;
  o.mode = mode;
  o.path = path;
  o.commit_seconds = 1000;  // commits come from Flush() only: deterministic segments
  return o;
}

std::unique_ptr<SampleCache> MustOpen(const CacheOptions& o, int64_t n,
                                      const CacheFingerprint& fp = Fp(),
                                      CacheFileOps* ops = nullptr) {
  Result<std::unique_ptr<SampleCache>> r = SampleCache::Open(o, n, fp, ops);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return nullptr;
  return std::move(r.value());
}

bool SameImage(const Image& a, const Image& b) {
  return a.height() == b.height() && a.width() == b.width() && a.channels() == b.channels() &&
         a.dtype() == b.dtype() && a.size_bytes() == b.size_bytes() &&
         std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

// Images of varying shapes; image i is a seeded pattern.
std::vector<Image> Images(int n) {
  std::vector<Image> out;
  for (int i = 0; i < n; ++i) out.push_back(test::PatternImage(8 + i % 5, 10 + i % 7, 3, i));
  return out;
}

int64_t RecordBytes(const Image& img) { return kHeaderBytes + int64_t(img.size_bytes()); }

int64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? int64_t(st.st_size) : -1;
}

void AppendBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void TruncateFile(const std::string& path, int64_t size) {
  ASSERT_EQ(::truncate(path.c_str(), off_t(size)), 0) << path;
}

std::string Messages(const CacheStats& s) {
  std::string out;
  for (const std::string& m : s.messages) out += m + "\n";
  return out;
}

bool HasMessage(const CacheStats& s, const std::string& part) {
  return Messages(s).find(part) != std::string::npos;
}

// A disk cache at `path` for images.size() samples holding images [0, count), closed again:
// one index segment per `per_segment` samples.
void WriteDiskCache(const std::string& path, const std::vector<Image>& images, int count,
                    int per_segment = 1 << 30, const CacheFingerprint& fp = Fp()) {
  auto cache = MustOpen(DiskOptions(path), int64_t(images.size()), fp);
  ASSERT_TRUE(cache);
  for (int i = 0; i < count; ++i) {
    cache->Insert(i, images[size_t(i)]);
    if ((i + 1) % per_segment == 0) cache->Flush();
  }
}

// Samples [begin, end) are hits with their own pixels.
void ExpectHits(SampleCache& cache, const std::vector<Image>& images, int begin, int end) {
  for (int i = begin; i < end; ++i) {
    Image out;
    int64_t bytes = 0;
    ASSERT_TRUE(cache.Lookup(i, &out, &bytes)) << i;
    EXPECT_TRUE(SameImage(out, images[size_t(i)])) << i;
  }
}

// ------------------------------------------------------------------------------------------

TEST(CacheParseByteSize, Accepts) {
  auto v = [](const std::string& t) {
    Result<int64_t> r = ParseByteSize(t);
    EXPECT_TRUE(r.ok()) << t << ": " << r.status().ToString();
    return r.ok() ? r.value() : -1;
  };
  EXPECT_EQ(v("0"), 0);
  EXPECT_EQ(v("1048576"), 1048576);
  EXPECT_EQ(v("100B"), 100);
  EXPECT_EQ(v("8GiB"), int64_t(8) << 30);
  EXPECT_EQ(v("8GB"), int64_t(8) << 30);
  EXPECT_EQ(v("8g"), int64_t(8) << 30);
  EXPECT_EQ(v("512MiB"), int64_t(512) << 20);
  EXPECT_EQ(v("300M"), int64_t(300) << 20);
  EXPECT_EQ(v("300mb"), int64_t(300) << 20);
  EXPECT_EQ(v("2Ki"), 2048);
  EXPECT_EQ(v("  2 KiB "), 2048);
  EXPECT_EQ(v("1T"), int64_t(1) << 40);
  EXPECT_EQ(v("1.5G"), int64_t(3) << 29);
  EXPECT_EQ(v("0.5k"), 512);
  EXPECT_EQ(v("1.1K"), 1126);  // fractions of a byte are dropped
  EXPECT_EQ(v(".5M"), int64_t(1) << 19);
  EXPECT_EQ(v("25%"), PhysicalMemoryBytes() / 4);
  EXPECT_EQ(v("100%"), PhysicalMemoryBytes());
  EXPECT_EQ(v("9223372036854775807"), INT64_MAX);
}

TEST(CacheParseByteSize, Rejects) {
  for (const char* t : {"", "  ", "abc", "-1", "+5", "5X", "5 GiBs", "G", "1.5.3", "0%", "101%",
                        "-5%", "8 TiB extra", "9223372036854775808", "99999999999T", "1e9",
                        "12%%"}) {
    Result<int64_t> r = ParseByteSize(t);
    ASSERT_FALSE(r.ok()) << "accepted \"" << t << "\"";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(),
              std::string("expected a size such as 8GiB, 512MiB or 25%, got \"") + t + "\"");
  }
}

TEST(CachePhysicalMemory, Positive) { EXPECT_GT(PhysicalMemoryBytes(), int64_t(1) << 20); }

// ------------------------------------------------------------------------------------------

TEST(CacheFingerprintTest, ValueIsStableAndSensitive) {
  const CacheFingerprint a = Fp(), b = Fp();
  EXPECT_EQ(a.Value(), b.Value());
  EXPECT_EQ(a.Hex(), b.Hex());
  EXPECT_EQ(a.Hex().size(), 16u);
  EXPECT_EQ(a.Hex().find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a.Value(), Fp("decode(color=gray)").Value());

  CacheFingerprint x, y;
  x.parts = {{"ab", "c"}};
  y.parts = {{"a", "bc"}};
  EXPECT_NE(x.Value(), y.Value());  // length-prefixed
  CacheFingerprint p, q;
  p.parts = {{"a", "1"}, {"b", "2"}};
  q.parts = {{"b", "2"}, {"a", "1"}};
  EXPECT_NE(p.Value(), q.Value());  // ordered
  EXPECT_NE(CacheFingerprint().Value(), p.Value());
}

TEST(CacheFingerprintTest, Explain) {
  const CacheFingerprint now = Fp("decode(color=gray)");
  EXPECT_EQ(now.Explain(now), "");
  EXPECT_EQ(now.Explain(Fp()),
            "stages changed: was 'decode(color=rgb)', now 'decode(color=gray)'");

  CacheFingerprint stored = Fp();
  stored.parts.push_back({"codecs", "libjpeg-turbo 2.1.5"});
  CacheFingerprint current = Fp();
  current.parts[1].second = "21 files, 123999 bytes";
  current.parts.push_back({"resize", "224"});
  EXPECT_EQ(current.Explain(stored),
            "listing changed: was '20 files, 123456 bytes', now '21 files, 123999 bytes'; "
            "resize added; codecs removed");
}

TEST(CacheFingerprintTest, ExplainShortensLongDescriptions) {
  const std::string common(300, 'x');
  CacheFingerprint a, b;
  a.parts = {{"listing", common + "AAAA" + std::string(300, 'y')}};
  b.parts = {{"listing", common + "BBBB" + std::string(300, 'y')}};
  const std::string e = a.Explain(b);
  EXPECT_LT(e.size(), 320u) << e;
  EXPECT_NE(e.find("..."), std::string::npos) << e;
  // The excerpt shows where they differ.
  EXPECT_NE(e.find("BBBB"), std::string::npos) << e;
  EXPECT_NE(e.find("AAAA"), std::string::npos) << e;
}

// ------------------------------------------------------------------------------------------

TEST(CacheMemory, HitIsASharedView) {
  auto cache = MustOpen(MemoryOptions(1 << 20), 10);
  ASSERT_TRUE(cache);
  const Image img = test::PatternImage(20, 30, 3, 7);
  const Image copy = img.Clone();
  cache->Insert(3, img);

  // The cache copied the pixels once; the caller's buffer is not kept.
  EXPECT_FALSE(img.shared());
  Image out, again;
  int64_t bytes = 0;
  ASSERT_TRUE(cache->Lookup(3, &out, &bytes));
  EXPECT_NE(out.data(), img.data());
  EXPECT_TRUE(out.shared());
  EXPECT_EQ(bytes, int64_t(img.size_bytes()));
  EXPECT_TRUE(SameImage(out, copy));
  ASSERT_TRUE(cache->Lookup(3, &again, &bytes));
  EXPECT_EQ(again.data(), out.data());  // hits are zero-copy views of one copy

  Image miss;
  EXPECT_FALSE(cache->Lookup(4, &miss, &bytes));
  EXPECT_FALSE(cache->Lookup(-1, &miss, &bytes));
  EXPECT_FALSE(cache->Lookup(10, &miss, &bytes));
  cache->Insert(10, img);  // out of range: ignored
  cache->Insert(-1, img);

  const CacheStats s = cache->stats();
  EXPECT_EQ(s.mode, CacheMode::kMemory);
  EXPECT_EQ(s.budget_bytes, 1 << 20);
  EXPECT_EQ(s.memory_entries, 1);
  EXPECT_EQ(s.memory_bytes, int64_t((img.size_bytes() + 63) / 64 * 64));  // 64-byte slots
  EXPECT_EQ(s.disk_entries, 0);
  EXPECT_EQ(s.dropped, 0);
  EXPECT_GE(s.overhead_bytes, 10 * 8);
  cache->Flush();  // no-op
  cache->EvictFromPageCache();
}

TEST(CacheMemory, DefaultBudgetIsAQuarterOfMemory) {
  auto cache = MustOpen(MemoryOptions(0), 1);
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->stats().budget_bytes, PhysicalMemoryBytes() / 4);
}

TEST(CacheMemory, DuplicateInsertIsIgnored) {
  auto cache = MustOpen(MemoryOptions(1 << 20), 4);
  ASSERT_TRUE(cache);
  const Image a = test::PatternImage(8, 8, 3, 1), b = test::PatternImage(8, 8, 3, 2);
  cache->Insert(0, a);
  cache->Insert(0, b);
  Image out;
  int64_t bytes = 0;
  ASSERT_TRUE(cache->Lookup(0, &out, &bytes));
  EXPECT_TRUE(SameImage(out, a));
  EXPECT_EQ(cache->stats().memory_entries, 1);
  EXPECT_EQ(cache->stats().memory_bytes, int64_t((a.size_bytes() + 63) / 64 * 64));
}

TEST(CacheMemory, BudgetHoldsUnderConcurrentInserts) {
  const int n = 64;
  std::vector<Image> images;
  for (int i = 0; i < n; ++i) images.push_back(test::PatternImage(32, 32, 3, i));
  const int64_t size = int64_t(images[0].size_bytes());
  const int64_t budget = 10 * size + 100;  // room for exactly 10
  auto cache = MustOpen(MemoryOptions(budget), n);
  ASSERT_TRUE(cache);

  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = t; i < n; i += 4) cache->Insert(i, images[size_t(i)]);
    });
  for (auto& th : threads) th.join();

  const CacheStats s = cache->stats();
  EXPECT_LE(s.memory_bytes, budget);
  EXPECT_EQ(s.memory_entries, 10);
  EXPECT_EQ(s.memory_bytes, 10 * size);
  EXPECT_EQ(s.dropped, n - 10);
  int hits = 0;
  for (int i = 0; i < n; ++i) {
    Image out;
    int64_t bytes = 0;
    if (cache->Lookup(i, &out, &bytes)) {
      ++hits;
      EXPECT_TRUE(SameImage(out, images[size_t(i)]));
    }
  }
  EXPECT_EQ(hits, 10);
}

TEST(CacheMemory, OffModeKeepsNothing) {
  CacheOptions o;
  o.mode = CacheMode::kOff;
  auto cache = MustOpen(o, 4);
  ASSERT_TRUE(cache);
  cache->Insert(0, test::PatternImage(4, 4, 3));
  Image out;
  int64_t bytes = 0;
  EXPECT_FALSE(cache->Lookup(0, &out, &bytes));
  cache->Flush();
}

// ------------------------------------------------------------------------------------------

TEST(CacheDisk, RoundTripAndMeta) {
  test::TempDir dir;
  const std::string path = dir / "cache";
  const std::vector<Image> images = Images(20);
  {
    auto cache = MustOpen(DiskOptions(path), 21);
    ASSERT_TRUE(cache);
    for (int i = 0; i < 20; ++i) cache->Insert(i, images[size_t(i)]);
    Image f = Image::Allocate(4, 5, 2, DType::kFloat32);
    for (int i = 0; i < 40; ++i) reinterpret_cast<float*>(f.data())[i] = float(i) * 0.25f - 3.f;
    cache->Insert(20, f);
    cache->Flush();
    int64_t total = RecordBytes(f);
    for (int i = 0; i < 20; ++i) {
      Image out;
      int64_t bytes = 0;
      ASSERT_TRUE(cache->Lookup(i, &out, &bytes)) << i;
      EXPECT_TRUE(SameImage(out, images[size_t(i)])) << i;
      EXPECT_NE(out.data(), images[size_t(i)].data());
      EXPECT_EQ(bytes, int64_t(images[size_t(i)].size_bytes()));
      total += RecordBytes(images[size_t(i)]);
    }
    Image out;
    int64_t bytes = 0;
    ASSERT_TRUE(cache->Lookup(20, &out, &bytes));
    EXPECT_TRUE(SameImage(out, f));
    EXPECT_EQ(out.dtype(), DType::kFloat32);

    const CacheStats s = cache->stats();
    EXPECT_EQ(s.memory_entries, 0);
    EXPECT_EQ(s.disk_entries, 21);
    EXPECT_EQ(s.disk_bytes, total);
    EXPECT_EQ(s.budget_bytes, 0);
    EXPECT_FALSE(s.disk_disabled);
    EXPECT_EQ(FileSize(path + "/flowfeed-cache.data"), kFileHeaderBytes + total);
    EXPECT_EQ(FileSize(path + "/flowfeed-cache.index"), kFileHeaderBytes + 8 + 21 * 40 + 8);
    cache->EvictFromPageCache();
    ASSERT_TRUE(cache->Lookup(5, &out, &bytes));  // still readable after eviction
    EXPECT_TRUE(SameImage(out, images[5]));
  }
  std::ifstream in(path + "/flowfeed-cache.meta");
  const nlohmann::json meta = nlohmann::json::parse(in);
  EXPECT_EQ(meta["format"], 2);
  EXPECT_EQ(meta["fingerprint"], Fp().Hex());
  ASSERT_EQ(meta["parts"].size(), 3u);
  EXPECT_EQ(meta["parts"][2][0], "stages");
  EXPECT_EQ(meta["parts"][2][1], "decode(color=rgb)");
}

TEST(CacheDisk, ReopenReusesCommittedSamples) {
  test::TempDir dir;
  const std::string path = dir / "c";
  const std::vector<Image> images = Images(12);
  {
    auto cache = MustOpen(DiskOptions(path), 12);
    ASSERT_TRUE(cache);
    for (int i = 0; i < 12; ++i) cache->Insert(i, images[size_t(i)]);
    // No Flush: destruction makes the records durable.
  }
  auto cache = MustOpen(DiskOptions(path), 12);
  ASSERT_TRUE(cache);
  const CacheStats s = cache->stats();
  EXPECT_EQ(s.reused_entries, 12);
  EXPECT_EQ(s.disk_entries, 12);
  EXPECT_TRUE(HasMessage(s, "reusing 12 committed samples from " + path)) << Messages(s);
  EXPECT_FALSE(HasMessage(s, "torn")) << Messages(s);
  for (int i = 0; i < 12; ++i) {
    Image out;
    int64_t bytes = 0;
    ASSERT_TRUE(cache->Lookup(i, &out, &bytes)) << i;
    EXPECT_TRUE(SameImage(out, images[size_t(i)])) << i;
  }
  cache->Insert(3, images[4]);  // already held: ignored
  cache->Flush();
  Image out;
  int64_t bytes = 0;
  ASSERT_TRUE(cache->Lookup(3, &out, &bytes));
  EXPECT_TRUE(SameImage(out, images[3]));
  EXPECT_EQ(cache->stats().disk_entries, 12);
}

TEST(CacheDisk, OtherFingerprintRebuilds) {
  test::TempDir dir;
  const std::string path = dir / "c";
  const std::vector<Image> images = Images(5);
  {
    auto cache = MustOpen(DiskOptions(path), 5);
    ASSERT_TRUE(cache);
    for (int i = 0; i < 5; ++i) cache->Insert(i, images[size_t(i)]);
  }
  auto cache = MustOpen(DiskOptions(path), 5, Fp("decode(color=gray)"));
  ASSERT_TRUE(cache);
  const CacheStats s = cache->stats();
  EXPECT_TRUE(HasMessage(s, "rebuilding " + path +
                                ": stages changed: was 'decode(color=rgb)', now "
                                "'decode(color=gray)'"))
      << Messages(s);
  EXPECT_EQ(s.reused_entries, 0);
  EXPECT_EQ(s.disk_entries, 0);
  for (int i = 0; i < 5; ++i) {
    Image out;
    int64_t bytes = 0;
    EXPECT_FALSE(cache->Lookup(i, &out, &bytes));
  }
  EXPECT_EQ(FileSize(path + "/flowfeed-cache.data"), kFileHeaderBytes);
  EXPECT_EQ(FileSize(path + "/flowfeed-cache.index"), kFileHeaderBytes);
  std::ifstream in(path + "/flowfeed-cache.meta");
  EXPECT_EQ(nlohmann::json::parse(in)["fingerprint"], Fp("decode(color=gray)").Hex());
}

// Two caches of the same sample count written for different fingerprints (rgb and gray
// stages, other pixels), at dir/a and dir/b; the images each holds.
struct TwoCaches {
  test::TempDir dir;
  std::string a = dir / "a", b = dir / "b";
  std::vector<Image> images_a = Images(6), images_b;
  TwoCaches() {
    for (int i = 0; i < 6; ++i)
      images_b.push_back(test::PatternImage(8 + i % 5, 10 + i % 7, 3, 100 + i));
    WriteDiskCache(a, images_a, 6, 3, FpA());
    WriteDiskCache(b, images_b, 6, 3, FpB());
  }
  static CacheFingerprint FpA() { return Fp(); }
  static CacheFingerprint FpB() { return Fp("decode(color=gray)"); }
  void CopyFromB(const char* name) {
    std::filesystem::copy_file(b + "/" + name, a + "/" + name,
                               std::filesystem::copy_options::overwrite_existing);
  }
};

// None of `images` is served: every lookup misses or returns other pixels.
void ExpectNoneServed(SampleCache& cache, const std::vector<Image>& images) {
  for (int i = 0; i < int(images.size()); ++i) {
    Image out;
    if (cache.Lookup(i, &out, nullptr)) {
      EXPECT_FALSE(SameImage(out, images[size_t(i)]))
          << "sample " << i << " served from the other cache's files";
    }
  }
}

// "NAME was written for fingerprint (written's), not the meta file's (meta's)".
std::string WrittenFor(const char* name, const CacheFingerprint& written,
                       const CacheFingerprint& meta) {
  return std::string(name) + " was written for fingerprint " + written.Hex() +
         ", not the meta file's " + meta.Hex();
}

// Opening c.a for `run` rebuilds it, saying `why`, and serves none of `foreign`.
void ExpectRebuilt(const TwoCaches& c, const CacheFingerprint& run, const std::string& why,
                   const std::vector<Image>& foreign) {
  auto cache = MustOpen(DiskOptions(c.a), 6, run);
  ASSERT_TRUE(cache);
  const CacheStats s = cache->stats();
  EXPECT_EQ(s.reused_entries, 0) << Messages(s);
  EXPECT_EQ(s.corrupt, 0) << Messages(s);
  EXPECT_TRUE(HasMessage(
      s, "rebuilding " + c.a + ": " + why + ": the cache's files do not belong to its meta file"))
      << Messages(s);
  ExpectNoneServed(*cache, foreign);
  EXPECT_EQ(FileSize(c.a + "/flowfeed-cache.data"), kFileHeaderBytes);  // rebuilt from scratch
}

// Issue 21: a meta file copied from cache B into cache A's folder made A's records pass for B's
// (the meta file alone held the fingerprint). Now the files' headers name theirs: rebuilt.
TEST(CacheDisk, AMetaFileCopiedFromAnotherCacheRebuilds) {
  TwoCaches c;
  c.CopyFromB("flowfeed-cache.meta");
  const CacheFingerprint a = TwoCaches::FpA(), b = TwoCaches::FpB();
  ExpectRebuilt(
      c, b,
      WrittenFor("flowfeed-cache.index", a, b) + "; " + WrittenFor("flowfeed-cache.data", a, b),
      c.images_a);
}

// The same with the other cache's index (and meta) copied in: the data file is the stranger.
// And with only the other cache's index copied in, under A's own meta file.
TEST(CacheDisk, AnIndexCopiedFromAnotherCacheRebuilds) {
  const CacheFingerprint a = TwoCaches::FpA(), b = TwoCaches::FpB();
  {
    TwoCaches c;
    c.CopyFromB("flowfeed-cache.meta");
    c.CopyFromB("flowfeed-cache.index");
    ExpectRebuilt(c, b, WrittenFor("flowfeed-cache.data", a, b), c.images_a);
  }
  {
    TwoCaches c;
    c.CopyFromB("flowfeed-cache.index");
    ExpectRebuilt(c, a, WrittenFor("flowfeed-cache.index", b, a), c.images_b);
  }
}

// Headers forged to name B's fingerprint over A's records and segments: the checksums, seeded
// with the fingerprint, still fail, so none of A's samples is reused for B.
TEST(CacheDisk, ForgedFileHeadersDoNotMakeAnotherCachesRecordsValid) {
  TwoCaches c;
  c.CopyFromB("flowfeed-cache.meta");
  for (const char* name : {"flowfeed-cache.data", "flowfeed-cache.index"}) {
    std::vector<uint8_t> mine = test::ReadBytes(c.a + "/" + name);
    const std::vector<uint8_t> theirs = test::ReadBytes(c.b + "/" + name);
    std::copy(theirs.begin(), theirs.begin() + kFileHeaderBytes, mine.begin());
    test::WriteBytes(c.a + "/" + name, mine);
  }
  auto cache = MustOpen(DiskOptions(c.a), 6, TwoCaches::FpB());
  ASSERT_TRUE(cache);
  const CacheStats s = cache->stats();
  EXPECT_EQ(s.reused_entries, 0) << Messages(s);
  ExpectNoneServed(*cache, c.images_a);
}

// A cache as an older flowfeed wrote it (format 1): no file headers, checksums not seeded with
// the fingerprint, "format": 1 in the meta file.
void WriteFormat1Cache(const std::string& path, const std::vector<Image>& images,
                       const CacheFingerprint& fp) {
  struct Record {
    uint32_t magic, version;
    uint64_t index;
    uint32_t height, width, channels, dtype;
    uint64_t payload_bytes, checksum;
  };
  struct Entry {
    uint64_t index, offset;
    uint32_t height, width, channels, dtype;
    uint64_t checksum;
  };
  static_assert(sizeof(Record) == 48 && sizeof(Entry) == 40, "format 1 layout");
  std::string data, index;
  const uint32_t segment_magic = 0x46464349, count = uint32_t(images.size());
  index.append(reinterpret_cast<const char*>(&segment_magic), 4);
  index.append(reinterpret_cast<const char*>(&count), 4);
  for (size_t i = 0; i < images.size(); ++i) {
    const Image& img = images[i];
    Record r{0x46464352,
             1,
             i,
             uint32_t(img.height()),
             uint32_t(img.width()),
             uint32_t(img.channels()),
             0,
             img.size_bytes(),
             0};
    r.checksum = XXH3_64bits_withSeed(img.data(), img.size_bytes(), XXH3_64bits(&r, 40));
    const Entry e{i, data.size(), r.height, r.width, r.channels, 0, r.checksum};
    data.append(reinterpret_cast<const char*>(&r), sizeof r);
    data.append(reinterpret_cast<const char*>(img.data()), img.size_bytes());
    index.append(reinterpret_cast<const char*>(&e), sizeof e);
  }
  const uint64_t sum = XXH3_64bits(index.data(), index.size());
  index.append(reinterpret_cast<const char*>(&sum), 8);
  nlohmann::json parts = nlohmann::json::array();
  for (const auto& p : fp.parts) parts.push_back({p.first, p.second});
  std::filesystem::create_directories(path);
  test::WriteText(path + "/flowfeed-cache.data", data);
  test::WriteText(path + "/flowfeed-cache.index", index);
  test::WriteText(
      path + "/flowfeed-cache.meta",
      nlohmann::json{{"format", 1}, {"fingerprint", fp.Hex()}, {"parts", parts}}.dump(2));
}

TEST(CacheDisk, AFormat1CacheIsRebuiltSayingWhy) {
  test::TempDir dir;
  const std::string path = dir / "c";
  const std::vector<Image> images = Images(4);
  WriteFormat1Cache(path, images, Fp());
  {
    auto cache = MustOpen(DiskOptions(path), 4);
    ASSERT_TRUE(cache);
    const CacheStats s = cache->stats();
    EXPECT_EQ(s.reused_entries, 0) << Messages(s);
    EXPECT_TRUE(HasMessage(s, "rebuilding " + path +
                                  ": flowfeed-cache.meta is format 1, from an "
                                  "older flowfeed whose data and index files do not carry the "
                                  "fingerprint"))
        << Messages(s);
    for (int i = 0; i < 4; ++i) {
      Image out;
      EXPECT_FALSE(cache->Lookup(i, &out, nullptr)) << i;
    }
    for (int i = 0; i < 4; ++i) cache->Insert(i, images[size_t(i)]);
  }
  // Rewritten as format 2, and reused from then on.
  EXPECT_EQ(nlohmann::json::parse(test::ReadBytes(path + "/flowfeed-cache.meta"))["format"], 2);
  auto cache = MustOpen(DiskOptions(path), 4);
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->stats().reused_entries, 4) << Messages(cache->stats());
  ExpectHits(*cache, images, 0, 4);
}

TEST(CacheDisk, UnreadableMetaRebuilds) {
  test::TempDir dir;
  const std::string path = dir / "c";
  {
    auto cache = MustOpen(DiskOptions(path), 2);
    ASSERT_TRUE(cache);
    cache->Insert(0, test::PatternImage(4, 4, 3));
  }
  test::WriteText(path + "/flowfeed-cache.meta", "{not json");
  auto cache = MustOpen(DiskOptions(path), 2);
  ASSERT_TRUE(cache);
  EXPECT_TRUE(HasMessage(cache->stats(), "rebuilding " + path)) << Messages(cache->stats());
  Image out;
  int64_t bytes = 0;
  EXPECT_FALSE(cache->Lookup(0, &out, &bytes));
}

// Regression (fuzz/corpus/cache/regress-meta-format-float-overflow): a "format" of 2.2e25 was
// converted to int (undefined behaviour) on the way to being compared. Any format that is not
// the integer 2 (or 1, an older flowfeed's, said so) is an unknown format: a rebuild, never a
// reuse.
TEST(CacheDisk, MetaFormatThatIsNotTheCurrentIntegerRebuilds) {
  for (const std::string format : {"2.2e25", "2.0", "\"2\"", "-1", "3", "null", "[2]"}) {
    test::TempDir dir;
    const std::string path = dir / "c";
    {
      auto cache = MustOpen(DiskOptions(path), 2);
      ASSERT_TRUE(cache);
      cache->Insert(0, test::PatternImage(4, 4, 3));
    }
    nlohmann::json meta = nlohmann::json::parse(test::ReadBytes(path + "/flowfeed-cache.meta"));
    std::string text = meta.dump();
    const std::string key = "\"format\":2";
    ASSERT_NE(text.find(key), std::string::npos) << text;
    text.replace(text.find(key), key.size(), "\"format\":" + format);
    test::WriteText(path + "/flowfeed-cache.meta", text);
    auto cache = MustOpen(DiskOptions(path), 2);
    ASSERT_TRUE(cache);
    EXPECT_TRUE(HasMessage(cache->stats(), "unknown format")) << format << ": "
                                                              << Messages(cache->stats());
    EXPECT_EQ(cache->stats().reused_entries, 0) << format;
  }
}

// A cache file that is a symlink (planted, or left by a copy) would have its target truncated or
// appended to: refused at open, naming it, and the target is left as it was.
TEST(CacheDisk, CacheFilesThatAreSymlinksAreRefusedAndTheirTargetsUntouched) {
  for (const char* name : {"flowfeed-cache.index", "flowfeed-cache.data", "flowfeed-cache.meta",
                           "flowfeed-cache.meta.tmp"}) {
    test::TempDir dir;
    const std::string path = dir / "c";
    WriteDiskCache(path, Images(3), 1);  // a valid cache, then one file swapped
    test::WriteText(dir / "victim.txt", "precious");
    std::remove((path + "/" + name).c_str());
    ASSERT_EQ(symlink((dir / "victim.txt").c_str(), (path + "/" + name).c_str()), 0);
    Result<std::unique_ptr<SampleCache>> r = SampleCache::Open(DiskOptions(path), 3, Fp(), nullptr);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("cache file " + path + "/" + name + " is a symbolic link"),
              std::string::npos)
        << r.status().ToString();
    EXPECT_EQ(test::ReadText(dir / "victim.txt"), "precious") << name;
  }
}

// Makes `path` read-only for the current process: by permissions (0555 folder, 0444 files) for
// an ordinary user; as root, whom permissions do not stop, by a bind mount of it remounted
// read-only. Undone by the destructor. `why` says what failed when it could not be done.
struct ReadOnly {
  std::string path, why;
  bool mounted = false, done = false;
  explicit ReadOnly(const std::string& p) : path(p) {
    if (::geteuid() != 0) {
      for (const auto& e : std::filesystem::directory_iterator(path))
        ::chmod(e.path().c_str(), 0444);
      done = ::chmod(path.c_str(), 0555) == 0;
      if (!done) why = std::strerror(errno);
      return;
    }
    mounted = ::mount(path.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) == 0;
    done = mounted && ::mount(nullptr, path.c_str(), nullptr,
                              MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) == 0;
    if (!done) why = std::string("a read-only bind mount: ") + std::strerror(errno);
  }
  ~ReadOnly() {
    if (mounted) ::umount2(path.c_str(), MNT_DETACH);
    ::chmod(path.c_str(), 0755);
    if (::geteuid() != 0)
      for (const auto& e : std::filesystem::directory_iterator(path))
        ::chmod(e.path().c_str(), 0644);
  }
};

// A valid cache that cannot be written (a shared, prepared cache; a read-only mount) is used
// read-only: its records are hits, nothing is written, one message names the folder.
TEST(CacheDisk, AReadOnlyValidCacheServesHitsAndWritesNothing) {
  test::TempDir dir;
  const std::string path = dir / "c";
  const std::string data = path + "/flowfeed-cache.data", index = path + "/flowfeed-cache.index";
  const std::vector<Image> images = Images(8);
  WriteDiskCache(path, images, 5);
  const int64_t data0 = FileSize(data), index0 = FileSize(index);
  ReadOnly ro(path);
  if (!ro.done) GTEST_SKIP() << "cannot make " << path << " read-only here: " << ro.why;
  {
    auto cache = MustOpen(DiskOptions(path), 8);
    ASSERT_TRUE(cache);
    const CacheStats s = cache->stats();
    EXPECT_EQ(s.reused_entries, 5);
    EXPECT_TRUE(HasMessage(s, "disk cache disabled for writing: " + path + " is read-only ("))
        << Messages(s);
    EXPECT_TRUE(HasMessage(s, "its 5 committed samples are served")) << Messages(s);
    ExpectHits(*cache, images, 0, 5);
    for (int i = 5; i < 8; ++i) cache->Insert(i, images[size_t(i)]);
    cache->Flush();
  }
  EXPECT_EQ(FileSize(data), data0);
  EXPECT_EQ(FileSize(index), index0);
  // With another fingerprint there is nothing to serve, and it cannot be rebuilt: off, said so.
  auto other = MustOpen(DiskOptions(path), 8, Fp("resize(size=[32])"));
  ASSERT_TRUE(other);
  EXPECT_TRUE(HasMessage(other->stats(), "disk cache disabled: " + path + " cannot be written"))
      << Messages(other->stats());
  EXPECT_EQ(FileSize(data), data0);
}

TEST(CacheDisk, TornTailIsCutOff) {
  test::TempDir dir;
  const std::string path = dir / "c";
  const std::string data = path + "/flowfeed-cache.data", index = path + "/flowfeed-cache.index";
  const std::vector<Image> images = Images(7);
  {
    auto cache = MustOpen(DiskOptions(path), 7);
    ASSERT_TRUE(cache);
    for (int i = 0; i < 6; ++i) cache->Insert(i, images[size_t(i)]);
    cache->Flush();
  }
  const int64_t data0 = FileSize(data), index0 = FileSize(index);
  AppendBytes(index, std::vector<uint8_t>(13, 0xAB));
  std::vector<uint8_t> partial(100, 7);
  const uint32_t magic = 0x46464352;
  std::memcpy(partial.data(), &magic, 4);
  AppendBytes(data, partial);
  {
    auto cache = MustOpen(DiskOptions(path), 7);
    ASSERT_TRUE(cache);
    const CacheStats s = cache->stats();
    EXPECT_EQ(s.reused_entries, 6);
    EXPECT_TRUE(HasMessage(s, path + ": discarded a torn tail (13 bytes of index, 100 bytes of "
                                     "data) left by an interrupted run"))
        << Messages(s);
    EXPECT_TRUE(HasMessage(s, "reusing 6 committed samples from " + path)) << Messages(s);
    EXPECT_EQ(FileSize(data), data0);
    EXPECT_EQ(FileSize(index), index0);
    for (int i = 0; i < 6; ++i) {
      Image out;
      int64_t bytes = 0;
      ASSERT_TRUE(cache->Lookup(i, &out, &bytes)) << i;
      EXPECT_TRUE(SameImage(out, images[size_t(i)]));
    }
    cache->Insert(6, images[6]);  // appends after the repaired end
  }
  auto cache = MustOpen(DiskOptions(path), 7);
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->stats().reused_entries, 7);
  EXPECT_FALSE(HasMessage(cache->stats(), "torn")) << Messages(cache->stats());
  for (int i = 0; i < 7; ++i) {
    Image out;
    int64_t bytes = 0;
    ASSERT_TRUE(cache->Lookup(i, &out, &bytes)) << i;
    EXPECT_TRUE(SameImage(out, images[size_t(i)]));
  }
}

TEST(CacheDisk, TruncatedLastSegmentKeepsEarlierOnes) {
  test::TempDir dir;
  const std::string path = dir / "c";
  const std::string data = path + "/flowfeed-cache.data", index = path + "/flowfeed-cache.index";
  const std::vector<Image> images = Images(10);
  int64_t first_half = 0, second_half = 0;
  {
    auto cache = MustOpen(DiskOptions(path), 10);
    ASSERT_TRUE(cache);
    for (int i = 0; i < 5; ++i) cache->Insert(i, images[size_t(i)]);
    cache->Flush();  // segment 1
    for (int i = 5; i < 10; ++i) cache->Insert(i, images[size_t(i)]);
    cache->Flush();  // segment 2
  }
  for (int i = 0; i < 10; ++i) (i < 5 ? first_half : second_half) += RecordBytes(images[size_t(i)]);
  const int64_t segment = 8 + 5 * 40 + 8;
  ASSERT_EQ(FileSize(index), kFileHeaderBytes + 2 * segment);
  ASSERT_EQ(FileSize(data), kFileHeaderBytes + first_half + second_half);
  TruncateFile(index, kFileHeaderBytes + 2 * segment - 10);

  auto cache = MustOpen(DiskOptions(path), 10);
  ASSERT_TRUE(cache);
  const CacheStats s = cache->stats();
  EXPECT_EQ(s.reused_entries, 5);
  EXPECT_TRUE(HasMessage(s, "discarded a torn tail (" + std::to_string(segment - 10) +
                                " bytes of index, " + std::to_string(second_half) +
                                " bytes of data)"))
      << Messages(s);
  EXPECT_EQ(FileSize(index), kFileHeaderBytes + segment);
  EXPECT_EQ(FileSize(data), kFileHeaderBytes + first_half);
  for (int i = 0; i < 10; ++i) {
    Image out;
    int64_t bytes = 0;
    EXPECT_EQ(cache->Lookup(i, &out, &bytes), i < 5) << i;
    if (i < 5) {
      EXPECT_TRUE(SameImage(out, images[size_t(i)]));
    }
  }
}

// A last segment of its full length whose checksum fails was damaged in place, not torn by an
// interrupted run: said so, and the segments before it are kept.
TEST(CacheDisk, CorruptLastSegmentIsDamagedNotATornTail) {
  test::TempDir dir;
  const std::string path = dir / "c";
  const std::string index = path + "/flowfeed-cache.index";
  WriteDiskCache(path, Images(4), 4, 2);
  std::vector<uint8_t> bytes = test::ReadBytes(index);
  const size_t segment = 8 + 2 * 40 + 8;
  ASSERT_EQ(bytes.size(), kFileHeaderBytes + 2 * segment);
  bytes[kFileHeaderBytes + segment + 8 + 16] ^= 1;  // the second segment's first entry's height
  test::WriteBytes(index, bytes);
  auto cache = MustOpen(DiskOptions(path), 4);
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->stats().reused_entries, 2);
  EXPECT_TRUE(HasMessage(cache->stats(), path + ": the index's last segment (96 bytes at offset "
                                                "112) failed its checksum (corruption, not an "
                                                "interrupted run)"))
      << Messages(cache->stats());
  EXPECT_FALSE(HasMessage(cache->stats(), "torn")) << Messages(cache->stats());
}

// One flipped byte in the middle of the index costs only the samples its segment named: the
// segments before and after it are kept, the message says what happened, and the index is
// repaired so that the next run reuses everything without a word.
TEST(CacheDisk, AFlippedByteInTheMiddleOfTheIndexKeepsTheSegmentsAfterIt) {
  test::TempDir dir;
  const std::string path = dir / "c";
  const std::string index = path + "/flowfeed-cache.index";
  const std::vector<Image> images = Images(9);
  WriteDiskCache(path, images, 9, 3);
  std::vector<uint8_t> bytes = test::ReadBytes(index);
  const size_t segment = 8 + 3 * 40 + 8;
  ASSERT_EQ(bytes.size(), kFileHeaderBytes + 3 * segment);
  bytes[kFileHeaderBytes + segment + 8 + 40 + 3] ^= 0x10;  // the second segment's second entry
  test::WriteBytes(index, bytes);
  {
    auto cache = MustOpen(DiskOptions(path), 9);
    ASSERT_TRUE(cache);
    const CacheStats s = cache->stats();
    EXPECT_EQ(s.reused_entries, 6);
    EXPECT_TRUE(HasMessage(s, path + ": the index is damaged: " + std::to_string(segment) +
                                  " bytes from offset " +
                                  std::to_string(kFileHeaderBytes + segment) +
                                  " failed their checksum (corruption, not an interrupted run)"))
        << Messages(s);
    EXPECT_FALSE(HasMessage(s, "torn")) << Messages(s);
    ExpectHits(*cache, images, 0, 3);
    ExpectHits(*cache, images, 6, 9);
    for (int i = 3; i < 6; ++i) {
      Image out;
      EXPECT_FALSE(cache->Lookup(i, &out, nullptr)) << i;
    }
    for (int i = 3; i < 6; ++i) cache->Insert(i, images[size_t(i)]);  // recomputed
  }
  // Repaired, then appended to.
  EXPECT_EQ(test::ReadBytes(index).size(), kFileHeaderBytes + 3 * segment);
  auto cache = MustOpen(DiskOptions(path), 9);
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->stats().reused_entries, 9);
  EXPECT_FALSE(HasMessage(cache->stats(), "damaged")) << Messages(cache->stats());
  ExpectHits(*cache, images, 0, 9);
}

TEST(CacheDisk, CorruptRecordIsAMiss) {
  test::TempDir dir;
  const std::string path = dir / "c";
  const std::string data = path + "/flowfeed-cache.data";
  const std::vector<Image> images = Images(3);
  {
    auto cache = MustOpen(DiskOptions(path), 3);
    ASSERT_TRUE(cache);
    for (int i = 0; i < 3; ++i) cache->Insert(i, images[size_t(i)]);
  }
  // Records are written in insertion order after the file header: record 1 follows record 0.
  std::vector<uint8_t> bytes = test::ReadBytes(data);
  bytes[size_t(kFileHeaderBytes + RecordBytes(images[0]) + kHeaderBytes + 10)] ^= 0x40;
  test::WriteBytes(data, bytes);

  auto cache = MustOpen(DiskOptions(path), 3);
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->stats().reused_entries, 3);
  Image out;
  int64_t n = 0;
  EXPECT_FALSE(cache->Lookup(1, &out, &n));
  EXPECT_EQ(cache->stats().corrupt, 1);
  EXPECT_EQ(cache->stats().disk_entries, 2);
  EXPECT_TRUE(HasMessage(cache->stats(), "failed its checksum")) << Messages(cache->stats());
  EXPECT_FALSE(cache->Lookup(1, &out, &n));  // stays a miss, counted once
  EXPECT_EQ(cache->stats().corrupt, 1);
  for (int i : {0, 2}) {
    ASSERT_TRUE(cache->Lookup(i, &out, &n)) << i;
    EXPECT_TRUE(SameImage(out, images[size_t(i)]));
  }
  // The sample can be cached again.
  cache->Insert(1, images[1]);
  cache->Flush();
  ASSERT_TRUE(cache->Lookup(1, &out, &n));
  EXPECT_TRUE(SameImage(out, images[1]));
  EXPECT_EQ(cache->stats().disk_entries, 3);
}

// ------------------------------------------------------------------------------------------

// Writes up to `allowed` bytes in all, then fails with ENOSPC (a short write at the boundary).
class FullDiskOps : public CacheFileOps {
 public:
  std::atomic<int64_t> allowed{INT64_MAX};
  ssize_t Write(int fd, const void* data, size_t size) override {
    const int64_t left = allowed.load();
    if (left <= 0) {
      errno = ENOSPC;
      return -1;
    }
    const ssize_t r = ::write(fd, data, std::min<size_t>(size, size_t(left)));
    if (r > 0) allowed -= r;
    return r;
  }
};

class FailingSyncOps : public CacheFileOps {
 public:
  std::atomic<bool> fail{false};
  int Sync(int fd) override {
    if (fail) {
      errno = EIO;
      return -1;
    }
    return ::fdatasync(fd);
  }
};

TEST(CacheFailure, FullDiskDisablesTheDiskStore) {
  test::TempDir dir;
  const std::string path = dir / "c";
  std::vector<Image> images;
  for (int i = 0; i < 10; ++i) images.push_back(test::PatternImage(16, 16, 3, i));
  const int64_t size = int64_t(images[0].size_bytes());
  CacheOptions o = DiskOptions(path, CacheMode::kAuto);
  o.budget_bytes = 2 * size;
  FullDiskOps ops;
  {
    auto cache = MustOpen(o, 10, Fp(), &ops);
    ASSERT_TRUE(cache);
    ops.allowed = 2 * RecordBytes(images[0]) + 300;  // the third record is cut short
    for (int i = 0; i < 10; ++i) cache->Insert(i, images[size_t(i)]);
    cache->Flush();
    const CacheStats s = cache->stats();
    EXPECT_TRUE(s.disk_disabled);
    EXPECT_TRUE(HasMessage(s, "disk cache disabled: " + path + ": No space left on device"))
        << Messages(s);
    EXPECT_EQ(s.memory_entries, 2);
    EXPECT_EQ(s.disk_entries, 0);
    EXPECT_EQ(s.dropped, 8);
    for (int i = 0; i < 10; ++i) {
      Image out;
      int64_t bytes = 0;
      EXPECT_EQ(cache->Lookup(i, &out, &bytes), i < 2) << i;
      if (i < 2) {
        EXPECT_TRUE(SameImage(out, images[size_t(i)]));
      }
    }
    // Nothing uncommitted survives on disk.
    EXPECT_EQ(FileSize(path + "/flowfeed-cache.data"), kFileHeaderBytes);
    EXPECT_EQ(FileSize(path + "/flowfeed-cache.index"), kFileHeaderBytes);
    // Keeps working.
    cache->Insert(5, images[5]);
    cache->Flush();
    Image out;
    int64_t bytes = 0;
    EXPECT_FALSE(cache->Lookup(5, &out, &bytes));
    EXPECT_TRUE(cache->Lookup(0, &out, &bytes));
    cache->EvictFromPageCache();
  }
  auto cache = MustOpen(o, 10);
  ASSERT_TRUE(cache);
  EXPECT_TRUE(HasMessage(cache->stats(), "reusing 0 committed samples"))
      << Messages(cache->stats());
  EXPECT_FALSE(HasMessage(cache->stats(), "torn")) << Messages(cache->stats());
}

TEST(CacheFailure, FullDiskKeepsCommittedRecords) {
  test::TempDir dir;
  const std::string path = dir / "c";
  const std::vector<Image> images = Images(6);
  FullDiskOps ops;
  {
    auto cache = MustOpen(DiskOptions(path), 6, Fp(), &ops);
    ASSERT_TRUE(cache);
    for (int i = 0; i < 3; ++i) cache->Insert(i, images[size_t(i)]);
    cache->Flush();
    ops.allowed = 10;
    for (int i = 3; i < 6; ++i) cache->Insert(i, images[size_t(i)]);
    cache->Flush();
    EXPECT_TRUE(cache->stats().disk_disabled);
    for (int i = 0; i < 6; ++i) {
      Image out;
      int64_t bytes = 0;
      EXPECT_EQ(cache->Lookup(i, &out, &bytes), i < 3) << i;
    }
  }
  auto cache = MustOpen(DiskOptions(path), 6);
  ASSERT_TRUE(cache);
  EXPECT_EQ(cache->stats().reused_entries, 3);
  EXPECT_FALSE(HasMessage(cache->stats(), "torn")) << Messages(cache->stats());
}

TEST(CacheFailure, FailingSyncDisablesTheDiskStore) {
  test::TempDir dir;
  const std::string path = dir / "c";
  const std::vector<Image> images = Images(3);
  FailingSyncOps ops;
  auto cache = MustOpen(DiskOptions(path), 3, Fp(), &ops);
  ASSERT_TRUE(cache);
  ops.fail = true;
  for (int i = 0; i < 3; ++i) cache->Insert(i, images[size_t(i)]);
  cache->Flush();
  const CacheStats s = cache->stats();
  EXPECT_TRUE(s.disk_disabled);
  EXPECT_TRUE(HasMessage(s, "disk cache disabled: " + path + ": Input/output error"))
      << Messages(s);
  EXPECT_EQ(s.disk_entries, 0);
  for (int i = 0; i < 3; ++i) {
    Image out;
    int64_t bytes = 0;
    EXPECT_FALSE(cache->Lookup(i, &out, &bytes));
  }
  EXPECT_EQ(FileSize(path + "/flowfeed-cache.data"), kFileHeaderBytes);
}

TEST(CacheFailure, FailingSyncAtOpenStillOpens) {
  test::TempDir dir;
  const std::string path = dir / "c";
  FailingSyncOps ops;
  ops.fail = true;
  auto cache = MustOpen(DiskOptions(path, CacheMode::kAuto), 3, Fp(), &ops);
  ASSERT_TRUE(cache);
  EXPECT_TRUE(cache->stats().disk_disabled);
  EXPECT_TRUE(HasMessage(cache->stats(), "disk cache disabled: " + path))
      << Messages(cache->stats());
  const Image img = test::PatternImage(4, 4, 3);
  cache->Insert(0, img);  // auto: the memory store still works
  cache->Flush();
  Image out;
  int64_t bytes = 0;
  EXPECT_TRUE(cache->Lookup(0, &out, &bytes));
}

// Blocks every write while closed.
class GateOps : public CacheFileOps {
 public:
  void Close() {
    std::lock_guard<std::mutex> lk(mu_);
    closed_ = true;
  }
  void Open() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      closed_ = false;
    }
    cv_.notify_all();
  }
  ssize_t Write(int fd, const void* data, size_t size) override {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return !closed_; });
    lk.unlock();
    return ::write(fd, data, size);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
};

TEST(CacheFailure, FullWriteQueueDropsWithoutBlocking) {
  test::TempDir dir;
  const std::vector<Image> images = Images(1);
  GateOps ops;
  CacheOptions o = DiskOptions(dir / "c");
  o.write_queue_bytes = 2 * RecordBytes(images[0]);
  auto cache = MustOpen(o, 10, Fp(), &ops);
  ASSERT_TRUE(cache);
  ops.Close();  // the writer stalls on its first write
  for (int i = 0; i < 10; ++i) cache->Insert(i, images[0]);  // must not block
  EXPECT_EQ(cache->stats().dropped, 8);
  ops.Open();
  cache->Flush();
  for (int i = 0; i < 10; ++i) {
    Image out;
    int64_t bytes = 0;
    EXPECT_EQ(cache->Lookup(i, &out, &bytes), i < 2) << i;
  }
  EXPECT_EQ(cache->stats().disk_entries, 2);
  // Dropped samples can be offered again.
  cache->Insert(5, images[0]);
  cache->Flush();
  Image out;
  int64_t bytes = 0;
  EXPECT_TRUE(cache->Lookup(5, &out, &bytes));
}

TEST(CacheDisk, QueuedSampleHitsBeforeItIsWritten) {
  test::TempDir dir;
  const Image img = test::PatternImage(9, 7, 3, 5);
  GateOps ops;
  auto cache = MustOpen(DiskOptions(dir / "c"), 2, Fp(), &ops);
  ASSERT_TRUE(cache);
  ops.Close();
  cache->Insert(0, img);
  Image out;
  int64_t bytes = 0;
  ASSERT_TRUE(cache->Lookup(0, &out, &bytes));  // served from the write queue
  EXPECT_TRUE(SameImage(out, img));
  EXPECT_FALSE(img.shared());  // the queue holds its own copy
  EXPECT_EQ(bytes, int64_t(img.size_bytes()));
  EXPECT_EQ(cache->stats().disk_entries, 0);
  ops.Open();
  cache->Flush();
  EXPECT_EQ(cache->stats().disk_entries, 1);
  Image from_disk;
  ASSERT_TRUE(cache->Lookup(0, &from_disk, &bytes));
  EXPECT_NE(from_disk.data(), img.data());
  EXPECT_TRUE(SameImage(from_disk, img));
}

// ------------------------------------------------------------------------------------------

TEST(CacheAuto, SplitsBetweenMemoryAndDisk) {
  test::TempDir dir;
  std::vector<Image> images;
  for (int i = 0; i < 10; ++i) images.push_back(test::PatternImage(16, 16, 3, i));
  const int64_t size = int64_t(images[0].size_bytes());
  CacheOptions o = DiskOptions(dir / "c", CacheMode::kAuto);
  o.budget_bytes = 5 * size;
  auto cache = MustOpen(o, 10);
  ASSERT_TRUE(cache);
  for (int i = 0; i < 10; ++i) cache->Insert(i, images[size_t(i)]);
  cache->Flush();
  const CacheStats s = cache->stats();
  EXPECT_EQ(s.memory_entries, 5);
  EXPECT_EQ(s.memory_bytes, 5 * size);
  EXPECT_EQ(s.disk_entries, 5);
  EXPECT_EQ(s.dropped, 0);
  for (int i = 0; i < 10; ++i) {
    Image out;
    int64_t bytes = 0;
    ASSERT_TRUE(cache->Lookup(i, &out, &bytes)) << i;
    EXPECT_TRUE(SameImage(out, images[size_t(i)]));
    EXPECT_EQ(out.shared(), i < 5) << i;  // memory hits are views; disk hits are reads
  }
}

TEST(CacheAuto, WithoutAPathIsMemoryOnly) {
  CacheOptions o;
  o.mode = CacheMode::kAuto;
  const Image img = test::PatternImage(8, 8, 3);
  o.budget_bytes = int64_t(img.size_bytes());
  auto cache = MustOpen(o, 3);
  ASSERT_TRUE(cache);
  cache->Insert(0, img);
  cache->Insert(1, img);
  cache->Flush();
  Image out;
  int64_t bytes = 0;
  EXPECT_TRUE(cache->Lookup(0, &out, &bytes));
  EXPECT_FALSE(cache->Lookup(1, &out, &bytes));
  EXPECT_EQ(cache->stats().dropped, 1);
}

// ------------------------------------------------------------------------------------------

TEST(CacheOpen, PathThatIsAFileIsAnError) {
  test::TempDir dir;
  const std::string file = dir / "file";
  test::WriteText(file, "x");
  Result<std::unique_ptr<SampleCache>> r = SampleCache::Open(DiskOptions(file), 4, Fp());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(file), std::string::npos) << r.status().ToString();

  r = SampleCache::Open(DiskOptions(file + "/sub", CacheMode::kAuto), 4, Fp());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(file + "/sub"), std::string::npos) << r.status().ToString();
}

TEST(CacheOpen, DiskModeNeedsAPath) {
  CacheOptions o;
  o.mode = CacheMode::kDisk;
  EXPECT_FALSE(SampleCache::Open(o, 4, Fp()).ok());
}

TEST(CacheOpen, CreatesNestedFolders) {
  test::TempDir dir;
  const std::string path = dir / "a/b/c/";
  auto cache = MustOpen(DiskOptions(path), 4);
  ASSERT_TRUE(cache);
  EXPECT_GE(FileSize(dir / "a/b/c/flowfeed-cache.meta"), 1);
  EXPECT_EQ(FileSize(dir / "a/b/c/flowfeed-cache.data"), kFileHeaderBytes);
}

TEST(CacheOpen, SecondOpenOfAFolderInUseRunsWithoutDisk) {
  test::TempDir dir;
  const std::string path = dir / "c";
  auto first = MustOpen(DiskOptions(path), 4);
  ASSERT_TRUE(first);
  auto second = MustOpen(DiskOptions(path), 4);
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->stats().disk_disabled);
  EXPECT_TRUE(HasMessage(second->stats(), "disk cache disabled: " + path + ": in use"))
      << Messages(second->stats());
  EXPECT_FALSE(first->stats().disk_disabled);
  const Image img = test::PatternImage(4, 4, 3);
  second->Insert(0, img);
  first->Insert(0, img);
  first->Flush();
  Image out;
  int64_t bytes = 0;
  EXPECT_TRUE(first->Lookup(0, &out, &bytes));
  EXPECT_FALSE(second->Lookup(0, &out, &bytes));
}

// ------------------------------------------------------------------------------------------

TEST(CacheConcurrency, InsertAndLookupWhileTheWriterRuns) {
  test::TempDir dir;
  const int n = 200;
  std::vector<Image> images;
  for (int i = 0; i < n; ++i) images.push_back(test::PatternImage(12, 12, 3, uint32_t(i)));
  CacheOptions o = DiskOptions(dir / "c", CacheMode::kAuto);
  o.budget_bytes = 70 * int64_t((images[0].size_bytes() + 63) / 64 * 64);  // 64-byte slots
  o.commit_seconds = 0.002;  // commits run alongside
  auto cache = MustOpen(o, n);
  ASSERT_TRUE(cache);

  std::atomic<int> mismatches{0}, hits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(uint32_t(t) + 1);
      Image out;
      for (int k = 0; k < 10000; ++k) {
        const int i = int(rng() % n);
        if (rng() % 2) {
          cache->Insert(i, images[size_t(i)]);
        } else {
          int64_t bytes = 0;
          if (cache->Lookup(i, &out, &bytes)) {
            ++hits;
            if (!SameImage(out, images[size_t(i)]) || bytes != int64_t(out.size_bytes()))
              ++mismatches;
          }
        }
        if (k % 2500 == 2499) cache->Flush();
      }
    });
  for (auto& th : threads) th.join();
  cache->Flush();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_GT(hits.load(), 0);

  const CacheStats s = cache->stats();
  EXPECT_LE(s.memory_bytes, o.budget_bytes);
  EXPECT_EQ(s.memory_entries, 70);
  EXPECT_EQ(s.corrupt, 0);
  EXPECT_FALSE(s.disk_disabled);
  int held = 0;
  for (int i = 0; i < n; ++i) {
    Image out;
    int64_t bytes = 0;
    if (cache->Lookup(i, &out, &bytes)) {
      ++held;
      EXPECT_TRUE(SameImage(out, images[size_t(i)])) << i;
    }
  }
  EXPECT_EQ(held, s.memory_entries + s.disk_entries);
  cache.reset();

  // Everything held on disk was committed and is reused.
  auto again = MustOpen(DiskOptions(dir / "c", CacheMode::kAuto), n);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->stats().reused_entries, s.disk_entries);
  EXPECT_FALSE(HasMessage(again->stats(), "torn")) << Messages(again->stats());
}

TEST(CacheConcurrency, CorruptRecordsFoundAndReplacedConcurrently) {
  test::TempDir dir;
  const std::string path = dir / "c";
  const int n = 100;
  std::vector<Image> images;
  for (int i = 0; i < n; ++i) images.push_back(test::PatternImage(10, 10, 3, uint32_t(i)));
  const int64_t record = RecordBytes(images[0]);
  {
    auto cache = MustOpen(DiskOptions(path), n);
    ASSERT_TRUE(cache);
    for (int i = 0; i < n; ++i) cache->Insert(i, images[size_t(i)]);
  }
  std::vector<uint8_t> bytes = test::ReadBytes(path + "/flowfeed-cache.data");
  ASSERT_EQ(int64_t(bytes.size()), kFileHeaderBytes + n * record);
  for (int i = 0; i < n; i += 2)
    bytes[size_t(kFileHeaderBytes + i * record + kHeaderBytes + 5)] ^= 0xFF;
  test::WriteBytes(path + "/flowfeed-cache.data", bytes);

  CacheOptions o = DiskOptions(path);
  o.commit_seconds = 0.002;
  auto cache = MustOpen(o, n);
  ASSERT_TRUE(cache);
  ASSERT_EQ(cache->stats().reused_entries, n);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(uint32_t(t) + 11);
      Image out;
      for (int k = 0; k < 4000; ++k) {
        const int i = int(rng() % n);
        int64_t got = 0;
        if (cache->Lookup(i, &out, &got)) {
          if (!SameImage(out, images[size_t(i)])) ++mismatches;
        } else {
          cache->Insert(i, images[size_t(i)]);
        }
      }
    });
  for (auto& th : threads) th.join();
  cache->Flush();
  EXPECT_EQ(mismatches.load(), 0);
  for (int i = 0; i < n; ++i) {
    Image out;
    int64_t got = 0;
    if (!cache->Lookup(i, &out, &got)) cache->Insert(i, images[size_t(i)]);
  }
  cache->Flush();
  EXPECT_EQ(cache->stats().corrupt, n / 2);  // each bad record found exactly once
  for (int i = 0; i < n; ++i) {
    Image out;
    int64_t got = 0;
    ASSERT_TRUE(cache->Lookup(i, &out, &got)) << i;
    EXPECT_TRUE(SameImage(out, images[size_t(i)])) << i;
  }
  EXPECT_EQ(cache->stats().disk_entries, n);
}

}  // namespace
}  // namespace flowfeed
