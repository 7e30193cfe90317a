#include "flowfeed/registry.h"

#include <gtest/gtest.h>

#include <set>

#include "flowfeed/rng.h"
#include "test_util.h"

namespace flowfeed {
namespace {

class NopStage : public Stage {
 public:
  Status Process(Sample&, const StageContext&) override { return Status::Ok(); }
};

StageInfo Info(const std::string& name, const std::string& origin) {
  StageInfo info;
  info.name = name;
  info.origin = origin;
  info.factory = [](const StageParams&) -> Result<std::unique_ptr<Stage>> {
    return std::unique_ptr<Stage>(new NopStage());
  };
  return info;
}

TEST(Registry, DuplicateNameNamesBothOrigins) {
  StageRegistry reg;
  ASSERT_OK(reg.Register(Info("cutout", "libcutout.so")));
  Status s = reg.Register(Info("cutout", "libother.so"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("libcutout.so"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("libother.so"), std::string::npos) << s.message();
  EXPECT_EQ(reg.Find("cutout")->origin, "libcutout.so");  // the first one stays
}

TEST(Registry, RejectsEmptyNameAndMissingFactory) {
  StageRegistry reg;
  EXPECT_FALSE(reg.Register(Info("", "x")).ok());
  StageInfo no_factory = Info("a", "x");
  no_factory.factory = nullptr;
  EXPECT_FALSE(reg.Register(no_factory).ok());
  EXPECT_EQ(reg.Find("a"), nullptr);
}

TEST(Registry, BuiltinsAreListedSortedWithTraits) {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  std::vector<std::string> names = reg.Names();
  EXPECT_EQ(names, (std::vector<std::string>{"center_crop", "decode", "normalize",
                                             "random_horizontal_flip", "random_resized_crop",
                                             "resize"}));
  EXPECT_TRUE(reg.Find("decode")->traits.deterministic);
  EXPECT_TRUE(reg.Find("resize")->traits.deterministic);
  EXPECT_FALSE(reg.Find("random_resized_crop")->traits.deterministic);
  EXPECT_FALSE(reg.Find("random_horizontal_flip")->traits.deterministic);
  for (const StageInfo* info : reg.List()) {
    EXPECT_FALSE(info->doc.empty()) << info->name;
    for (const ParamSpec& p : info->params) EXPECT_FALSE(p.doc.empty()) << info->name << "." << p.name;
  }
}

TEST(Registry, StageParamsAccessorsCheckTypes) {
  StageParams p;
  p.Set("n", int64_t(3));
  p.Set("xs", std::vector<int64_t>{1, 2});
  EXPECT_EQ(p.Int("n"), 3);
  EXPECT_EQ(p.Float("n"), 3.0);  // an int is a valid float
  EXPECT_EQ(p.FloatList("xs"), (std::vector<double>{1.0, 2.0}));
  EXPECT_THROW(p.String("n"), std::invalid_argument);
  EXPECT_THROW(p.Int("missing"), std::invalid_argument);
  EXPECT_EQ(p.ToString(), "n=3 xs=[1, 2]");
}

// The generator is a pure function of its key: the property reproducibility rests on.
TEST(Rng, SameKeySameStreamOtherKeysDiffer) {
  Rng a(1, 2, 3, 4), b(1, 2, 3, 4);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.NextU64(), b.NextU64());
  std::set<uint64_t> firsts;
  for (uint64_t seed : {0, 1})
    for (uint64_t epoch : {0, 1})
      for (uint64_t index : {0, 1})
        for (uint64_t stream : {0, 1}) firsts.insert(Rng(seed, epoch, index, stream).NextU64());
  EXPECT_EQ(firsts.size(), 16u);
}

TEST(Rng, RangesAndRoughUniformity) {
  Rng r(7, 0, 0, 0);
  int counts[6] = {};
  double sum = 0;
  for (int i = 0; i < 60000; ++i) {
    int64_t v = r.UniformInt(-2, 3);
    ASSERT_GE(v, -2);
    ASSERT_LE(v, 3);
    ++counts[v + 2];
    double u = r.Uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);
  EXPECT_NEAR(sum / 60000, 0.5, 0.01);
  EXPECT_EQ(r.UniformInt(5, 5), 5);
  EXPECT_EQ(r.UniformInt(5, 4), 5);
}

}  // namespace
}  // namespace flowfeed
