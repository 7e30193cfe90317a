// Tests of BuildPhotoDataset (the `flowfeed dataset photos` builder).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "codec/codec.h"
#include "flowfeed/photo_dataset.h"
#include "flowfeed/source.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace flowfeed {
namespace {

using test::ReadBytes;
using test::TempDir;

// Three ~800x600 "photos": two JPEGs and a PNG, with the names the classes come from.
void MakePhotos(const std::string& dir) {
  test::WriteJpeg(dir + "/nature/Sunset Beach.JPG", test::PatternImage(600, 800, 3, 1));
  test::WriteJpeg(dir + "/nature/deeper/forest.jpeg", test::PatternImage(640, 820, 3, 2));
  test::WritePng(dir + "/abstract/Waves.png", test::PatternImage(580, 790, 3, 3));
  test::WriteText(dir + "/abstract/notes.txt", "not a photo");
  test::WriteText(dir + "/abstract/.hidden.jpg", "not a photo either");
}

PhotoDatasetOptions SmallOptions(const std::string& source, const std::string& out) {
  PhotoDatasetOptions o;
  o.source_dir = source;
  o.out_dir = out;
  o.count = 24;
  o.seed = 7;
  o.min_short_side = 100;
  o.max_short_side = 160;
  o.quality = 85;
  return o;
}

// Relative path -> bytes of every file under root (hidden files included).
std::map<std::string, std::vector<uint8_t>> Files(const std::string& root) {
  std::map<std::string, std::vector<uint8_t>> out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file())
      out[fs::relative(e.path(), root).string()] = ReadBytes(e.path().string());
  return out;
}

std::map<std::string, std::vector<uint8_t>> Jpegs(const std::string& root) {
  auto all = Files(root);
  for (auto it = all.begin(); it != all.end();) {
    if (it->first.size() < 4 || it->first.compare(it->first.size() - 4, 4, ".jpg") != 0)
      it = all.erase(it);
    else
      ++it;
  }
  return all;
}

TEST(Dataset, BuildsClassFoldersOfDecodableJpegs) {
  TempDir tmp;
  MakePhotos(tmp / "src");
  const PhotoDatasetOptions o = SmallOptions(tmp / "src", tmp / "out");
  std::ostringstream log;
  ASSERT_OK(BuildPhotoDataset(o, log));
  EXPECT_NE(log.str().find("photos: 24/24 images"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("wrote 24 images in 3 classes"), std::string::npos) << log.str();

  std::vector<std::string> classes;
  for (const auto& e : fs::directory_iterator(tmp / "out"))
    if (e.is_directory()) classes.push_back(e.path().filename().string());
  std::sort(classes.begin(), classes.end());
  EXPECT_EQ(classes, (std::vector<std::string>{"forest", "sunset_beach", "waves"}));

  const auto files = Jpegs(tmp / "out");
  ASSERT_EQ(files.size(), 24u);
  std::map<std::string, int> per_class;
  for (const auto& [rel, bytes] : files) {
    const std::string cls = rel.substr(0, rel.find('/'));
    ++per_class[cls];
    // out/<class>/<class>_00042.jpg
    EXPECT_EQ(rel.rfind(cls + "/" + cls + "_0000", 0), 0u) << rel;
    Image img;
    DecodeOptions d;
    ASSERT_OK(DecodeImage(bytes.data(), bytes.size(), d, rel, &img));
    ASSERT_EQ(img.channels(), 3);
    const int short_side = std::min(img.height(), img.width());
    const int long_side = std::max(img.height(), img.width());
    EXPECT_GE(short_side, o.min_short_side) << rel;
    EXPECT_LE(short_side, o.max_short_side) << rel;
    EXPECT_LE(long_side, short_side * 4 / 3 + 2) << rel;  // aspect ratio within [3/4, 4/3]
  }
  for (const auto& [cls, n] : per_class) EXPECT_EQ(n, 8) << cls;
  // No temporary files left behind.
  for (const auto& [rel, bytes] : Files(tmp / "out"))
    EXPECT_EQ(rel.find(".tmp"), std::string::npos) << rel;

  // And it is what an image_folder source reads.
  SourceOptions so;
  so.type = "image_folder";
  so.root = tmp / "out";
  auto src = OpenSource(so);
  ASSERT_OK(src);
  EXPECT_EQ((*src)->size(), 24);
  EXPECT_EQ((*src)->classes(), classes);
}

TEST(Dataset, SameSeedGivesIdenticalFilesOtherSeedDiffers) {
  TempDir tmp;
  MakePhotos(tmp / "src");
  PhotoDatasetOptions o = SmallOptions(tmp / "src", tmp / "a");
  std::ostringstream log;
  ASSERT_OK(BuildPhotoDataset(o, log));
  o.out_dir = tmp / "b";
  o.threads = 1;  // the thread count must not matter
  ASSERT_OK(BuildPhotoDataset(o, log));
  const auto a = Jpegs(tmp / "a");
  const auto b = Jpegs(tmp / "b");
  ASSERT_EQ(a.size(), 24u);
  EXPECT_TRUE(a == b) << "same seed, different files";

  o.out_dir = tmp / "c";
  o.seed = 8;
  ASSERT_OK(BuildPhotoDataset(o, log));
  const auto c = Jpegs(tmp / "c");
  ASSERT_EQ(c.size(), 24u);
  int same = 0;
  for (const auto& [rel, bytes] : a) same += (c.count(rel) && c.at(rel) == bytes) ? 1 : 0;
  EXPECT_EQ(same, 0) << "a different seed should give different images";
}

TEST(Dataset, MissingSourceIsNotFound) {
  TempDir tmp;
  std::ostringstream log;
  Status s = BuildPhotoDataset(SmallOptions(tmp / "nope", tmp / "out"), log);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find(tmp / "nope"), std::string::npos) << s.ToString();

  // A folder without photos.
  test::WriteText(tmp / "empty/readme.txt", "x");
  s = BuildPhotoDataset(SmallOptions(tmp / "empty", tmp / "out"), log);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_FALSE(fs::exists(tmp / "out"));  // nothing made before the checks
}

TEST(Dataset, NonEmptyOutDirNeedsOverwrite) {
  TempDir tmp;
  MakePhotos(tmp / "src");
  test::WriteText(tmp / "out/precious.txt", "keep me");
  PhotoDatasetOptions o = SmallOptions(tmp / "src", tmp / "out");
  std::ostringstream log;
  Status s = BuildPhotoDataset(o, log);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("not empty"), std::string::npos) << s.ToString();
  EXPECT_EQ(Files(tmp / "out").size(), 1u);

  // overwrite into a folder this tool did not make: written into, nothing removed.
  o.overwrite = true;
  ASSERT_OK(BuildPhotoDataset(o, log));
  EXPECT_TRUE(fs::exists(tmp / "out/precious.txt"));
  EXPECT_EQ(Jpegs(tmp / "out").size(), 24u);

  // An empty folder is fine without overwrite; a second build over a first one replaces it.
  fs::create_directories(tmp / "fresh");
  o.overwrite = false;
  o.out_dir = tmp / "fresh";
  ASSERT_OK(BuildPhotoDataset(o, log));
  EXPECT_FALSE(BuildPhotoDataset(o, log).ok());
  o.overwrite = true;
  o.count = 6;
  ASSERT_OK(BuildPhotoDataset(o, log));
  EXPECT_EQ(Jpegs(tmp / "fresh").size(), 6u);  // the 24 old images are gone
}

TEST(Dataset, ValFractionSplitsEachClass) {
  TempDir tmp;
  MakePhotos(tmp / "src");
  PhotoDatasetOptions o = SmallOptions(tmp / "src", tmp / "out");
  o.count = 30;
  o.val_fraction = 0.2;
  std::ostringstream log;
  ASSERT_OK(BuildPhotoDataset(o, log));
  int train = 0, val = 0;
  for (const auto& [rel, bytes] : Jpegs(tmp / "out")) {
    if (rel.rfind("train/", 0) == 0) ++train;
    if (rel.rfind("val/", 0) == 0) ++val;
  }
  EXPECT_EQ(train, 24);
  EXPECT_EQ(val, 6);
}

TEST(Dataset, FewerImagesThanPhotosUsesFewerClasses) {
  TempDir tmp;
  MakePhotos(tmp / "src");
  PhotoDatasetOptions o = SmallOptions(tmp / "src", tmp / "out");
  o.count = 2;
  std::ostringstream log;
  ASSERT_OK(BuildPhotoDataset(o, log));
  int dirs = 0;
  for (const auto& e : fs::directory_iterator(tmp / "out")) dirs += e.is_directory() ? 1 : 0;
  EXPECT_EQ(dirs, 2);
  EXPECT_EQ(Jpegs(tmp / "out").size(), 2u);
}

TEST(Dataset, BadOptionsAreInvalidArgument) {
  TempDir tmp;
  MakePhotos(tmp / "src");
  std::ostringstream log;
  PhotoDatasetOptions o = SmallOptions(tmp / "src", "");
  EXPECT_EQ(BuildPhotoDataset(o, log).code(), StatusCode::kInvalidArgument);
  o = SmallOptions(tmp / "src", tmp / "out");
  o.min_short_side = 200;
  o.max_short_side = 100;
  EXPECT_EQ(BuildPhotoDataset(o, log).code(), StatusCode::kInvalidArgument);
  o = SmallOptions(tmp / "src", tmp / "out");
  o.quality = 0;
  EXPECT_EQ(BuildPhotoDataset(o, log).code(), StatusCode::kInvalidArgument);
  o = SmallOptions(tmp / "src", tmp / "out");
  o.count = 0;
  EXPECT_EQ(BuildPhotoDataset(o, log).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace flowfeed

namespace flowfeed {
namespace {

// One picture shipped at two resolutions is one class, taken from the larger file.
TEST(Dataset, SamePictureAtSeveralResolutionsIsOneClass) {
  TempDir tmp;
  test::WriteJpeg(tmp / "src/Elephants.jpg", test::PatternImage(600, 800, 3, 1));
  test::WriteJpeg(tmp / "src/Elephants_1600x1200.jpg", test::PatternImage(1200, 1600, 3, 1));
  test::WriteJpeg(tmp / "src/Garden.jpg", test::PatternImage(600, 800, 3, 2));
  PhotoDatasetOptions o = SmallOptions(tmp / "src", tmp / "out");
  o.count = 6;
  std::ostringstream log;
  ASSERT_OK(BuildPhotoDataset(o, log));
  std::vector<std::string> classes;
  for (const auto& e : fs::directory_iterator(tmp / "out"))
    if (e.is_directory()) classes.push_back(e.path().filename().string());
  std::sort(classes.begin(), classes.end());
  EXPECT_EQ(classes, (std::vector<std::string>{"elephants_1600x1200", "garden"}));
}

// A photo that is mostly one flat colour still gives images with detail in them: windows over
// the flat part are drawn again.
TEST(Dataset, FlatRegionsAreAvoided) {
  TempDir tmp;
  Image photo = test::SolidImage(900, 1200, 3, 90);
  Image detail = test::PatternImage(300, 1200, 3, 5);  // only the bottom third has structure
  std::copy(detail.data(), detail.data() + detail.size_bytes(),
            photo.data() + size_t(600) * photo.row_bytes());
  for (int y = 600; y < 900; ++y)  // add fine texture so windows there have real detail
    for (int x = 0; x < 1200; ++x) photo.row<uint8_t>(y)[x * 3] = uint8_t(((x / 3 + y / 3) % 2) * 200);
  test::WritePng(tmp / "src/mostly_flat.png", photo);
  PhotoDatasetOptions o = SmallOptions(tmp / "src", tmp / "out");
  o.count = 12;
  std::ostringstream log;
  ASSERT_OK(BuildPhotoDataset(o, log));
  int flat = 0;
  for (const auto& [name, bytes] : Jpegs(tmp / "out")) {
    Image img;
    ASSERT_OK(DecodeImage(bytes.data(), bytes.size(), DecodeOptions{}, name, &img));
    double sum = 0, sum2 = 0;
    const size_t n = img.size_bytes();
    for (size_t i = 0; i < n; ++i) {
      sum += img.data()[i];
      sum2 += double(img.data()[i]) * img.data()[i];
    }
    double sd = std::sqrt(sum2 / double(n) - (sum / double(n)) * (sum / double(n)));
    if (sd < 3) ++flat;
  }
  EXPECT_EQ(flat, 0);
}

}  // namespace
}  // namespace flowfeed
