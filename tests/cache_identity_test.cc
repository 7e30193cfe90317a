// What the disk cache's key must see: new code behind the same plugin and stage names, a file
// replaced by another of the same size with its mtime set back, and another cache's files
// copied into its folder. Each run is a separate `flowfeed bench` process, as a user's runs are
// (a process cannot load two builds of one plugin path).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace flowfeed {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

struct BenchRun {
  int code = -1;
  std::string output;
  std::string digest;  // epoch 1's batch digest
  std::vector<std::string> digests;  // every epoch's
};

BenchRun Bench(const TempDir& dir, const std::string& args, int epochs = 1) {
  BenchRun r;
  const test::ShellRun run = test::Shell(std::string(FLOWFEED_BINARY) + " bench " + (dir / "c.yaml") +
                                         " --epochs " + std::to_string(epochs) + " --report " +
                                         (dir / "r.json") + " " + args);
  r.code = run.code;
  r.output = run.output;
  if (r.code == 0) {
    std::ifstream in(dir / "r.json");
    const nlohmann::json j = nlohmann::json::parse(in);
    for (const auto& e : j["epochs"]) r.digests.push_back(e["batch_digest"].get<std::string>());
    r.digest = r.digests.at(0);
  }
  return r;
}

// Copies `plugin` over dir/plugin.so by a rename, as an install of a rebuilt plugin does.
void Install(const TempDir& dir, const std::string& plugin) {
  fs::copy_file(std::string(FLOWFEED_TEST_PLUGIN_DIR) + "/" + plugin + ".so", dir / "next.so",
                fs::copy_options::overwrite_existing);
  fs::rename(dir / "next.so", dir / "plugin.so");
}

TEST(CacheIdentity, ARebuiltPluginIsNewCodeForTheCache) {
  TempDir dir;
  test::WriteIdx(dir / "i.idx", dir / "l.idx", 64, 6, 6);
  test::WriteText(dir / "c.yaml", "plugins: [" + dir / "plugin.so" +
                                      "]\n"
                                      "source: {type: idx, root: " +
                                      dir.path() +
                                      ", images: i.idx, labels: l.idx}\n"
                                      "pipeline: [{type: test_invert}]\n"
                                      "batch: {size: 8, dtype: uint8}\n"
                                      "cache: {mode: disk, path: " +
                                      dir / "cache" + ", after: test_invert}\n");
  Install(dir, "good");
  const BenchRun first = Bench(dir, "");
  ASSERT_EQ(first.code, 0) << first.output;

  // The same names, version and parameters; different pixels.
  Install(dir, "good_rebuilt");
  const BenchRun uncached = Bench(dir, "--set cache.mode=off");
  ASSERT_EQ(uncached.code, 0) << uncached.output;
  ASSERT_NE(uncached.digest, first.digest) << "the rebuilt plugin should give other pixels";
  const BenchRun second = Bench(dir, "");
  ASSERT_EQ(second.code, 0) << second.output;
  EXPECT_EQ(second.digest, uncached.digest) << "the cache served the old plugin's output\n"
                                            << second.output;
  EXPECT_NE(second.output.find("plugin code changed"), std::string::npos) << second.output;

  // Unchanged code keeps the cache.
  const BenchRun third = Bench(dir, "");
  ASSERT_EQ(third.code, 0) << third.output;
  EXPECT_EQ(third.digest, uncached.digest);
  EXPECT_EQ(third.output.find("rebuilding"), std::string::npos) << third.output;
}

TEST(CacheIdentity, AFileReplacedWithItsMtimeSetBackIsSeen) {
  TempDir dir;
  test::MakeImageFolder(dir / "images", 2, 4);
  test::WriteText(dir / "c.yaml", "source: {type: image_folder, root: " + dir / "images" +
                                      "}\n"
                                      "pipeline: [{type: decode}, {type: resize, size: [8, 8]}]\n"
                                      "batch: {size: 4, dtype: uint8}\n"
                                      "shuffle: false\n"
                                      "cache: {mode: disk, path: " +
                                      dir / "cache" + ", after: resize}\n");
  const BenchRun first = Bench(dir, "");
  ASSERT_EQ(first.code, 0) << first.output;

  // Another image of exactly the same size put in place of one, by a rename (a new inode and
  // ctime), with the old mtime put back: the same JPEG with its first quantisation step one
  // larger decodes to other pixels.
  std::string victim;
  for (const auto& e : fs::recursive_directory_iterator(dir / "images"))
    if (e.is_regular_file() && victim.empty()) victim = e.path();
  std::vector<uint8_t> bytes = test::ReadBytes(victim);
  size_t dqt = 0;
  for (size_t i = 0; i + 5 < bytes.size(); ++i)
    if (bytes[i] == 0xFF && bytes[i + 1] == 0xDB) {
      dqt = i;
      break;
    }
  ASSERT_GT(dqt, 0u);
  uint8_t& step = bytes[dqt + 5];  // FF DB, length (2), precision and table id, then the table
  step = step == 255 ? 254 : uint8_t(step + 1);
  const fs::file_time_type mtime = fs::last_write_time(victim);
  test::WriteBytes(victim + ".new", bytes);
  fs::rename(victim + ".new", victim);
  fs::last_write_time(victim, mtime);

  const BenchRun uncached = Bench(dir, "--set cache.mode=off");
  ASSERT_EQ(uncached.code, 0) << uncached.output;
  ASSERT_NE(uncached.digest, first.digest);
  const BenchRun second = Bench(dir, "");
  ASSERT_EQ(second.code, 0) << second.output;
  EXPECT_EQ(second.digest, uncached.digest) << "stale pixels served\n" << second.output;
}

// A plugin stage that writes into the image it is handed without checking Image::shared(): on a
// memory-cache hit that image is a view of the cache, and each epoch would change what the next
// one is served. The engine hands plugin stages a private copy of a shared image.
TEST(CacheIdentity, APluginWritingIntoACachedImageCannotChangeTheCache) {
  TempDir dir;
  test::WriteIdx(dir / "i.idx", dir / "l.idx", 48, 6, 6);
  test::WriteText(dir / "c.yaml", "plugins: [" + std::string(FLOWFEED_TEST_PLUGIN_DIR) +
                                      "/scribble.so, " FLOWFEED_TEST_PLUGIN_DIR "/good.so]\n"
                                      "source: {type: idx, root: " + dir.path() +
                                      ", images: i.idx, labels: l.idx}\n"
                                      "pipeline: [{type: test_invert}, {type: test_scribble}]\n"
                                      "batch: {size: 8, dtype: uint8}\n"
                                      "cache: {mode: memory, after: test_invert}\n");
  const BenchRun cached = Bench(dir, "", 3);
  ASSERT_EQ(cached.code, 0) << cached.output;
  const BenchRun uncached = Bench(dir, "--set cache.mode=off", 3);
  ASSERT_EQ(uncached.code, 0) << uncached.output;
  ASSERT_EQ(cached.digests.size(), 3u);
  EXPECT_EQ(cached.digests, uncached.digests) << cached.output;
}

// Two disk caches of one image folder (the same sample count) for two configurations that
// differ in one parameter, so in their pixels: A (nearest) at dir/a, B (area) at dir/b; then
// `copy` names the files of B's cache copied into A's folder, and B's configuration runs on A's
// folder. Issue 21: with B's meta file there, A's records were served as B's (only the meta file
// held the fingerprint).
struct CopiedCache {
  TempDir dir;
  BenchRun a, b_uncached, b_on_a;
  std::string a_path = dir / "a";
  explicit CopiedCache(const std::vector<std::string>& copy) {
    test::MakeImageFolder(dir / "images", 2, 4);
    test::WriteText(dir / "c.yaml",
                    "source: {type: image_folder, root: " + dir / "images" +
                        "}\n"
                        "pipeline: [{type: decode}, {type: resize, size: [8, 8], interpolation: "
                        "nearest}]\n"
                        "batch: {size: 4, dtype: uint8}\n"
                        "shuffle: false\n"
                        "cache: {mode: disk, path: " +
                        a_path + ", after: resize}\n");
    const std::string b_config = "--set pipeline.1.interpolation=area";
    a = Bench(dir, "");
    const BenchRun b = Bench(dir, b_config + " --set cache.path=" + dir / "b");
    b_uncached = Bench(dir, b_config + " --set cache.mode=off");
    for (const std::string& name : copy)
      fs::copy_file(dir / "b/" + name, a_path + "/" + name, fs::copy_options::overwrite_existing);
    if (a.code == 0 && b.code == 0 && b_uncached.code == 0) b_on_a = Bench(dir, b_config);
  }
};

// B's configuration on A's folder got B's own batches, and its output says the cache was
// rebuilt because `why`.
void ExpectRebuiltFor(const CopiedCache& c, const std::string& why) {
  ASSERT_EQ(c.a.code, 0) << c.a.output;
  ASSERT_EQ(c.b_uncached.code, 0) << c.b_uncached.output;
  ASSERT_NE(c.a.digest, c.b_uncached.digest) << "the two configurations should differ in pixels";
  ASSERT_EQ(c.b_on_a.code, 0) << c.b_on_a.output;
  EXPECT_EQ(c.b_on_a.digest, c.b_uncached.digest) << "the other cache's pixels were served\n"
                                                  << c.b_on_a.output;
  EXPECT_NE(c.b_on_a.output.find("rebuilding " + c.a_path + ": " + why), std::string::npos)
      << c.b_on_a.output;
  EXPECT_NE(c.b_on_a.output.find("the cache's files do not belong to its meta file"),
            std::string::npos)
      << c.b_on_a.output;
}

TEST(CacheIdentity, AMetaFileCopiedFromAnotherCacheNeverServesItsPixels) {
  ExpectRebuiltFor(CopiedCache({"flowfeed-cache.meta"}),
                   "flowfeed-cache.index was written for fingerprint ");
}

TEST(CacheIdentity, AnIndexCopiedFromAnotherCacheNeverServesItsPixels) {
  ExpectRebuiltFor(CopiedCache({"flowfeed-cache.meta", "flowfeed-cache.index"}),
                   "flowfeed-cache.data was written for fingerprint ");
}

}  // namespace
}  // namespace flowfeed
