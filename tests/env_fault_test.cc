// Fault injection into every durable writer that runs in-process without LibTorch: the file
// layer itself (what reports use), WebDataset shards and the cache's meta file. Each case breaks
// one call (a full disk with a short write, a failing fsync, a failing rename, a failing folder
// sync) and checks the error names the file and that the previous good file is left intact,
// with no temporary file left behind to be mistaken for a good one.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "fault_env.h"
#include "flowfeed/cache.h"
#include "flowfeed/env.h"
#include "flowfeed/source.h"
#include "flowfeed/shards.h"
#include "test_util.h"
#include "flowfeed/util/file.h"

namespace flowfeed {
namespace {

using test::FaultEnv;
using test::TempDir;

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// The files in `dir` whose name contains ".tmp".
std::vector<std::string> TempFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (Contains(e.path().filename().string(), ".tmp")) out.push_back(e.path().string());
  return out;
}

// ------------------------------------------------------------------------------------------
// The file layer (reports, pages and traces are written with WriteFileAtomically).

class AtomicWrite : public ::testing::TestWithParam<Durability> {};

TEST_P(AtomicWrite, AFullDiskKeepsTheOldFile) {
  TempDir dir;
  const std::string path = dir / "report.json";
  ASSERT_OK(WriteFileAtomically(nullptr, path, "old", GetParam()));
  FaultEnv env;
  env.write_budget = 5;  // the new text is cut short after 5 bytes, then ENOSPC
  const Status s = WriteFileAtomically(&env, path, std::string(100, 'n'), GetParam());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_TRUE(Contains(s.message(), path + ".tmp: No space left on device")) << s.message();
  EXPECT_EQ(test::ReadText(path), "old");
  EXPECT_TRUE(TempFiles(dir.path()).empty());
}

TEST_P(AtomicWrite, AFailedRenameKeepsTheOldFile) {
  TempDir dir;
  const std::string path = dir / "report.json";
  ASSERT_OK(WriteFileAtomically(nullptr, path, "old", GetParam()));
  FaultEnv env;
  env.fail_rename = true;
  const Status s = WriteFileAtomically(&env, path, "new", GetParam());
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(), path + ": ")) << s.message();
  EXPECT_EQ(test::ReadText(path), "old");
  EXPECT_TRUE(TempFiles(dir.path()).empty());
}

INSTANTIATE_TEST_SUITE_P(Durabilities, AtomicWrite,
                         ::testing::Values(Durability::kNone, Durability::kFile,
                                           Durability::kFileAndDir));

TEST(AtomicWrite, AFailedSyncKeepsTheOldFile) {
  TempDir dir;
  const std::string path = dir / "model.pt";
  ASSERT_OK(WriteFileAtomically(nullptr, path, "old", Durability::kFile));
  FaultEnv env;
  env.fail_sync = true;
  const Status s = WriteFileAtomically(&env, path, "new", Durability::kFile);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(), path + ".tmp: Input/output error")) << s.message();
  EXPECT_EQ(test::ReadText(path), "old");
  EXPECT_TRUE(TempFiles(dir.path()).empty());
  EXPECT_EQ(env.renames, 0);  // nothing unsynced was renamed into place
}

TEST(AtomicWrite, DurabilityDecidesWhatIsSynced) {
  TempDir dir;
  FaultEnv env;
  ASSERT_OK(WriteFileAtomically(&env, dir / "a", "x", Durability::kNone));
  EXPECT_EQ(env.syncs, 0);
  EXPECT_EQ(env.dir_syncs, 0);
  ASSERT_OK(WriteFileAtomically(&env, dir / "b", "x", Durability::kFile));
  EXPECT_EQ(env.syncs, 1);
  EXPECT_EQ(env.dir_syncs, 0);
  ASSERT_OK(WriteFileAtomically(&env, dir / "c", "x", Durability::kFileAndDir));
  EXPECT_EQ(env.syncs, 2);
  EXPECT_EQ(env.dir_syncs, 1);
}

TEST(AtomicWrite, AFailedFolderSyncIsReportedNamingTheFolder) {
  TempDir dir;
  FaultEnv env;
  env.fail_sync_dir = true;
  ASSERT_OK(WriteFileAtomically(&env, dir / "a", "x", Durability::kFile));
  const Status s = WriteFileAtomically(&env, dir / "b", "x", Durability::kFileAndDir);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(), dir.path() + ": Input/output error")) << s.message();
}

TEST(AtomicWrite, TheDefaultEnvCanBeReplacedForAWhile) {
  TempDir dir;
  FaultEnv env;
  env.fail_rename = true;
  {
    ScopedDefaultEnv scoped(&env);
    EXPECT_EQ(Env::Default(), &env);
    EXPECT_FALSE(WriteFileAtomically(nullptr, dir / "a", "x", Durability::kNone).ok());
  }
  EXPECT_NE(Env::Default(), &env);
  EXPECT_OK(WriteFileAtomically(nullptr, dir / "a", "x", Durability::kNone));
}

TEST(FileLayer, JoinPathHasOneRuleForAbsolutePaths) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
  EXPECT_EQ(JoinPath("a", ""), "a");
  EXPECT_EQ(JoinPath("a", "/abs/b"), "/abs/b");
  EXPECT_EQ(DirName("a.txt"), ".");
  EXPECT_EQ(DirName("/a.txt"), "/");
  EXPECT_EQ(DirName("x/y/a.txt"), "x/y");
}

TEST(FileLayer, ReadFileNamesWhatIsMissing) {
  TempDir dir;
  std::string text;
  const Status s = ReadFile(dir / "nope", &text);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s.message(), dir / "nope")) << s.message();
  test::WriteText(dir / "yes", "contents");
  ASSERT_OK(ReadFile(dir / "yes", &text));
  EXPECT_EQ(text, "contents");
}

// ------------------------------------------------------------------------------------------
// Shards: a failure while rewriting a shard keeps the shard of the earlier run.

struct ShardRun {
  Status status;
  std::string log;
};

ShardRun WriteShardsOf(const std::string& photos, const std::string& out) {
  SourceOptions so;
  so.root = photos;
  auto folder = OpenImageFolder(so);
  EXPECT_TRUE(folder.ok()) << folder.status().ToString();
  if (!folder.ok()) return {folder.status(), ""};
  ShardWriterOptions w;
  w.out_dir = out;
  w.samples_per_shard = 4;
  w.overwrite = true;
  std::ostringstream log;
  std::string pattern;
  Status s = WriteShards(*folder.value(), w, log, &pattern);
  return {s, log.str()};
}

void ExpectShardFailureKeepsTheOldShards(FaultEnv* env, const std::string& error_part) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 2, 4);
  ASSERT_OK(WriteShardsOf(dir / "photos", dir / "out").status);
  const std::string first = dir / "out/shard-000000.tar";
  const std::vector<uint8_t> before = test::ReadBytes(first);
  test::MakeImageFolder(dir / "photos", 2, 4, /*seed=*/9);  // new pictures: different shards
  ShardRun run;
  {
    ScopedDefaultEnv scoped(env);
    run = WriteShardsOf(dir / "photos", dir / "out");
  }
  ASSERT_FALSE(run.status.ok());
  EXPECT_EQ(run.status.code(), StatusCode::kIoError);
  EXPECT_TRUE(Contains(run.status.message(), error_part)) << run.status.message();
  EXPECT_EQ(test::ReadBytes(first), before);  // the earlier run's shard, untouched
  EXPECT_TRUE(TempFiles(dir / "out").empty());
}

TEST(ShardFault, AFullDiskKeepsTheOldShard) {
  FaultEnv env("shard-000000");
  env.write_budget = 1000;
  ExpectShardFailureKeepsTheOldShards(&env, ".shard-000000.tar.tmp: No space left on device");
}

TEST(ShardFault, AFailedSyncKeepsTheOldShard) {
  FaultEnv env("shard-000000");
  env.fail_sync = true;
  ExpectShardFailureKeepsTheOldShards(&env, ".shard-000000.tar.tmp: Input/output error");
  EXPECT_EQ(env.renames, 0);
}

TEST(ShardFault, AFailedRenameKeepsTheOldShard) {
  FaultEnv env("shard-000000");
  env.fail_rename = true;
  ExpectShardFailureKeepsTheOldShards(&env, "/shard-000000.tar: ");
}

TEST(ShardFault, AFailedFolderSyncFailsTheRun) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 2, 4);
  FaultEnv env;
  env.fail_sync_dir = true;
  ShardRun run;
  {
    ScopedDefaultEnv scoped(&env);
    run = WriteShardsOf(dir / "photos", dir / "out");
  }
  ASSERT_FALSE(run.status.ok());
  EXPECT_TRUE(Contains(run.status.message(), dir / "out: Input/output error"))
      << run.status.message();
}

// ------------------------------------------------------------------------------------------
// Cache meta file: written at open; a failure disables the disk store and says which file.

CacheOptions DiskCache(const std::string& path) {
  CacheOptions o;
  o.mode = CacheMode::kDisk;
  o.path = path;
  return o;
}

CacheFingerprint Fingerprint(const std::string& stages) {
  CacheFingerprint fp;
  fp.parts = {{"format", "1"}, {"stages", stages}};
  return fp;
}

TEST(CacheMetaFault, AFailedRenameKeepsTheOldFingerprint) {
  TempDir dir;
  const std::string path = dir / "c";
  ASSERT_OK(SampleCache::Open(DiskCache(path), 4, Fingerprint("a")));
  const std::string meta = path + "/flowfeed-cache.meta";
  const std::string before = test::ReadText(meta);
  FaultEnv env("flowfeed-cache.meta");
  env.fail_rename = true;
  auto cache = SampleCache::Open(DiskCache(path), 4, Fingerprint("b"), &env);
  ASSERT_OK(cache);
  const CacheStats s = cache.value()->stats();
  EXPECT_TRUE(s.disk_disabled);
  bool named = false;
  for (const std::string& m : s.messages) named |= Contains(m, "disk cache disabled: " + path) &&
                                                   Contains(m, meta + ": ");
  EXPECT_TRUE(named) << ::testing::PrintToString(s.messages);
  EXPECT_TRUE(TempFiles(path).empty());
  // The rebuild started by removing the old meta file: nothing claims the (emptied) records.
  EXPECT_FALSE(std::filesystem::exists(meta)) << before;
  EXPECT_TRUE(StoredCacheFingerprint(path).parts.empty());
}

TEST(CacheMetaFault, AFullDiskLeavesNoHalfWrittenMeta) {
  TempDir dir;
  const std::string path = dir / "c";
  FaultEnv env("flowfeed-cache.meta");
  env.write_budget = 10;
  auto cache = SampleCache::Open(DiskCache(path), 4, Fingerprint("a"), &env);
  ASSERT_OK(cache);
  const CacheStats s = cache.value()->stats();
  EXPECT_TRUE(s.disk_disabled);
  bool named = false;
  for (const std::string& m : s.messages)
    named |= Contains(m, path + "/flowfeed-cache.meta.tmp: No space left on device");
  EXPECT_TRUE(named) << ::testing::PrintToString(s.messages);
  EXPECT_FALSE(std::filesystem::exists(path + "/flowfeed-cache.meta"));
  EXPECT_TRUE(TempFiles(path).empty());
}

}  // namespace
}  // namespace flowfeed
