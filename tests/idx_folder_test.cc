// IDX files written as a PNG image folder (the README's main job trains on Fashion-MNIST this
// way): pixels and labels survive exactly, a complete folder is reused, an interrupted one is
// redone, and bad input fails naming the file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "codec/codec.h"
#include "flowfeed/source.h"
#include "flowfeed/idx_folder.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

IdxFolderOptions SmallIdx(const TempDir& dir) {
  test::WriteIdx(dir / "idx/tr-img.gz", dir / "idx/tr-lab.gz", 23, 5, 6);
  test::WriteIdx(dir / "idx/te-img", dir / "idx/te-lab", 7, 5, 6);  // not gzipped
  IdxFolderOptions o = FashionMnistFolder(dir / "idx", dir / "out");
  o.splits = {{"train", "tr-img.gz", "tr-lab.gz"}, {"test", "te-img", "te-lab"}};
  o.threads = 2;
  return o;
}

std::unique_ptr<Source> Open(SourceOptions so) {
  Result<std::unique_ptr<Source>> s = OpenSource(so);
  EXPECT_OK(s);
  return s.ok() ? std::move(s.value()) : nullptr;
}

TEST(IdxFolder, PngsDecodeToTheIdxPixelsAndLabels) {
  TempDir dir;
  IdxFolderOptions o = SmallIdx(dir);
  std::ostringstream log;
  ASSERT_OK(WriteIdxAsImageFolder(o, log));
  for (const IdxSplit& split : o.splits) {
    SourceOptions idx;
    idx.type = "idx";
    idx.root = o.idx_root;
    idx.images = split.images;
    idx.labels = split.labels;
    std::unique_ptr<Source> want = Open(idx);
    SourceOptions folder;
    folder.root = o.out_dir + "/" + split.name;
    std::unique_ptr<Source> got = Open(folder);
    ASSERT_TRUE(want && got);
    ASSERT_EQ(got->size(), want->size());
    ASSERT_EQ(got->classes().size(), 10u);  // the folder's classes are numbered as the labels
    EXPECT_EQ(got->classes()[3], "3_dress");
    for (int64_t i = 0; i < got->size(); ++i) {
      Sample g, w;
      ASSERT_OK(got->Read(i, &g));
      // <class>/<idx index>.png: the file names the IDX record it came from.
      const std::string key(got->key(i));
      const int64_t index = std::stoll(fs::path(key).stem().string());
      ASSERT_OK(want->Read(index, &w));
      EXPECT_EQ(got->label(i), want->label(index)) << key;
      Image pixels;
      ASSERT_OK(DecodeImage(g.encoded.data(), g.encoded.size(), DecodeOptions{ColorMode::kGray},
                            key, &pixels));
      ASSERT_EQ(pixels.size_bytes(), w.image.size_bytes()) << key;
      EXPECT_EQ(std::memcmp(pixels.data(), w.image.data(), pixels.size_bytes()), 0) << key;
    }
  }
  EXPECT_FALSE(fs::exists(o.out_dir + ".partial"));
}

TEST(IdxFolder, ACompleteFolderIsReusedAnInterruptedOneRedone) {
  TempDir dir;
  IdxFolderOptions o = SmallIdx(dir);
  std::ostringstream log;
  ASSERT_OK(WriteIdxAsImageFolder(o, log));
  const std::string one = o.out_dir + "/train/1_trouser/00001.png";
  const auto written = fs::last_write_time(one);
  std::ostringstream again;
  ASSERT_OK(WriteIdxAsImageFolder(o, again));
  EXPECT_NE(again.str().find("reusing"), std::string::npos) << again.str();
  EXPECT_EQ(fs::last_write_time(one), written);

  // A run killed mid-way leaves only the .partial folder: the next run starts it again.
  fs::remove_all(o.out_dir);
  fs::create_directories(o.out_dir + ".partial/train/0_tshirt_top");
  test::WriteBytes(o.out_dir + ".partial/train/0_tshirt_top/junk.png", {1, 2, 3});
  std::ostringstream redo;
  ASSERT_OK(WriteIdxAsImageFolder(o, redo));
  EXPECT_EQ(redo.str().find("reusing"), std::string::npos);
  EXPECT_TRUE(fs::exists(one));
  EXPECT_FALSE(fs::exists(o.out_dir + "/train/0_tshirt_top/junk.png"));
  EXPECT_FALSE(fs::exists(o.out_dir + ".partial"));
}

// Every file's bytes, keyed by its path under `root`.
std::map<std::string, std::vector<uint8_t>> Tree(const std::string& root) {
  std::map<std::string, std::vector<uint8_t>> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file())
      files[fs::relative(e.path(), root).string()] = test::ReadBytes(e.path().string());
  return files;
}

TEST(IdxFolder, SameBytesWhateverTheThreadCount) {
  TempDir dir;
  IdxFolderOptions o = SmallIdx(dir);
  std::ostringstream log;
  o.threads = 1;
  ASSERT_OK(WriteIdxAsImageFolder(o, log));
  const auto one = Tree(o.out_dir);
  o.threads = 3;
  o.overwrite = true;
  ASSERT_OK(WriteIdxAsImageFolder(o, log));
  EXPECT_EQ(log.str().find("reusing"), std::string::npos) << log.str();
  const auto three = Tree(o.out_dir);
  EXPECT_EQ(one.size(), 23u + 7u + 1u);  // the PNGs and the marker
  EXPECT_TRUE(one == three);
}

TEST(IdxFolder, MissingOrTruncatedIdxFailsNamingTheFile) {
  TempDir dir;
  IdxFolderOptions o = SmallIdx(dir);
  fs::remove(dir / "idx/te-lab");
  std::ostringstream log;
  Status s = WriteIdxAsImageFolder(o, log);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("te-lab"), std::string::npos) << s.ToString();
  EXPECT_FALSE(fs::exists(o.out_dir));  // nothing half-written in place

  o = SmallIdx(dir);
  std::vector<uint8_t> bytes = test::ReadBytes(dir / "idx/tr-img.gz");
  bytes.resize(bytes.size() / 2);
  test::WriteBytes(dir / "idx/tr-img.gz", bytes);
  s = WriteIdxAsImageFolder(o, log);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_NE(s.message().find("tr-img.gz"), std::string::npos) << s.ToString();
  EXPECT_FALSE(fs::exists(o.out_dir));

  // Cut inside the pixels of an uncompressed file: the header promises more than is there.
  o = SmallIdx(dir);
  bytes = test::ReadBytes(dir / "idx/te-img");
  bytes.resize(bytes.size() - 7);
  test::WriteBytes(dir / "idx/te-img", bytes);
  s = WriteIdxAsImageFolder(o, log);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_NE(s.message().find("te-img"), std::string::npos) << s.ToString();
  EXPECT_FALSE(fs::exists(o.out_dir));
}

TEST(IdxFolder, AFolderItDidNotWriteIsNeverReplaced) {
  TempDir dir;
  IdxFolderOptions o = SmallIdx(dir);
  fs::create_directories(o.out_dir);
  test::WriteBytes(o.out_dir + "/mine.txt", {'h', 'i'});
  for (bool overwrite : {false, true}) {
    o.overwrite = overwrite;
    std::ostringstream log;
    Status s = WriteIdxAsImageFolder(o, log);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_TRUE(fs::exists(o.out_dir + "/mine.txt"));
  }
}

}  // namespace
}  // namespace flowfeed
