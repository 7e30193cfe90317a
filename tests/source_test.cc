// Tests of the sources: image folders, file lists, IDX files, ReadFileBytes.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "flowfeed/source.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::ReadBytes;
using test::TempDir;
using test::WriteBytes;
using test::WriteText;

std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

SourceOptions FolderOptions(const std::string& root) {
  SourceOptions o;
  o.type = "image_folder";
  o.root = root;
  return o;
}

SourceOptions IdxOptions(const std::string& root, const std::string& images,
                         const std::string& labels) {
  SourceOptions o;
  o.type = "idx";
  o.root = root;
  o.images = images;
  o.labels = labels;
  return o;
}

std::vector<std::string> Keys(const Source& s) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < s.size(); ++i) out.emplace_back(s.key(i));
  return out;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------- image folder

TEST(SourceImageFolder, SortsClassesAndFilesAndLabels) {
  TempDir dir;
  // Created out of order on purpose.
  WriteText(dir / "c/z.jpg", "c-z");
  WriteText(dir / "b/2.jpg", "b-2");
  WriteText(dir / "a/y.png", "a-y");
  WriteText(dir / "b/1.jpg", "b-1");
  WriteText(dir / "a/x.jpg", "a-x");
  WriteText(dir / "B/u.jpg", "B-u");  // upper case sorts first (byte order)

  auto src = OpenSource(FolderOptions(dir.path()));
  ASSERT_OK(src);
  const Source& s = **src;
  EXPECT_EQ(s.classes(), (std::vector<std::string>{"B", "a", "b", "c"}));
  ASSERT_EQ(s.size(), 6);
  EXPECT_EQ(Keys(s), (std::vector<std::string>{dir / "B/u.jpg", dir / "a/x.jpg", dir / "a/y.png",
                                               dir / "b/1.jpg", dir / "b/2.jpg", dir / "c/z.jpg"}));
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < s.size(); ++i) labels.push_back(s.label(i));
  EXPECT_EQ(labels, (std::vector<int64_t>{0, 1, 1, 2, 2, 3}));

  Sample sample;
  sample.image = Image::Allocate(2, 2, 3);
  ASSERT_OK(s.Read(3, &sample));
  EXPECT_EQ(sample.encoded, Bytes("b-1"));
  EXPECT_TRUE(sample.image.empty());
  EXPECT_EQ(sample.label, 2);
  EXPECT_EQ(sample.index, 3);
  EXPECT_EQ(sample.source, dir / "b/1.jpg");
  EXPECT_EQ(s.Describe(), "image_folder " + dir.path() + ": 6 files, 4 classes");
}

TEST(SourceImageFolder, ReadsRealImagesFromMakeImageFolder) {
  TempDir dir;
  ASSERT_EQ(test::MakeImageFolder(dir.path(), 3, 4), 12);
  auto src = OpenImageFolder(FolderOptions(dir.path()));
  ASSERT_OK(src);
  EXPECT_EQ((*src)->size(), 12);
  EXPECT_EQ((*src)->classes(), (std::vector<std::string>{"class0", "class1", "class2"}));
  Sample sample;
  for (int64_t i = 0; i < (*src)->size(); ++i) {
    ASSERT_OK((*src)->Read(i, &sample));
    EXPECT_EQ(sample.encoded, ReadBytes(std::string((*src)->key(i))));
    EXPECT_EQ(sample.label, i / 4);
  }
}

TEST(SourceImageFolder, FiltersExtensionsCaseInsensitively) {
  TempDir dir;
  WriteText(dir / "a/1.JPG", "x");
  WriteText(dir / "a/2.Jpeg", "x");
  WriteText(dir / "a/3.png", "x");
  WriteText(dir / "a/4.txt", "x");
  WriteText(dir / "a/5.jpg.bak", "x");
  WriteText(dir / "a/jpg", "x");
  WriteText(dir / "a/6.WebP", "x");

  auto src = OpenImageFolder(FolderOptions(dir.path()));
  ASSERT_OK(src);
  EXPECT_EQ(Keys(**src), (std::vector<std::string>{dir / "a/1.JPG", dir / "a/2.Jpeg",
                                                   dir / "a/3.png", dir / "a/6.WebP"}));

  SourceOptions only_png = FolderOptions(dir.path());
  only_png.extensions = {".PNG"};
  auto png = OpenImageFolder(only_png);
  ASSERT_OK(png);
  EXPECT_EQ(Keys(**png), (std::vector<std::string>{dir / "a/3.png"}));
}

TEST(SourceImageFolder, SkipsHiddenFilesAndFolders) {
  TempDir dir;
  WriteText(dir / "a/.hidden.jpg", "x");
  WriteText(dir / "a/._resource_fork.jpg", "x");
  WriteText(dir / "a/seen.jpg", "x");
  WriteText(dir / "a/.cache/inner.jpg", "x");
  WriteText(dir / ".ipynb_checkpoints/x.jpg", "x");
  auto src = OpenImageFolder(FolderOptions(dir.path()));
  ASSERT_OK(src);
  EXPECT_EQ((*src)->classes(), (std::vector<std::string>{"a"}));
  EXPECT_EQ(Keys(**src), (std::vector<std::string>{dir / "a/seen.jpg"}));
}

TEST(SourceImageFolder, WalksNestedFoldersAndFollowsSymlinks) {
  TempDir dir;
  WriteText(dir / "a/top.jpg", "1");
  WriteText(dir / "a/sub/deeper/x.jpg", "2");
  WriteText(dir / "a/sub/b.jpg", "3");
  WriteText(dir / "elsewhere/real.jpg", "4");
  WriteText(dir / "b/plain.jpg", "5");
  ASSERT_EQ(symlink((dir / "elsewhere/real.jpg").c_str(), (dir / "b/link.jpg").c_str()), 0);
  ASSERT_EQ(symlink((dir / "missing.jpg").c_str(), (dir / "b/dangling.jpg").c_str()), 0);
  ASSERT_EQ(symlink(dir.path().c_str(), (dir / "b/loop").c_str()), 0);  // a cycle

  auto src = OpenImageFolder(FolderOptions(dir.path()));
  ASSERT_OK(src);
  EXPECT_EQ((*src)->classes(), (std::vector<std::string>{"a", "b", "elsewhere"}));
  std::vector<std::string> keys = Keys(**src);
  // Class a in torchvision's order: folders sorted by path, then file names within each.
  ASSERT_GE(keys.size(), 3u);
  EXPECT_EQ(keys[0], dir / "a/top.jpg");
  EXPECT_EQ(keys[1], dir / "a/sub/b.jpg");
  EXPECT_EQ(keys[2], dir / "a/sub/deeper/x.jpg");
  // Class b has the symlinked file and whatever the loop reaches once, and the walk ends. The
  // dangling link is listed (never dropped silently) and fails when read, naming what it is.
  EXPECT_NE(std::find(keys.begin(), keys.end(), dir / "b/link.jpg"), keys.end());
  Sample sample;
  const auto it = std::find(keys.begin(), keys.end(), dir / "b/link.jpg");
  ASSERT_OK((*src)->Read(int64_t(it - keys.begin()), &sample));
  EXPECT_EQ(sample.encoded, Bytes("4"));
  const auto dangling = std::find(keys.begin(), keys.end(), dir / "b/dangling.jpg");
  ASSERT_NE(dangling, keys.end());
  const Status s = (*src)->Read(int64_t(dangling - keys.begin()), &sample);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s.message(), (dir / "b/dangling.jpg") + ": dangling symlink")) << s.ToString();
}

TEST(SourceImageFolder, FifosAndDevicesAreListedAndRefusedWhenReadWithoutBlocking) {
  TempDir dir;
  WriteText(dir / "a/ok.jpg", "1");
  ASSERT_EQ(mkfifo((dir / "a/fifo.jpg").c_str(), 0644), 0);
  auto src = OpenImageFolder(FolderOptions(dir.path()));
  ASSERT_OK(src);
  ASSERT_EQ(Keys(**src), (std::vector<std::string>{dir / "a/fifo.jpg", dir / "a/ok.jpg"}));
  Sample sample;
  const Status s = (*src)->Read(0, &sample);  // nobody writes the FIFO: this must not wait
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_TRUE(Contains(s.message(), (dir / "a/fifo.jpg") + ": not a regular file (a FIFO)"))
      << s.ToString();
  std::vector<uint8_t> bytes;
  const Status dev = ReadFileBytes("/dev/zero", &bytes);  // endless if read to its end
  EXPECT_TRUE(Contains(dev.message(), "/dev/zero: not a regular file (a character device)"))
      << dev.ToString();
}

TEST(SourceImageFolder, ADanglingSymlinkAmongTheClassFoldersIsAnErrorNamingIt) {
  TempDir dir;
  WriteText(dir / "a/ok.jpg", "1");
  WriteText(dir / "c/ok.jpg", "1");
  ASSERT_EQ(symlink((dir / "unmounted/b").c_str(), (dir / "b").c_str()), 0);
  auto src = OpenImageFolder(FolderOptions(dir.path()));
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(src.status().message(), (dir / "b") + " is a dangling symlink"))
      << src.status().ToString();
}

TEST(SourceImageFolder, MissingRootIsNotFoundNamingIt) {
  TempDir dir;
  const std::string root = dir / "nope";
  auto src = OpenSource(FolderOptions(root));
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(src.status().message(), root)) << src.status().ToString();
  EXPECT_TRUE(Contains(src.status().message(), "does not exist")) << src.status().ToString();
}

TEST(SourceImageFolder, RootThatIsAFileIsNotFound) {
  TempDir dir;
  WriteText(dir / "file", "x");
  auto src = OpenImageFolder(FolderOptions(dir / "file"));
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(src.status().message(), "is not a directory")) << src.status().ToString();
}

TEST(SourceImageFolder, EmptyRootIsNotFound) {
  TempDir dir;
  auto src = OpenImageFolder(FolderOptions(dir.path()));
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(src.status().message(), "has no class folders with images"))
      << src.status().ToString();

  // Class folders without images, and images outside class folders, do not count either.
  WriteText(dir / "a/readme.txt", "x");
  WriteText(dir / "loose.jpg", "x");
  auto again = OpenImageFolder(FolderOptions(dir.path()));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(again.status().message(), ".jpg")) << again.status().ToString();
}

TEST(SourceImageFolder, LimitKeepsTheFirstSamples) {
  TempDir dir;
  test::MakeImageFolder(dir.path(), 3, 4);
  SourceOptions o = FolderOptions(dir.path());
  auto all = OpenImageFolder(o);
  ASSERT_OK(all);
  o.limit = 5;
  auto some = OpenImageFolder(o);
  ASSERT_OK(some);
  ASSERT_EQ((*some)->size(), 5);
  EXPECT_EQ((*some)->classes().size(), 3u);
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_EQ((*some)->key(i), (*all)->key(i));
    EXPECT_EQ((*some)->label(i), (*all)->label(i));
  }
  o.limit = 1000;
  auto more = OpenImageFolder(o);
  ASSERT_OK(more);
  EXPECT_EQ((*more)->size(), 12);
}

TEST(SourceImageFolder, FileRemovedAfterOpenFailsAtReadWithNotFound) {
  TempDir dir;
  WriteText(dir / "a/1.jpg", "x");
  WriteText(dir / "a/2.jpg", "y");
  auto src = OpenImageFolder(FolderOptions(dir.path()));
  ASSERT_OK(src);
  ASSERT_EQ(unlink((dir / "a/1.jpg").c_str()), 0);
  Sample sample;
  Status s = (*src)->Read(0, &sample);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s.message(), dir / "a/1.jpg")) << s.ToString();
  EXPECT_OK((*src)->Read(1, &sample));
}

// ---------------------------------------------------------------- dispatcher

TEST(SourceOpen, UnknownTypeNamesTheAllowedOnes) {
  SourceOptions o;
  o.type = "parquet";
  auto src = OpenSource(o);
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = src.status().message();
  EXPECT_TRUE(Contains(m, "parquet") && Contains(m, "image_folder") && Contains(m, "file_list") &&
              Contains(m, "idx"))
      << m;
}

// ---------------------------------------------------------------- file list

TEST(SourceFileList, ParsesHeaderCommentsQuotesAndRoot) {
  TempDir dir;
  WriteText(dir / "data/a.jpg", "A");
  WriteText(dir / "data/with,comma.jpg", "C");
  WriteText(dir / "data/sub/b.png", "B");
  WriteText(dir / "abs.jpg", "Z");
  WriteText(dir / "list.csv",
            "path,label\n"
            "# a comment\n"
            "\n"
            "a.jpg,3\r\n"
            "  \"with,comma.jpg\" , 0\n"
            "sub/b.png,1\n" +
                (dir / "abs.jpg") + ",2");  // absolute path, no final newline

  SourceOptions o;
  o.type = "file_list";
  o.list = dir / "list.csv";
  o.root = dir / "data";
  auto src = OpenSource(o);
  ASSERT_OK(src);
  const Source& s = **src;
  ASSERT_EQ(s.size(), 4);
  EXPECT_EQ(Keys(s), (std::vector<std::string>{dir / "data/a.jpg", dir / "data/with,comma.jpg",
                                               dir / "data/sub/b.png", dir / "abs.jpg"}));
  EXPECT_EQ(s.label(0), 3);
  EXPECT_EQ(s.label(1), 0);
  EXPECT_EQ(s.label(2), 1);
  EXPECT_EQ(s.label(3), 2);
  EXPECT_EQ(s.classes(), (std::vector<std::string>{"0", "1", "2", "3"}));
  EXPECT_EQ(s.Describe(), "file_list " + (dir / "list.csv") + ": 4 files, 4 classes");

  Sample sample;
  const char* expect[] = {"A", "C", "B", "Z"};
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK(s.Read(i, &sample));
    EXPECT_EQ(sample.encoded, Bytes(expect[i]));
    EXPECT_EQ(sample.label, s.label(i));
    EXPECT_EQ(sample.source, s.key(i));
  }

  o.limit = 2;
  auto limited = OpenFileList(o);
  ASSERT_OK(limited);
  EXPECT_EQ((*limited)->size(), 2);
}

TEST(SourceFileList, RelativeToTheListFolderWhenRootIsEmpty) {
  TempDir dir;
  WriteText(dir / "lists/img/x.jpg", "X");
  WriteText(dir / "lists/train.csv", "img/x.jpg,0\n");
  SourceOptions o;
  o.type = "file_list";
  o.list = dir / "lists/train.csv";
  auto src = OpenFileList(o);
  ASSERT_OK(src);
  ASSERT_EQ((*src)->size(), 1);
  EXPECT_EQ((*src)->key(0), dir / "lists/img/x.jpg");
  Sample sample;
  ASSERT_OK((*src)->Read(0, &sample));
  EXPECT_EQ(sample.encoded, Bytes("X"));
}

TEST(SourceFileList, BadLinesNameTheLine) {
  TempDir dir;
  SourceOptions o;
  o.type = "file_list";
  o.list = dir / "list.csv";
  o.root = dir.path();

  WriteText(o.list, "path,label\na.jpg,1\n# note\njust-a-path\n");
  auto r1 = OpenFileList(o);
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(r1.status().message(), o.list + ":4: expected path,label"))
      << r1.status().ToString();

  WriteText(o.list, "a.jpg,1\nb.jpg,-2\n");
  auto r2 = OpenFileList(o);
  ASSERT_FALSE(r2.ok());
  EXPECT_TRUE(Contains(r2.status().message(), o.list + ":2: label must be a non-negative integer"))
      << r2.status().ToString();
  EXPECT_TRUE(Contains(r2.status().message(), "-2")) << r2.status().ToString();

  WriteText(o.list, "a.jpg,cat\n");
  auto r3 = OpenFileList(o);
  ASSERT_FALSE(r3.ok());
  EXPECT_TRUE(Contains(r3.status().message(), ":1: label must be a non-negative integer"));

  WriteText(o.list, "a.jpg,1,extra\n");
  auto r4 = OpenFileList(o);
  ASSERT_FALSE(r4.ok());
  EXPECT_TRUE(Contains(r4.status().message(), ":1: expected path,label"));

  WriteText(o.list, "\"unterminated.jpg,1\n");
  auto r5 = OpenFileList(o);
  ASSERT_FALSE(r5.ok());
  EXPECT_TRUE(Contains(r5.status().message(), ":1: expected path,label"));

  // A header is only a header on the first data line.
  WriteText(o.list, "a.jpg,1\npath,label\n");
  auto r6 = OpenFileList(o);
  ASSERT_FALSE(r6.ok());
  EXPECT_TRUE(Contains(r6.status().message(), ":2: label must be"));
}

TEST(SourceFileList, MissingListIsNotFound) {
  TempDir dir;
  SourceOptions o;
  o.type = "file_list";
  o.list = dir / "nope.csv";
  auto src = OpenFileList(o);
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(src.status().message(), o.list));
}

TEST(SourceFileList, MissingListedFileFailsAtReadNamingIt) {
  TempDir dir;
  WriteText(dir / "here.jpg", "H");
  WriteText(dir / "list.csv", "here.jpg,0\ngone.jpg,1\n");
  SourceOptions o;
  o.type = "file_list";
  o.list = dir / "list.csv";
  auto src = OpenFileList(o);
  ASSERT_OK(src);  // not checked at open
  ASSERT_EQ((*src)->size(), 2);
  Sample sample;
  EXPECT_OK((*src)->Read(0, &sample));
  Status s = (*src)->Read(1, &sample);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s.message(), dir / "gone.jpg")) << s.ToString();
}

// ---------------------------------------------------------------- IDX

void ExpectIdxContents(const Source& s, int n, int rows, int cols) {
  ASSERT_EQ(s.size(), n);
  Sample sample;
  for (int i = 0; i < n; ++i) {
    ASSERT_OK(s.Read(i, &sample));
    ASSERT_EQ(sample.image.height(), rows);
    ASSERT_EQ(sample.image.width(), cols);
    ASSERT_EQ(sample.image.channels(), 1);
    ASSERT_EQ(sample.image.dtype(), DType::kUInt8);
    EXPECT_TRUE(sample.encoded.empty());
    EXPECT_EQ(sample.label, i % 10);
    EXPECT_EQ(s.label(i), i % 10);
    EXPECT_EQ(sample.index, i);
    for (int y = 0; y < rows; ++y)
      for (int x = 0; x < cols; ++x)
        ASSERT_EQ(sample.image.row<uint8_t>(y)[x], uint8_t((i * 7 + y * cols + x) % 256))
            << "sample " << i << " at " << y << "," << x;
  }
}

TEST(SourceIdx, ReadsGzippedFilesExactly) {
  TempDir dir;
  test::WriteIdx(dir / "train-images-idx3-ubyte.gz", dir / "train-labels-idx1-ubyte.gz", 25, 28,
                 28);
  SourceOptions o = IdxOptions(dir.path(), "", "");  // the default names
  auto src = OpenSource(o);
  ASSERT_OK(src);
  ExpectIdxContents(**src, 25, 28, 28);
  EXPECT_EQ((*src)->key(7), "train-images-idx3-ubyte.gz[7]");
  Sample sample;
  ASSERT_OK((*src)->Read(7, &sample));
  EXPECT_EQ(sample.source, "train-images-idx3-ubyte.gz[7]");
  EXPECT_EQ((*src)->classes(),
            (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
  EXPECT_EQ((*src)->Describe(),
            "idx " + (dir / "train-images-idx3-ubyte.gz") + ": 25 images of 28x28, 10 classes");
}

TEST(SourceIdx, ReadsPlainFilesAndSniffsGzipByContent) {
  TempDir dir;
  test::WriteIdx(dir / "img.idx", dir / "lab.idx", 12, 5, 7);
  auto plain = OpenIdx(IdxOptions(dir.path(), "img.idx", "lab.idx"));
  ASSERT_OK(plain);
  ExpectIdxContents(**plain, 12, 5, 7);
  EXPECT_EQ((*plain)->classes().size(), 10u);

  // gzipped data under names without .gz, and plain data under a .gz name.
  test::WriteIdx(dir / "z/img.gz", dir / "z/lab.gz", 3, 4, 4);
  ASSERT_EQ(rename((dir / "z/img.gz").c_str(), (dir / "z/img.bin").c_str()), 0);
  test::WriteIdx(dir / "z/i3.idx", dir / "z/l3.idx", 3, 1, 1);  // 3 plain labels
  ASSERT_EQ(rename((dir / "z/l3.idx").c_str(), (dir / "z/l3.gz").c_str()), 0);
  auto mixed = OpenIdx(IdxOptions(dir / "z", "img.bin", "l3.gz"));
  ASSERT_OK(mixed);
  ExpectIdxContents(**mixed, 3, 4, 4);
  EXPECT_EQ((*mixed)->classes().size(), 3u);  // labels 0, 1, 2
}

TEST(SourceIdx, LimitKeepsTheFirstSamples) {
  TempDir dir;
  test::WriteIdx(dir / "i.gz", dir / "l.gz", 30, 3, 3);
  SourceOptions o = IdxOptions(dir.path(), "i.gz", "l.gz");
  o.limit = 4;
  auto src = OpenIdx(o);
  ASSERT_OK(src);
  ExpectIdxContents(**src, 4, 3, 3);
  EXPECT_EQ((*src)->classes().size(), 10u);  // from all labels, not just the first 4
}

TEST(SourceIdx, TruncatedImagesAreCorrupt) {
  TempDir dir;
  test::WriteIdx(dir / "i.idx", dir / "l.idx", 10, 4, 4);
  std::vector<uint8_t> img = ReadBytes(dir / "i.idx");
  img.resize(img.size() - 5);
  WriteBytes(dir / "i.idx", img);
  auto src = OpenIdx(IdxOptions(dir.path(), "i.idx", "l.idx"));
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(src.status().message(),
                       (dir / "i.idx") + ": truncated: expected 160 bytes of pixels, found 155"))
      << src.status().ToString();

  // A cut gzip stream.
  test::WriteIdx(dir / "g.gz", dir / "gl.gz", 50, 10, 10);
  std::vector<uint8_t> gz = ReadBytes(dir / "g.gz");
  gz.resize(gz.size() / 2);
  WriteBytes(dir / "g.gz", gz);
  auto cut = OpenIdx(IdxOptions(dir.path(), "g.gz", "gl.gz"));
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(cut.status().message(), dir / "g.gz")) << cut.status().ToString();

  // A header cut short.
  WriteBytes(dir / "h.idx", {0, 0, 8, 3, 0, 0});
  auto header = OpenIdx(IdxOptions(dir.path(), "h.idx", "l.idx"));
  ASSERT_FALSE(header.ok());
  EXPECT_EQ(header.status().code(), StatusCode::kCorrupt);
}

// One gzip member of `bytes`.
std::vector<uint8_t> GzipMember(const std::vector<uint8_t>& bytes) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::vector<uint8_t> out(deflateBound(&zs, uLong(bytes.size())) + 32);
  zs.next_in = const_cast<Bytef*>(bytes.data());
  zs.avail_in = uInt(bytes.size());
  zs.next_out = out.data();
  zs.avail_out = uInt(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

long PeakRssKiB() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

TEST(SourceIdx, GzipBombIsRefusedAtTheSizeItsHeaderDeclares) {
  TempDir dir;
  test::WriteIdx(dir / "unused.idx", dir / "l.idx", 1, 1, 1);  // labels for 1 image
  // A header declaring one 1x1 image (17 bytes), then 256 members of 1 MiB of zeros each: 256 MiB
  // from a file of about 260 KB.
  std::vector<uint8_t> bomb =
      GzipMember({0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 42});
  const std::vector<uint8_t> zeros = GzipMember(std::vector<uint8_t>(1 << 20, 0));
  for (int i = 0; i < 256; ++i) bomb.insert(bomb.end(), zeros.begin(), zeros.end());
  WriteBytes(dir / "bomb.gz", bomb);
  const long rss_before = PeakRssKiB();
  auto src = OpenIdx(IdxOptions(dir.path(), "bomb.gz", "l.idx"));
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(src.status().message(),
                       (dir / "bomb.gz") + ": the gzip stream inflates to more than the 17 "
                                           "bytes its IDX header declares"))
      << src.status().ToString();
  // Inflating it whole would have taken 256 MiB (more with the buffer's doublings).
  if (!test::kAddressSanitizer) {
    EXPECT_LT(PeakRssKiB() - rss_before, 64 * 1024);
  }

  // The labels file is bounded the same way.
  std::vector<uint8_t> labels = GzipMember({0, 0, 8, 1, 0, 0, 0, 1, 0});
  labels.insert(labels.end(), zeros.begin(), zeros.end());
  WriteBytes(dir / "lbomb.gz", labels);
  test::WriteIdx(dir / "i.idx", dir / "unused2.idx", 1, 1, 1);
  auto lab = OpenIdx(IdxOptions(dir.path(), "i.idx", "lbomb.gz"));
  ASSERT_FALSE(lab.ok());
  EXPECT_TRUE(Contains(lab.status().message(),
                       (dir / "lbomb.gz") + ": the gzip stream inflates to more than the 9 bytes"))
      << lab.status().ToString();

  // Exactly the declared size, over two members, is read.
  std::vector<uint8_t> two = GzipMember({0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1});
  const std::vector<uint8_t> rest = GzipMember({0, 0, 0, 1, 42});
  two.insert(two.end(), rest.begin(), rest.end());
  WriteBytes(dir / "two.gz", two);
  auto ok = OpenIdx(IdxOptions(dir.path(), "two.gz", "l.idx"));
  ASSERT_OK(ok);
  Sample sample;
  ASSERT_OK((*ok)->Read(0, &sample));
  EXPECT_EQ(sample.image.data()[0], 42);
}

TEST(SourceIdx, WrongMagicIsCorrupt) {
  TempDir dir;
  test::WriteIdx(dir / "i.idx", dir / "l.idx", 10, 4, 4);
  // Labels given as images.
  auto src = OpenIdx(IdxOptions(dir.path(), "l.idx", "l.idx"));
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(src.status().message(),
                       (dir / "l.idx") + ": not an IDX image file (magic 0x00000801)"))
      << src.status().ToString();
  // Images given as labels.
  auto swapped = OpenIdx(IdxOptions(dir.path(), "i.idx", "i.idx"));
  ASSERT_FALSE(swapped.ok());
  EXPECT_EQ(swapped.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(swapped.status().message(), "not an IDX label file"))
      << swapped.status().ToString();
  // Something else entirely.
  WriteText(dir / "text.idx", "hello, this is not an IDX file at all");
  auto text = OpenIdx(IdxOptions(dir.path(), "text.idx", "l.idx"));
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), StatusCode::kCorrupt);
}

TEST(SourceIdx, CountMismatchIsCorrupt) {
  TempDir dir;
  test::WriteIdx(dir / "i10.gz", dir / "l10.gz", 10, 4, 4);
  test::WriteIdx(dir / "i11.gz", dir / "l11.gz", 11, 4, 4);
  auto src = OpenIdx(IdxOptions(dir.path(), "i10.gz", "l11.gz"));
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.status().code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(src.status().message(), "10 images")) << src.status().ToString();
  EXPECT_TRUE(Contains(src.status().message(), "11 labels")) << src.status().ToString();
}

TEST(SourceIdx, MissingFilesAreNotFoundNamingThem) {
  TempDir dir;
  auto none = OpenIdx(IdxOptions(dir.path(), "", ""));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(none.status().message(), dir / "train-images-idx3-ubyte.gz"))
      << none.status().ToString();

  test::WriteIdx(dir / "i.gz", dir / "l.gz", 3, 2, 2);
  auto no_labels = OpenIdx(IdxOptions(dir.path(), "i.gz", "nolabels.gz"));
  ASSERT_FALSE(no_labels.ok());
  EXPECT_EQ(no_labels.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(no_labels.status().message(), dir / "nolabels.gz"))
      << no_labels.status().ToString();
}

TEST(SourceIdx, RealFashionMnist) {
  const std::string root = "/usr/share/datasets/fashion-mnist";
  struct stat st;
  if (stat((root + "/train-images-idx3-ubyte.gz").c_str(), &st) != 0)
    GTEST_SKIP() << "Fashion-MNIST is not installed at " << root
                 << " (apt-get install dataset-fashion-mnist)";
  auto src = OpenSource(IdxOptions(root, "", ""));
  ASSERT_OK(src);
  const Source& s = **src;
  ASSERT_EQ(s.size(), 60000);
  EXPECT_EQ(s.classes().size(), 10u);
  std::vector<int> per_class(10, 0);
  for (int64_t i = 0; i < s.size(); ++i) {
    ASSERT_GE(s.label(i), 0);
    ASSERT_LT(s.label(i), 10);
    ++per_class[size_t(s.label(i))];
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[size_t(c)], 6000) << "class " << c;
  Sample sample;
  ASSERT_OK(s.Read(59999, &sample));
  EXPECT_EQ(sample.image.height(), 28);
  EXPECT_EQ(sample.image.width(), 28);
  EXPECT_EQ(sample.image.channels(), 1);
  // Not a blank image.
  int nonzero = 0;
  for (size_t k = 0; k < sample.image.size_bytes(); ++k) nonzero += sample.image.data()[k] != 0;
  EXPECT_GT(nonzero, 50);
  EXPECT_EQ(s.key(59999), "train-images-idx3-ubyte.gz[59999]");

  auto test_split =
      OpenIdx(IdxOptions(root, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"));
  ASSERT_OK(test_split);
  EXPECT_EQ((*test_split)->size(), 10000);
}

TEST(SourceIdx, ConcurrentReadsMatchSequential) {
  TempDir dir;
  test::WriteIdx(dir / "i.gz", dir / "l.gz", 2000, 28, 28);
  auto src = OpenIdx(IdxOptions(dir.path(), "i.gz", "l.gz"));
  ASSERT_OK(src);
  const Source& s = **src;
  const size_t px = 28 * 28;
  std::vector<uint8_t> sequential(size_t(s.size()) * px);
  std::vector<int64_t> seq_labels(size_t(s.size()));
  {
    Sample sample;
    for (int64_t i = 0; i < s.size(); ++i) {
      ASSERT_OK(s.Read(i, &sample));
      std::copy(sample.image.data(), sample.image.data() + px, sequential.data() + i * px);
      seq_labels[size_t(i)] = sample.label;
    }
  }
  for (int round = 0; round < 3; ++round) {
    std::vector<uint8_t> parallel(sequential.size(), 0xAB);
    std::vector<int64_t> par_labels(seq_labels.size(), -1);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        Sample sample;
        // Every thread reads every sample (interleaved starting points), writes its own quarter.
        for (int64_t k = 0; k < s.size(); ++k) {
          const int64_t i = (k + t * 500) % s.size();
          if (!s.Read(i, &sample).ok()) {
            ++failures;
            continue;
          }
          if (i % 4 == t) {
            std::copy(sample.image.data(), sample.image.data() + px, parallel.data() + i * px);
            par_labels[size_t(i)] = sample.label;
          } else if (sample.label != seq_labels[size_t(i)] ||
                     !std::equal(sample.image.data(), sample.image.data() + px,
                                 sequential.data() + i * px)) {
            ++failures;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(parallel, sequential);
    EXPECT_EQ(par_labels, seq_labels);
  }
}

TEST(SourceImageFolder, ConcurrentReadsMatchSequential) {
  TempDir dir;
  test::MakeImageFolder(dir.path(), 4, 10);
  auto src = OpenImageFolder(FolderOptions(dir.path()));
  ASSERT_OK(src);
  const Source& s = **src;
  std::vector<std::vector<uint8_t>> sequential(size_t(s.size()));
  Sample sample;
  for (int64_t i = 0; i < s.size(); ++i) {
    ASSERT_OK(s.Read(i, &sample));
    sequential[size_t(i)] = sample.encoded;
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      Sample local;
      for (int64_t i = 0; i < s.size(); ++i)
        if (!s.Read(i, &local).ok() || local.encoded != sequential[size_t(i)]) ++failures;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

// ---------------------------------------------------------------- ReadFileBytes

TEST(SourceReadFileBytes, ReadsWholeFilesAndReusesCapacity) {
  TempDir dir;
  std::vector<uint8_t> big(1 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 31 + 7);
  WriteBytes(dir / "big.bin", big);
  WriteBytes(dir / "small.bin", {1, 2, 3});
  WriteBytes(dir / "empty.bin", {});
  std::vector<uint8_t> out;
  ASSERT_OK(ReadFileBytes(dir / "big.bin", &out));
  EXPECT_EQ(out, big);
  const uint8_t* storage = out.data();
  ASSERT_OK(ReadFileBytes(dir / "small.bin", &out));
  EXPECT_EQ(out, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(out.data(), storage);  // no reallocation
  ASSERT_OK(ReadFileBytes(dir / "empty.bin", &out));
  EXPECT_TRUE(out.empty());
}

TEST(SourceReadFileBytes, MissingFileIsNotFoundNamingIt) {
  TempDir dir;
  std::vector<uint8_t> out;
  Status s = ReadFileBytes(dir / "missing.jpg", &out);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s.message(), (dir / "missing.jpg") + ": ")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "No such file")) << s.ToString();
}

TEST(SourceReadFileBytes, DirectoryIsIoError) {
  TempDir dir;
  std::vector<uint8_t> out;
  Status s = ReadFileBytes(dir.path(), &out);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_TRUE(Contains(s.message(), dir.path())) << s.ToString();
}

}  // namespace
}  // namespace flowfeed
