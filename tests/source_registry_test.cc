// Tests of the source registry: lookup, unknown types, the built-ins' keys and traits, and a
// source type registered by a test and opened through OpenSource().
#include "flowfeed/source_registry.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace flowfeed {
namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A source of `n` samples that gives each sample's index as its one encoded byte.
class CountingSource final : public Source {
 public:
  explicit CountingSource(int64_t n) : n_(n), classes_{"only"} {}
  int64_t size() const override { return n_; }
  int64_t label(int64_t) const override { return 0; }
  std::string_view key(int64_t) const override { return "counting"; }
  const std::vector<std::string>& classes() const override { return classes_; }
  Status Read(int64_t index, Sample* sample) const override {
    sample->image.Clear();
    sample->encoded.assign(1, uint8_t(index));
    sample->index = index;
    sample->label = 0;
    return Status::Ok();
  }
  std::string Describe() const override { return "counting: " + std::to_string(n_); }
  std::vector<std::string> Files() const override { return {}; }

 private:
  int64_t n_;
  std::vector<std::string> classes_;
};

SourceInfo CountingInfo() {
  SourceInfo info;
  info.name = "counting";
  info.doc = "the numbers 0 .. limit-1";
  info.keys = {SourceKeySpec{"root", false, "unused", ""}};
  info.factory = [](const SourceOptions& o) -> Result<std::unique_ptr<Source>> {
    return std::unique_ptr<Source>(new CountingSource(o.limit));
  };
  return info;
}

TEST(SourceRegistry, BuiltinsInRegistrationOrder) {
  SourceRegistry registry;
  RegisterBuiltinSources(&registry);
  const std::vector<std::string> names = {"image_folder", "file_list", "idx", "tar"};
  EXPECT_EQ(registry.Names(), names);
  EXPECT_EQ(BuiltinSources().Names(), registry.Names());
  for (const SourceInfo* info : registry.List()) {
    EXPECT_FALSE(info->doc.empty()) << info->name;
    EXPECT_TRUE(bool(info->factory)) << info->name;
    EXPECT_TRUE(info->Accepts("root")) << info->name;
  }
}

TEST(SourceRegistry, FindAndLookup) {
  const SourceRegistry& registry = BuiltinSources();
  ASSERT_NE(registry.Find("tar"), nullptr);
  EXPECT_EQ(registry.Find("tar")->name, "tar");
  EXPECT_EQ(registry.Find("parquet"), nullptr);
  EXPECT_EQ(registry.Find(""), nullptr);
  EXPECT_EQ(FindSourceInfo("idx"), registry.Find("idx"));
  auto found = registry.Lookup("file_list");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ((*found)->name, "file_list");
}

TEST(SourceRegistry, UnknownTypeListsTheKnownOnesAndSuggestsACloseOne) {
  auto typo = BuiltinSources().Lookup("image_foldr");
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(typo.status().message(),
            "unknown source type 'image_foldr' (expected one of: image_folder, file_list, idx, "
            "tar); did you mean \"image_folder\"?");

  auto far = BuiltinSources().Lookup("parquet");
  ASSERT_FALSE(far.ok());
  EXPECT_FALSE(Contains(far.status().message(), "did you mean")) << far.status().message();

  SourceOptions o;
  o.type = "tarr";
  o.where = SourceLocation{"a.yaml", 3, 9};
  auto opened = OpenSource(o);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().message(),
            "a.yaml:3:9: source.type: unknown source type 'tarr' (expected one of: image_folder, "
            "file_list, idx, tar); did you mean \"tar\"?");
}

TEST(SourceRegistry, TraitsOfTheBuiltins) {
  const SourceRegistry& r = BuiltinSources();
  EXPECT_FALSE(r.Find("image_folder")->traits.gives_pixels);
  EXPECT_FALSE(r.Find("image_folder")->traits.sequential);
  EXPECT_FALSE(r.Find("file_list")->traits.gives_pixels);
  EXPECT_FALSE(r.Find("file_list")->traits.sequential);
  EXPECT_TRUE(r.Find("idx")->traits.gives_pixels);
  EXPECT_FALSE(r.Find("idx")->traits.sequential);
  EXPECT_FALSE(r.Find("tar")->traits.gives_pixels);
  EXPECT_TRUE(r.Find("tar")->traits.sequential);

  EXPECT_TRUE(SourceGivesPixels("idx"));
  EXPECT_FALSE(SourceGivesPixels("tar"));
  EXPECT_FALSE(SourceGivesPixels("parquet"));
}

TEST(SourceRegistry, KeysOfTheBuiltins) {
  const SourceRegistry& r = BuiltinSources();
  // Every type but tar needs a root: shard patterns may stand alone.
  EXPECT_TRUE(r.Find("image_folder")->Requires("root"));
  EXPECT_TRUE(r.Find("file_list")->Requires("root"));
  EXPECT_TRUE(r.Find("idx")->Requires("root"));
  EXPECT_TRUE(r.Find("tar")->Accepts("root"));
  EXPECT_FALSE(r.Find("tar")->Requires("root"));

  EXPECT_TRUE(r.Find("file_list")->Requires("list"));
  EXPECT_TRUE(r.Find("tar")->Requires("shards"));
  EXPECT_FALSE(r.Find("idx")->Requires("images"));
  EXPECT_EQ(r.Find("idx")->FindKey("images")->default_value, "train-images-idx3-ubyte.gz");
  EXPECT_EQ(r.Find("idx")->FindKey("labels")->default_value, "train-labels-idx1-ubyte.gz");
  EXPECT_EQ(r.Find("idx")->FindKey("list"), nullptr);

  const std::map<std::string, std::string> owners = {
      {"extensions", "image_folder or tar"}, {"images", "idx"},           {"labels", "idx"},
      {"label_extension", "tar"},            {"list", "file_list"},       {"shards", "tar"},
      {"shuffle_buffer", "tar"}};
  EXPECT_EQ(r.KeyOwners(), owners);  // root: every type, so absent
}

TEST(SourceRegistry, FillSourceDefaultsWritesIdxFileNamesOnlyWhenEmpty) {
  SourceOptions o;
  o.type = "idx";
  o.labels = "t10k-labels-idx1-ubyte.gz";
  FillSourceDefaults(*FindSourceInfo("idx"), &o);
  EXPECT_EQ(o.images, "train-images-idx3-ubyte.gz");
  EXPECT_EQ(o.labels, "t10k-labels-idx1-ubyte.gz");

  SourceOptions folder;
  FillSourceDefaults(*FindSourceInfo("image_folder"), &folder);
  EXPECT_TRUE(folder.images.empty());
  EXPECT_TRUE(folder.root.empty());
  EXPECT_EQ(folder.label_extension, "cls");
}

TEST(SourceRegistry, RegisterRefusesBadEntries) {
  SourceRegistry registry;
  ASSERT_TRUE(registry.Register(CountingInfo()).ok());
  EXPECT_EQ(registry.Register(CountingInfo()).code(), StatusCode::kInvalidArgument);

  SourceInfo unnamed = CountingInfo();
  unnamed.name.clear();
  EXPECT_EQ(registry.Register(unnamed).code(), StatusCode::kInvalidArgument);

  SourceInfo no_factory = CountingInfo();
  no_factory.name = "no_factory";
  no_factory.factory = nullptr;
  EXPECT_EQ(registry.Register(no_factory).code(), StatusCode::kInvalidArgument);

  SourceInfo twice = CountingInfo();
  twice.name = "twice";
  twice.keys.push_back(twice.keys.front());
  const Status s = registry.Register(twice);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(s.message(), "'root' twice")) << s.message();

  EXPECT_EQ(registry.Names(), std::vector<std::string>{"counting"});
}

TEST(SourceRegistry, RegisteredTypeOpensThroughOpenSource) {
  SourceRegistry registry;
  RegisterBuiltinSources(&registry);
  const SourceInfo* tar = registry.Find("tar");  // must survive later registrations
  ASSERT_TRUE(registry.Register(CountingInfo()).ok());
  EXPECT_EQ(registry.Find("tar"), tar);

  SourceOptions o;
  o.type = "counting";
  o.limit = 3;
  auto src = OpenSource(registry, o);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  EXPECT_EQ((*src)->size(), 3);
  Sample sample;
  ASSERT_TRUE((*src)->Read(2, &sample).ok());
  EXPECT_EQ(sample.encoded, std::vector<uint8_t>{2});

  // Not in the built-ins: OpenSource(options) does not know it.
  auto builtin = OpenSource(o);
  ASSERT_FALSE(builtin.ok());
  EXPECT_TRUE(Contains(builtin.status().message(), "unknown source type 'counting'"));
}

TEST(SourceRegistry, BuiltinFactoriesAreTheOpenFunctions) {
  // A missing root fails the same way through the registry as through OpenImageFolder().
  test::TempDir dir;
  SourceOptions o;
  o.type = "image_folder";
  o.root = dir / "missing";
  auto via_registry = OpenSource(o);
  auto direct = OpenImageFolder(o);
  ASSERT_FALSE(via_registry.ok());
  ASSERT_FALSE(direct.ok());
  EXPECT_EQ(via_registry.status().ToString(), direct.status().ToString());
}

}  // namespace
}  // namespace flowfeed
