// Tests of WebDataset tar shards: brace expansion, the reader (on archives GNU tar writes and on
// hand-made ones for the corner cases), and the shard writer.
#include "sources/tar.h"
#include "flowfeed/shards.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "flowfeed/source.h"
#include "test_util.h"

namespace flowfeed {
namespace {

namespace fs = std::filesystem;

using test::ReadBytes;
using test::TempDir;
using test::WriteBytes;
using test::WriteText;

std::vector<uint8_t> Bytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool HaveTar() { return std::system("tar --version > /dev/null 2>&1") == 0; }

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// Runs a shell command, returning its exit status and (optionally) its standard output.
int Shell(const std::string& cmd, std::string* out = nullptr) {
  if (!out) return std::system(cmd.c_str());
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return -1;
  out->clear();
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  return ::pclose(p);
}

// Deterministic, distinct bytes for sample `i` of length `size`.
std::vector<uint8_t> SampleBytes(int i, size_t size) {
  std::vector<uint8_t> b(size);
  uint32_t x = 2654435761u * uint32_t(i + 1);
  for (size_t k = 0; k < size; ++k) {
    x = x * 1664525u + 1013904223u;
    b[k] = uint8_t(x >> 24);
  }
  return b;
}

SourceOptions TarOptions(const std::string& root, const std::string& shards) {
  SourceOptions o;
  o.type = "tar";
  o.root = root;
  o.shards = shards;
  return o;
}

// ---------------------------------------------------------------- a hand-made tar

// One header + data of a hand-made archive; fields that real archives get wrong on purpose.
struct RawMember {
  RawMember(std::string n, std::string d, char t = '0', std::string p = "")
      : name(std::move(n)), data(std::move(d)), type(t), prefix(std::move(p)) {}
  std::string name;
  std::string data;
  char type = '0';
  std::string prefix;       // the ustar prefix field
  int64_t size_field = -1;  // the header's size when it must differ from data.size()
  bool base256 = false;     // the size in GNU's base-256 form
  bool signed_checksum = false;
};

void PutOctal(uint8_t* field, size_t width, uint64_t v) {
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = uint8_t('0' + (v & 7));
    v >>= 3;
  }
  field[width - 1] = 0;
}

std::vector<uint8_t> BuildTar(const std::vector<RawMember>& members, bool end = true) {
  std::vector<uint8_t> out;
  for (const RawMember& m : members) {
    uint8_t h[512] = {};
    std::memcpy(h, m.name.data(), std::min<size_t>(m.name.size(), 100));
    PutOctal(h + 100, 8, 0644);
    PutOctal(h + 108, 8, 0);
    PutOctal(h + 116, 8, 0);
    const uint64_t size = m.size_field >= 0 ? uint64_t(m.size_field) : m.data.size();
    if (m.base256) {
      h[124] = 0x80;
      uint64_t v = size;
      for (int i = 11; i >= 1; --i, v >>= 8) h[124 + i] = uint8_t(v);
    } else {
      PutOctal(h + 124, 12, size);
    }
    PutOctal(h + 136, 12, 0);
    h[156] = uint8_t(m.type);
    std::memcpy(h + 257, "ustar", 6);
    h[263] = h[264] = '0';
    std::memcpy(h + 345, m.prefix.data(), std::min<size_t>(m.prefix.size(), 155));
    std::memset(h + 148, ' ', 8);
    int64_t sum = 0;
    for (uint8_t c : h) sum += m.signed_checksum ? int64_t(int8_t(c)) : int64_t(c);
    PutOctal(h + 148, 7, uint64_t(sum));
    out.insert(out.end(), h, h + 512);
    out.insert(out.end(), m.data.begin(), m.data.end());
    out.resize((out.size() + 511) / 512 * 512, 0);
  }
  if (end) out.resize(out.size() + 1024, 0);
  return out;
}

std::string PaxRecord(const std::string& key, const std::string& value) {
  // The length counts itself: try widths until it is consistent.
  const std::string body = " " + key + "=" + value + "\n";
  for (size_t digits = 1;; ++digits) {
    const std::string len = std::to_string(body.size() + digits);
    if (len.size() == digits) return len + body;
  }
}

Status OpenStatus(const SourceOptions& o) { return OpenTarShards(o).status(); }

// ---------------------------------------------------------------- braces

std::vector<std::string> Expand(const std::string& pattern) {
  auto r = ExpandBraces(pattern);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : std::vector<std::string>{};
}

TEST(TarBraces, NoBracesIsThePatternItself) {
  EXPECT_EQ(Expand("data/shard.tar"), (std::vector<std::string>{"data/shard.tar"}));
  EXPECT_EQ(Expand(""), (std::vector<std::string>{""}));
}

TEST(TarBraces, RangesKeepZeroPadding) {
  EXPECT_EQ(Expand("shard-{000000..000003}.tar"),
            (std::vector<std::string>{"shard-000000.tar", "shard-000001.tar", "shard-000002.tar",
                                      "shard-000003.tar"}));
  EXPECT_EQ(Expand("{8..11}"), (std::vector<std::string>{"8", "9", "10", "11"}));
  EXPECT_EQ(Expand("{08..11}"), (std::vector<std::string>{"08", "09", "10", "11"}));
  EXPECT_EQ(Expand("{0..2}"), (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(Expand("{7..7}"), (std::vector<std::string>{"7"}));
  // As in bash: padded to the longer endpoint when either is written with a leading zero.
  EXPECT_EQ(Expand("{098..100}"), (std::vector<std::string>{"098", "099", "100"}));
}

TEST(TarBraces, ListsProductsAndNesting) {
  EXPECT_EQ(Expand("{train,val}.tar"), (std::vector<std::string>{"train.tar", "val.tar"}));
  EXPECT_EQ(Expand("{a,b}-{0..1}-{x,y}"),
            (std::vector<std::string>{"a-0-x", "a-0-y", "a-1-x", "a-1-y", "b-0-x", "b-0-y", "b-1-x",
                                      "b-1-y"}));
  EXPECT_EQ(Expand("{a,b{1..2}}.tar"), (std::vector<std::string>{"a.tar", "b1.tar", "b2.tar"}));
  EXPECT_EQ(Expand("x{,-extra}"), (std::vector<std::string>{"x", "x-extra"}));
  // Neither a list nor a range: kept as text, as bash does.
  EXPECT_EQ(Expand("{x}-{0..1}"), (std::vector<std::string>{"{x}-0", "{x}-1"}));
}

TEST(TarBraces, ErrorsNameThePattern) {
  for (const std::string p : {"shard-{0..3.tar", "shard-0..3}.tar", "{a,{b}", "{5..3}", "{a..c}",
                              "{0..1000000}", "{0..999}{0..9999}", "{1..2..3}"}) {
    auto r = ExpandBraces(p);
    ASSERT_FALSE(r.ok()) << p;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << p;
    EXPECT_TRUE(Contains(r.status().message(), p)) << r.status().ToString();
  }
  EXPECT_TRUE(Contains(ExpandBraces("{5..3}").status().message(), "below its start"));
  EXPECT_TRUE(Contains(ExpandBraces("{0..1000000}").status().message(), "1000000"));
  EXPECT_TRUE(Contains(ExpandBraces("{0..3").status().message(), "unbalanced"));
}

TEST(TarBraces, AMillionNamesIsTheLimit) {
  auto r = ExpandBraces("{000000..999999}");
  ASSERT_OK(r);
  ASSERT_EQ(r->size(), 1000000u);
  EXPECT_EQ(r->back(), "999999");
}

// ---------------------------------------------------------------- reading GNU tar's archives

struct Expected {
  std::string member;  // the image member's path
  std::vector<uint8_t> bytes;
  int64_t label;
};

// Writes samples into `dir` and returns the members in archive order (for tar's command line)
// and what the source must give.
void MakeSampleFiles(const std::string& dir, bool long_names, std::vector<std::string>* members,
                     std::vector<Expected>* expected) {
  const size_t sizes[] = {1, 511, 512, 513, 5000, 0, 70000};
  int i = 0;
  for (size_t size : sizes) {
    char key[16];
    std::snprintf(key, sizeof key, "%05d", i + 1);
    const std::string ext = i == 2 ? "JPEG" : (i == 4 ? "png" : "jpg");
    const std::string img = std::string(key) + "." + ext;
    WriteBytes(dir + "/" + img, SampleBytes(i, size));
    WriteText(dir + "/" + key + ".cls", i == 3 ? "3\n" : std::to_string(i % 4));
    members->push_back(img);
    if (i == 1) {  // a member of the sample that no option names: ignored
      WriteText(dir + "/" + key + ".json", "{}");
      members->push_back(std::string(key) + ".json");
    }
    members->push_back(std::string(key) + ".cls");
    expected->push_back({img, SampleBytes(i, size), i == 3 ? 3 : i % 4});
    ++i;
  }
  // Past ustar's 100-byte name field but with a short file name: the ustar prefix field, a GNU
  // 'L' record or a pax path record, depending on the format.
  const std::string deep = "sub/" + std::string(70, 'd');
  const std::string key1 = deep + "/" + std::string(60, 'k');
  WriteBytes(dir + "/" + key1 + ".jpg", SampleBytes(100, 3000));
  WriteText(dir + "/" + key1 + ".cls", "7");
  members->push_back("sub");
  members->push_back(deep);  // directories are stepped over
  members->push_back(key1 + ".jpg");
  members->push_back(key1 + ".cls");
  expected->push_back({key1 + ".jpg", SampleBytes(100, 3000), 7});
  if (long_names) {  // a file name alone longer than 100 bytes: only GNU and pax can store it
    const std::string key2 = std::string(120, 'n');
    WriteBytes(dir + "/" + key2 + ".jpg", SampleBytes(101, 1234));
    WriteText(dir + "/" + key2 + ".cls", "2");
    members->push_back(key2 + ".jpg");
    members->push_back(key2 + ".cls");
    expected->push_back({key2 + ".jpg", SampleBytes(101, 1234), 2});
  }
}

void CheckSource(const Source& s, const std::string& shard, const std::vector<Expected>& want) {
  ASSERT_EQ(s.size(), int64_t(want.size()));
  EXPECT_EQ(s.num_shards(), 1);
  EXPECT_EQ(s.Files(), (std::vector<std::string>{shard}));
  int64_t max_label = 0;
  Sample sample;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(s.key(int64_t(i)), shard + ":" + want[i].member);
    EXPECT_EQ(s.label(int64_t(i)), want[i].label);
    EXPECT_EQ(s.shard(int64_t(i)), 0);
    sample.image = Image::Allocate(2, 2, 3);
    ASSERT_OK(s.Read(int64_t(i), &sample));
    EXPECT_EQ(sample.encoded, want[i].bytes) << want[i].member;
    EXPECT_TRUE(sample.image.empty());
    EXPECT_EQ(sample.index, int64_t(i));
    EXPECT_EQ(sample.label, want[i].label);
    EXPECT_EQ(sample.source, s.key(int64_t(i)));
    max_label = std::max(max_label, want[i].label);
  }
  EXPECT_EQ(s.classes().size(), size_t(max_label + 1));
  EXPECT_EQ(s.classes().front(), "0");
}

TEST(TarShards, ReadsWhatGnuTarWrites) {
  if (!HaveTar()) GTEST_SKIP() << "tar is not installed";
  for (const std::string format : {"gnu", "pax", "ustar"}) {
    SCOPED_TRACE(format);
    TempDir dir;
    std::vector<std::string> members;
    std::vector<Expected> want;
    MakeSampleFiles(dir / "files", format != "ustar", &members, &want);
    std::string cmd = "tar --no-recursion --format=" + format + " -C " + Quote(dir / "files") +
                      " -cf " + Quote(dir / "x.tar");
    for (const auto& m : members) cmd += " " + Quote(m);
    ASSERT_EQ(Shell(cmd), 0) << cmd;

    auto src = OpenSource(TarOptions(dir.path(), "x.tar"));
    ASSERT_OK(src);
    CheckSource(**src, dir / "x.tar", want);
    EXPECT_EQ((*src)->Describe(), "tar shards " + (dir / "x.tar") + ": 1 shards, " +
                                      std::to_string(want.size()) + " samples, 8 classes");
  }
}

TEST(TarShards, HandMadeHeaders) {
  TempDir dir;
  std::vector<RawMember> m;
  m.push_back({"00001.jpg", "hello"});
  m.back().base256 = true;
  m.push_back({"00001.cls", "1"});
  // A pax 'size' record overrides the header's size; a global header is skipped.
  m.push_back({"pax_global", PaxRecord("comment", "ignored"), 'g'});
  m.push_back({"PaxHeaders/x", PaxRecord("size", "5") + PaxRecord("path", "p/00002.jpg"), 'x'});
  m.push_back({"ignored-name", "world"});
  m.back().size_field = 0;
  m.push_back({"00002.cls", "2", '0', "p"});  // joined with the ustar prefix: p/00002.cls
  // A GNU long name record names the next member.
  m.push_back({"././@LongLink", std::string(110, 'L') + ".jpg" + std::string(1, '\0'), 'L'});
  m.push_back({"truncated-name", "long"});
  m.push_back({"././@LongLink", std::string(110, 'L') + ".cls" + std::string(1, '\0'), 'L'});
  m.push_back({"x", "0"});
  // Old tars summed signed chars.
  m.push_back({"\xc3\xa9t\xc3\xa9.jpg", "summer"});
  m.back().signed_checksum = true;
  m.push_back({"\xc3\xa9t\xc3\xa9.cls", "4"});
  m.push_back({"a-link.jpg", "", '2'});  // a symlink: not a sample
  m.push_back({"dir/", "", '5'});        // a directory
  m.push_back({"old-dir/", "", '\0'});   // a pre-POSIX directory
  m.push_back({"._00003.jpg", "fork"});  // a hidden file (macOS resource fork)
  WriteBytes(dir / "h.tar", BuildTar(m));

  auto src = OpenTarShards(TarOptions(dir.path(), "h.tar"));
  ASSERT_OK(src);
  const Source& s = **src;
  ASSERT_EQ(s.size(), 4);
  const std::string shard = dir / "h.tar";
  EXPECT_EQ(s.key(0), shard + ":00001.jpg");
  EXPECT_EQ(s.key(1), shard + ":p/00002.jpg");
  EXPECT_EQ(s.key(2), shard + ":" + std::string(110, 'L') + ".jpg");
  EXPECT_EQ(s.key(3), shard + ":\xc3\xa9t\xc3\xa9.jpg");
  const std::vector<std::string> bytes = {"hello", "world", "long", "summer"};
  const std::vector<int64_t> labels = {1, 2, 0, 4};
  Sample sample;
  for (int64_t i = 0; i < 4; ++i) {
    ASSERT_OK(s.Read(i, &sample));
    EXPECT_EQ(sample.encoded, Bytes(bytes[size_t(i)]));
    EXPECT_EQ(s.label(i), labels[size_t(i)]);
  }
  EXPECT_EQ(s.classes().size(), 5u);
}

TEST(TarShards, ExtensionsAndLabelExtensionFromOptions) {
  TempDir dir;
  // "2.jpg" is no image under these options: key 2 has only ignored members.
  WriteBytes(dir / "a.tar", BuildTar({{"1.webp", "w"},
                                      {"1.label", "3"},
                                      {"2.jpg", "j"},
                                      {"2.txt", "t"},
                                      {"3.seg.png", "s"},
                                      {"3.label", "0"}}));
  SourceOptions o = TarOptions(dir.path(), "a.tar");
  o.extensions = {"WEBP", ".seg.png"};
  o.label_extension = "label";
  auto src = OpenTarShards(o);
  ASSERT_OK(src);
  ASSERT_EQ((*src)->size(), 2);
  EXPECT_EQ((*src)->key(0), (dir / "a.tar") + ":1.webp");
  EXPECT_EQ((*src)->key(1), (dir / "a.tar") + ":3.seg.png");
}

// ---------------------------------------------------------------- errors

TEST(TarShards, RequiresShards) {
  SourceOptions o;
  o.type = "tar";
  Status s = OpenSource(o).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "source.shards: required for tar");
  o.shards = "x-{1..0}.tar";
  s = OpenSource(o).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "source.shards")) << s.ToString();
  o.type = "nope";
  EXPECT_TRUE(Contains(OpenSource(o).status().message(), "tar)"));
}

TEST(TarShards, MissingShardIsNotFound) {
  TempDir dir;
  WriteBytes(dir / "s-0.tar", BuildTar({{"a.jpg", "x"}, {"a.cls", "0"}}));
  WriteBytes(dir / "s-1.tar", BuildTar({{"b.jpg", "y"}, {"b.cls", "1"}}));
  Status s = OpenStatus(TarOptions(dir.path(), "s-{0..2}.tar"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s.message(), dir / "s-2.tar")) << s.ToString();
}

TEST(TarShards, AFifoAsAShardIsRefusedWithoutWaiting) {
  TempDir dir;
  ASSERT_EQ(mkfifo((dir / "f.tar").c_str(), 0644), 0);  // nobody writes it
  Status s = OpenStatus(TarOptions(dir.path(), "f.tar"));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), (dir / "f.tar") + " is not a regular file")) << s.ToString();
}

TEST(TarShards, NoSamplesIsNotFound) {
  TempDir dir;
  WriteBytes(dir / "e.tar", BuildTar({{"readme.txt", "hi"}}));
  Status s = OpenStatus(TarOptions(dir.path(), "e.tar"));
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(s.message(), dir / "e.tar")) << s.ToString();
}

TEST(TarShards, TruncatedShards) {
  TempDir dir;
  const std::vector<uint8_t> full = BuildTar({{"00001.jpg", std::string(1000, 'a')},
                                              {"00001.cls", "1"},
                                              {"00002.jpg", std::string(3000, 'b')},
                                              {"00002.cls", "2"}});
  // Cut in the middle of 00002.jpg's data.
  const size_t second = 512 + 1024 + 512 + 512;  // header, data, header, data of sample 1
  WriteBytes(dir / "cut.tar",
             std::vector<uint8_t>(full.begin(), full.begin() + second + 512 + 1500));
  Status s = OpenStatus(TarOptions(dir.path(), "cut.tar"));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(s.message(), dir / "cut.tar")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "00002.jpg")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "truncated")) << s.ToString();

  // Cut exactly after the last member, before the end-of-archive blocks.
  const size_t last = second + 512 + 3072 + 512 + 512;
  ASSERT_EQ(full.size(), last + 1024);
  WriteBytes(dir / "noend.tar", std::vector<uint8_t>(full.begin(), full.begin() + last));
  s = OpenStatus(TarOptions(dir.path(), "noend.tar"));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(s.message(), dir / "noend.tar")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "truncated?")) << s.ToString();

  // Cut inside a header.
  WriteBytes(dir / "half.tar", std::vector<uint8_t>(full.begin(), full.begin() + second + 100));
  s = OpenStatus(TarOptions(dir.path(), "half.tar"));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(s.message(), dir / "half.tar")) << s.ToString();

  // An empty file is no archive either.
  WriteBytes(dir / "empty.tar", {});
  EXPECT_EQ(OpenStatus(TarOptions(dir.path(), "empty.tar")).code(), StatusCode::kCorrupt);
}

// Regression (fuzz/corpus/tar/regress-pax-size-int64-overflow): sizes near 2^63 (a pax size
// record, a base-256 size field) overflowed `offset + size` in the truncation check.
TEST(TarShards, HugeSizesAreTruncatedMembers) {
  TempDir dir;
  RawMember b256("00001.jpg", "");
  b256.size_field = int64_t(1) << 62;
  b256.base256 = true;
  const std::vector<std::vector<uint8_t>> shards = {
      BuildTar({{"PaxHeaders/x", PaxRecord("size", "9223372036854775000"), 'x'},
                {"00001.jpg", ""},
                {"00001.cls", "1"}}),
      BuildTar({b256, {"00001.cls", "1"}})};
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = "huge" + std::to_string(i) + ".tar";
    WriteBytes(dir / name, shards[i]);
    const Status s = OpenStatus(TarOptions(dir.path(), name));
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
    EXPECT_TRUE(Contains(s.message(), "is truncated")) << s.ToString();
  }
}

TEST(TarShards, ShardCutAfterOpenIsCorruptOnRead) {
  TempDir dir;
  WriteBytes(dir / "a.tar", BuildTar({{"1.jpg", std::string(5000, 'x')}, {"1.cls", "0"}}));
  auto src = OpenTarShards(TarOptions(dir.path(), "a.tar"));
  ASSERT_OK(src);
  ASSERT_EQ(::truncate((dir / "a.tar").c_str(), 512 + 100), 0);
  Sample sample;
  Status s = (*src)->Read(0, &sample);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(s.message(), dir / "a.tar")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "1.jpg")) << s.ToString();
  EXPECT_EQ((*src)->Read(1, &sample).code(), StatusCode::kInvalidArgument);
}

TEST(TarShards, BadChecksumIsCorrupt) {
  TempDir dir;
  std::vector<uint8_t> tar = BuildTar({{"00001.jpg", "x"}, {"00001.cls", "1"}});
  tar[1024 + 3] ^= 1;  // a byte of the second header's name
  WriteBytes(dir / "bad.tar", tar);
  Status s = OpenStatus(TarOptions(dir.path(), "bad.tar"));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(s.message(), dir / "bad.tar")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "checksum")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "byte 1024")) << s.ToString();

  // Something that is not a tar at all.
  WriteText(dir / "text.tar", std::string(2000, 'z'));
  s = OpenStatus(TarOptions(dir.path(), "text.tar"));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(s.message(), "checksum")) << s.ToString();
}

TEST(TarShards, ImageWithoutLabelAndLabelWithoutImage) {
  TempDir dir;
  WriteBytes(dir / "a.tar",
             BuildTar({{"k/00001.jpg", "x"}, {"k/00001.cls", "1"}, {"k/00002.jpg", "y"}}));
  Status s = OpenStatus(TarOptions(dir.path(), "a.tar"));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(s.message(), dir / "a.tar")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "sample 'k/00002' has no .cls member")) << s.ToString();

  SourceOptions o = TarOptions(dir.path(), "a.tar");
  o.label_extension = "label";
  s = OpenStatus(o);
  EXPECT_TRUE(Contains(s.message(), "sample 'k/00001' has no .label member")) << s.ToString();

  WriteBytes(dir / "b.tar", BuildTar({{"00001.cls", "1"}, {"00002.jpg", "y"}, {"00002.cls", "2"}}));
  s = OpenStatus(TarOptions(dir.path(), "b.tar"));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(s.message(), dir / "b.tar")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "sample '00001'")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "no image member")) << s.ToString();
}

TEST(TarShards, BadLabelsAndDuplicateMembers) {
  TempDir dir;
  WriteBytes(dir / "a.tar", BuildTar({{"00001.jpg", "x"}, {"00001.cls", "cat"}}));
  Status s = OpenStatus(TarOptions(dir.path(), "a.tar"));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(s.message(), dir / "a.tar")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "00001.cls")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "not a decimal integer")) << s.ToString();

  WriteBytes(dir / "b.tar", BuildTar({{"00001.jpg", "x"}, {"00001.cls", "-1"}}));
  EXPECT_EQ(OpenStatus(TarOptions(dir.path(), "b.tar")).code(), StatusCode::kCorrupt);

  WriteBytes(dir / "c.tar", BuildTar({{"00001.jpg", "x"}, {"00001.png", "y"}, {"00001.cls", "1"}}));
  s = OpenStatus(TarOptions(dir.path(), "c.tar"));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(s.message(), "two image members")) << s.ToString();
}

TEST(TarShards, NonAdjacentKeyIsCorrupt) {
  TempDir dir;
  WriteBytes(
      dir / "a.tar",
      BuildTar({{"00001.jpg", "x"}, {"00002.jpg", "y"}, {"00002.cls", "2"}, {"00001.cls", "1"}}));
  Status s = OpenStatus(TarOptions(dir.path(), "a.tar"));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(s.message(), dir / "a.tar")) << s.ToString();
  // 00001 ends (without a label) when 00002 begins: either complaint names it.
  EXPECT_TRUE(Contains(s.message(), "'00001'")) << s.ToString();

  WriteBytes(dir / "b.tar", BuildTar({{"00001.jpg", "x"},
                                      {"00001.cls", "1"},
                                      {"00002.jpg", "y"},
                                      {"00002.cls", "2"},
                                      {"00001.json", "{}"}}));
  s = OpenStatus(TarOptions(dir.path(), "b.tar"));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_TRUE(Contains(s.message(), "'00001' appears again")) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "adjacent")) << s.ToString();

  // The same key in two shards is two samples.
  WriteBytes(dir / "c.tar", BuildTar({{"00001.jpg", "z"}, {"00001.cls", "1"}}));
  WriteBytes(dir / "d.tar", BuildTar({{"00001.jpg", "w"}, {"00001.cls", "1"}}));
  auto src = OpenTarShards(TarOptions(dir.path(), "{c,d}.tar"));
  ASSERT_OK(src);
  EXPECT_EQ((*src)->size(), 2);
}

// ---------------------------------------------------------------- shards, limit, threads

TEST(TarShards, ShardNumbersLimitAndEmptyShards) {
  TempDir dir;
  WriteBytes(dir / "s-0.tar",
             BuildTar({{"a.jpg", "a"}, {"a.cls", "0"}, {"b.jpg", "b"}, {"b.cls", "5"}}));
  WriteBytes(dir / "s-1.tar", BuildTar({}));  // no samples: still a shard
  WriteBytes(dir / "s-2.tar", BuildTar({{"c.jpg", "c"},
                                        {"c.cls", "1"},
                                        {"d.jpg", "d"},
                                        {"d.cls", "2"},
                                        {"e.jpg", "e"},
                                        {"e.cls", "3"}}));
  auto src = OpenTarShards(TarOptions(dir.path(), "s-{0..2}.tar"));
  ASSERT_OK(src);
  const Source& s = **src;
  EXPECT_EQ(s.num_shards(), 3);
  ASSERT_EQ(s.size(), 5);
  std::vector<int64_t> shards;
  for (int64_t i = 0; i < s.size(); ++i) shards.push_back(s.shard(i));
  EXPECT_EQ(shards, (std::vector<int64_t>{0, 0, 2, 2, 2}));
  EXPECT_EQ(s.Files(),
            (std::vector<std::string>{dir / "s-0.tar", dir / "s-1.tar", dir / "s-2.tar"}));
  EXPECT_EQ(s.classes().size(), 6u);
  EXPECT_EQ(s.Describe(),
            "tar shards " + (dir / "s-{0..2}.tar") + ": 3 shards, 5 samples, 6 classes");

  SourceOptions o = TarOptions(dir.path(), "s-{0..2}.tar");
  o.limit = 3;
  auto limited = OpenTarShards(o);
  ASSERT_OK(limited);
  ASSERT_EQ((*limited)->size(), 3);
  EXPECT_EQ((*limited)->num_shards(), 3);
  EXPECT_EQ((*limited)->classes().size(), 6u);  // as for file lists: from every sample
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*limited)->key(i), s.key(i));
    EXPECT_EQ((*limited)->shard(i), s.shard(i));
  }
  Sample sample;
  ASSERT_OK((*limited)->Read(2, &sample));
  EXPECT_EQ(sample.encoded, Bytes("c"));
  EXPECT_EQ((*limited)->Read(3, &sample).code(), StatusCode::kInvalidArgument);

  // Without root, shard paths are used as given.
  auto plain = OpenTarShards(TarOptions("", dir / "s-{0..2}.tar"));
  ASSERT_OK(plain);
  EXPECT_EQ((*plain)->key(0), (dir / "s-0.tar") + ":a.jpg");
}

TEST(TarShards, ConcurrentReads) {
  TempDir dir;
  std::vector<std::vector<uint8_t>> want;
  for (int s = 0; s < 3; ++s) {
    std::vector<RawMember> m;
    for (int i = 0; i < 40; ++i) {
      const int k = s * 40 + i;
      const std::vector<uint8_t> b = SampleBytes(k, size_t(100 + 97 * k));
      want.push_back(b);
      m.push_back({std::to_string(k) + ".jpg", std::string(b.begin(), b.end())});
      m.push_back({std::to_string(k) + ".cls", std::to_string(k % 10)});
    }
    WriteBytes(dir / ("c-" + std::to_string(s) + ".tar"), BuildTar(m));
  }
  auto src = OpenTarShards(TarOptions(dir.path(), "c-{0..2}.tar"));
  ASSERT_OK(src);
  const Source& s = **src;
  ASSERT_EQ(s.size(), 120);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Sample sample;
      for (int round = 0; round < 20; ++round) {
        for (int64_t j = 0; j < s.size(); ++j) {
          const int64_t i = (j * (2 * t + 1) + round * 7) % s.size();
          if (!s.Read(i, &sample).ok() || sample.encoded != want[size_t(i)] ||
              sample.label != i % 10)
            bad.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

// ---------------------------------------------------------------- writer

// root/<class>/<i>.<ext>: arbitrary bytes (the source does not decode them).
int MakeFolder(const std::string& root, int classes, int per_class) {
  int n = 0;
  for (int c = 0; c < classes; ++c) {
    for (int i = 0; i < per_class; ++i, ++n) {
      const std::string ext = (n % 5 == 0) ? ".PNG" : ".jpg";
      WriteBytes(root + "/class" + std::to_string(c) + "/" + std::to_string(i) + ext,
                 SampleBytes(n, size_t(37 * n + (n % 3) * 511)));
    }
  }
  return n;
}

std::unique_ptr<Source> OpenFolder(const std::string& root) {
  SourceOptions o;
  o.root = root;
  auto r = OpenImageFolder(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

std::multiset<std::pair<std::vector<uint8_t>, int64_t>> Contents(const Source& s) {
  std::multiset<std::pair<std::vector<uint8_t>, int64_t>> out;
  Sample sample;
  for (int64_t i = 0; i < s.size(); ++i) {
    EXPECT_OK(s.Read(i, &sample));
    out.emplace(sample.encoded, sample.label);
  }
  return out;
}

TEST(TarWriter, RoundTripThroughTheReaderAndGnuTar) {
  TempDir dir;
  const int n = MakeFolder(dir / "photos", 3, 8);
  auto folder = OpenFolder(dir / "photos");
  ASSERT_TRUE(folder);
  ShardWriterOptions w;
  w.out_dir = dir / "out/nested";
  w.samples_per_shard = 5;
  w.seed = 7;
  std::ostringstream log;
  std::string pattern;
  ASSERT_OK(WriteShards(*folder, w, log, &pattern));
  EXPECT_EQ(pattern, "shard-{000000..000004}.tar");
  const int shards = (n + 4) / 5;
  EXPECT_EQ(shards, 5);
  EXPECT_TRUE(Contains(log.str(), w.out_dir + "/shard-000004.tar")) << log.str();

  auto tar = OpenTarShards(TarOptions(w.out_dir, pattern));
  ASSERT_OK(tar);
  const Source& t = **tar;
  EXPECT_EQ(t.num_shards(), shards);
  ASSERT_EQ(t.size(), n);
  EXPECT_EQ(Contents(t), Contents(*folder));
  for (int64_t i = 0; i < t.size(); ++i) EXPECT_EQ(t.shard(i), i / 5);
  // Shuffled: not the folder's order.
  int same = 0;
  for (int64_t i = 0; i < n; ++i) same += t.label(i) == folder->label(i);
  EXPECT_LT(same, n);
  // Only the written files, each a whole number of 10240-byte records.
  int files = 0;
  for (const auto& e : fs::directory_iterator(w.out_dir)) {
    ++files;
    EXPECT_EQ(fs::file_size(e.path()) % 10240, 0u) << e.path();
  }
  EXPECT_EQ(files, shards);

  if (!HaveTar()) GTEST_SKIP() << "tar is not installed: GNU tar's half not run";
  std::string listing;
  ASSERT_EQ(Shell("tar -tf " + Quote(w.out_dir + "/shard-000001.tar"), &listing), 0);
  std::string expected;
  for (int64_t i = 5; i < 10; ++i) {
    const std::string member(t.key(i).substr((w.out_dir + "/shard-000001.tar:").size()));
    char key[16];
    std::snprintf(key, sizeof key, "%08lld", static_cast<long long>(i));
    EXPECT_EQ(member.substr(0, 9), std::string(key) + ".");
    EXPECT_TRUE(member.substr(9) == "jpg" || member.substr(9) == "png") << member;
    expected += member + "\n" + key + ".cls\n";
  }
  EXPECT_EQ(listing, expected);

  fs::create_directories(dir / "x");
  for (int s = 0; s < shards; ++s) {
    char name[32];
    std::snprintf(name, sizeof name, "/shard-%06d.tar", s);
    ASSERT_EQ(Shell("tar -C " + Quote(dir / "x") + " -xf " + Quote(w.out_dir + name)), 0);
  }
  Sample sample;
  for (int64_t i = 0; i < t.size(); ++i) {
    const std::string_view k = t.key(i);
    const std::string member(k.substr(k.find(".tar:") + 5));
    ASSERT_OK(t.Read(i, &sample));
    EXPECT_EQ(ReadBytes(dir / ("x/" + member)), sample.encoded) << member;
    const std::string cls = member.substr(0, 8) + ".cls";
    const std::vector<uint8_t> label = ReadBytes(dir / ("x/" + cls));
    EXPECT_EQ(std::string(label.begin(), label.end()), std::to_string(t.label(i)));
  }
}

TEST(TarWriter, UnshuffledKeepsTheSourceOrderAndOneShardHasNoBraces) {
  TempDir dir;
  const int n = MakeFolder(dir / "photos", 2, 3);
  auto folder = OpenFolder(dir / "photos");
  ASSERT_TRUE(folder);
  ShardWriterOptions w;
  w.out_dir = dir / "out";
  w.prefix = "train";
  w.shuffle = false;
  std::ostringstream log;
  std::string pattern;
  ASSERT_OK(WriteShards(*folder, w, log, &pattern));
  EXPECT_EQ(pattern, "train-000000.tar");
  auto tar = OpenTarShards(TarOptions(w.out_dir, pattern));
  ASSERT_OK(tar);
  ASSERT_EQ((*tar)->size(), n);
  Sample a, b;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_OK(folder->Read(i, &a));
    ASSERT_OK((*tar)->Read(i, &b));
    EXPECT_EQ(a.encoded, b.encoded);
    EXPECT_EQ(a.label, b.label);
    // The extension comes from the file, lower case.
    const std::string folder_key(folder->key(i));
    const std::string want_ext = Contains(folder_key, ".PNG") ? ".png" : ".jpg";
    EXPECT_TRUE(Contains(std::string((*tar)->key(i)), want_ext)) << (*tar)->key(i);
  }
}

TEST(TarWriter, DeterministicBytes) {
  TempDir dir;
  MakeFolder(dir / "photos", 3, 7);
  auto folder = OpenFolder(dir / "photos");
  ASSERT_TRUE(folder);
  auto write = [&](const std::string& out, uint64_t seed) {
    ShardWriterOptions w;
    w.out_dir = out;
    w.samples_per_shard = 8;
    w.seed = seed;
    std::ostringstream log;
    std::string pattern;
    EXPECT_OK(WriteShards(*folder, w, log, &pattern));
    std::vector<std::vector<uint8_t>> files;
    for (int s = 0; s < 3; ++s) {
      char name[32];
      std::snprintf(name, sizeof name, "/shard-%06d.tar", s);
      files.push_back(ReadBytes(out + name));
    }
    return files;
  };
  const auto first = write(dir / "a", 3);
  EXPECT_EQ(first, write(dir / "b", 3));
  EXPECT_NE(first, write(dir / "c", 4));
}

TEST(TarWriter, RefusesANonEmptyFolderUnlessOverwriteAndRemovesStaleShards) {
  TempDir dir;
  MakeFolder(dir / "photos", 2, 6);
  auto folder = OpenFolder(dir / "photos");
  ASSERT_TRUE(folder);
  ShardWriterOptions w;
  w.out_dir = dir / "out";
  w.samples_per_shard = 2;
  std::ostringstream log;
  std::string pattern;
  ASSERT_OK(WriteShards(*folder, w, log, &pattern));
  EXPECT_EQ(pattern, "shard-{000000..000005}.tar");

  w.samples_per_shard = 5;
  Status s = WriteShards(*folder, w, log, &pattern);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), w.out_dir)) << s.ToString();

  WriteText(w.out_dir + "/notes.txt", "mine");
  w.overwrite = true;
  ASSERT_OK(WriteShards(*folder, w, log, &pattern));
  EXPECT_EQ(pattern, "shard-{000000..000002}.tar");
  EXPECT_TRUE(fs::exists(w.out_dir + "/shard-000002.tar"));
  EXPECT_FALSE(fs::exists(w.out_dir + "/shard-000003.tar"));
  EXPECT_FALSE(fs::exists(w.out_dir + "/shard-000005.tar"));
  EXPECT_TRUE(fs::exists(w.out_dir + "/notes.txt"));
  auto tar = OpenTarShards(TarOptions(w.out_dir, pattern));
  ASSERT_OK(tar);
  EXPECT_EQ((*tar)->size(), 12);
}

TEST(TarWriter, RefusesPixelSourcesAndBadOptions) {
  TempDir dir;
  test::WriteIdx(dir / "img", dir / "lbl", 10, 4, 4);
  SourceOptions o;
  o.type = "idx";
  o.root = dir.path();
  o.images = "img";
  o.labels = "lbl";
  auto idx = OpenSource(o);
  ASSERT_OK(idx);
  ShardWriterOptions w;
  w.out_dir = dir / "out";
  std::ostringstream log;
  std::string pattern;
  Status s = WriteShards(**idx, w, log, &pattern);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "encoded")) << s.ToString();
  EXPECT_FALSE(fs::exists(w.out_dir));

  MakeFolder(dir / "photos", 1, 2);
  auto folder = OpenFolder(dir / "photos");
  ASSERT_TRUE(folder);
  w.samples_per_shard = 0;
  EXPECT_EQ(WriteShards(*folder, w, log, &pattern).code(), StatusCode::kInvalidArgument);
  w.samples_per_shard = 1;
  w.prefix = "a/b";
  EXPECT_EQ(WriteShards(*folder, w, log, &pattern).code(), StatusCode::kInvalidArgument);
  w.prefix = "shard";
  w.out_dir = "";
  EXPECT_EQ(WriteShards(*folder, w, log, &pattern).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace flowfeed
