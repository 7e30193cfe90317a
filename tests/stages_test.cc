// Tests of the built-in stages (engine/src/builtin_stages.cc), built through the registry's
// factories exactly as the engine builds them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <thread>
#include <vector>

#include "codec/codec.h"
#include "flowfeed/registry.h"
#include "flowfeed/sample.h"
#include "flowfeed/stage.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::FillParams;

using test::PatternImage;
using test::SolidImage;
using Overrides = std::map<std::string, ParamValue>;

const StageRegistry& Builtins() {
  static const StageRegistry* registry = [] {
    auto* r = new StageRegistry;
    RegisterBuiltinStages(r);
    return r;
  }();
  return *registry;
}

Result<std::unique_ptr<Stage>> TryMake(const std::string& type, const Overrides& overrides = {}) {
  const StageInfo* info = Builtins().Find(type);
  if (!info) return Status::NotFound("no stage " + type);
  return info->factory(FillParams(*info, overrides));
}

std::unique_ptr<Stage> Make(const std::string& type, const Overrides& overrides = {}) {
  Result<std::unique_ptr<Stage>> r = TryMake(type, overrides);
  EXPECT_TRUE(r.ok()) << type << ": " << r.status().ToString();
  if (!r.ok()) return nullptr;
  return std::move(r).value();
}

Sample MakeSample(Image img, std::string_view source = "img/test.png", int64_t index = 0) {
  Sample s;
  s.source = source;
  s.index = index;
  s.image = std::move(img);
  return s;
}

Status Apply(Stage* stage, Sample& sample, uint64_t seed = 1, int epoch = 0, int64_t index = 0,
           int stage_index = 0) {
  return stage->Process(sample, StageContext(seed, epoch, index, stage_index));
}

// An image whose pixel (y, x, c) is y * 100 + x * 10 + c (mod 256), easy to reason about.
Image IndexImage(int h, int w, int channels) {
  Image img = Image::Allocate(h, w, channels);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c)
        img.row<uint8_t>(y)[x * channels + c] = uint8_t((y * 100 + x * 10 + c) % 256);
  return img;
}

Image ToFloat(const Image& in) {
  Image out = Image::Allocate(in.height(), in.width(), in.channels(), DType::kFloat32);
  const size_t n = size_t(in.height()) * in.width() * in.channels();
  for (size_t i = 0; i < n; ++i) reinterpret_cast<float*>(out.data())[i] = float(in.data()[i]) + 0.25f;
  return out;
}

uint8_t At(const Image& img, int y, int x, int c = 0) {
  return img.row<uint8_t>(y)[x * img.channels() + c];
}
float AtF(const Image& img, int y, int x, int c = 0) {
  return img.row<float>(y)[x * img.channels() + c];
}

bool SameBytes(const Image& a, const Image& b) {
  return a.height() == b.height() && a.width() == b.width() && a.channels() == b.channels() &&
         a.dtype() == b.dtype() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

void ExpectShape(const Image& img, int h, int w, int c, DType t = DType::kUInt8) {
  EXPECT_EQ(img.height(), h);
  EXPECT_EQ(img.width(), w);
  EXPECT_EQ(img.channels(), c);
  EXPECT_EQ(img.dtype(), t);
}

void ExpectError(const Result<std::unique_ptr<Stage>>& r, const std::string& part) {
  ASSERT_FALSE(r.ok()) << "expected an error mentioning " << part;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find(part), std::string::npos) << r.status().message();
}

// ---------------------------------------------------------------------------------------------
// Registry contents

TEST(StagesTest, RegistersAllBuiltins) {
  EXPECT_EQ(Builtins().Names(),
            (std::vector<std::string>{"center_crop", "decode", "normalize", "random_horizontal_flip",
                                      "random_resized_crop", "resize"}));
  for (const StageInfo* info : Builtins().List()) {
    EXPECT_FALSE(info->doc.empty()) << info->name;
    EXPECT_TRUE(info->traits.thread_safe) << info->name;
    const bool random = info->name.rfind("random_", 0) == 0;
    EXPECT_EQ(info->traits.deterministic, !random) << info->name;
    EXPECT_EQ(info->origin, "built-in");
    for (const ParamSpec& p : info->params) {
      EXPECT_FALSE(p.doc.empty()) << info->name << "." << p.name;
      if (!p.choices.empty() && p.default_value) {
        const std::string& def = std::get<std::string>(*p.default_value);
        EXPECT_NE(std::find(p.choices.begin(), p.choices.end(), def), p.choices.end())
            << info->name << "." << p.name;
      }
    }
  }
  // Sizes: resize's single value means "shorter side", so it must not be broadcast to [s, s].
  EXPECT_FALSE(Builtins().Find("resize")->FindParam("size")->scalar_broadcast);
  EXPECT_TRUE(Builtins().Find("center_crop")->FindParam("size")->scalar_broadcast);
  EXPECT_FALSE(Builtins().Find("resize")->FindParam("size")->default_value.has_value());
  // Registering twice is a programming error.
  StageRegistry twice;
  RegisterBuiltinStages(&twice);
  EXPECT_THROW(RegisterBuiltinStages(&twice), std::logic_error);
}

// ---------------------------------------------------------------------------------------------
// center_crop

TEST(StagesTest, CenterCropOddAndEvenOffsets) {
  auto crop = Make("center_crop", {{"size", std::vector<int64_t>{2, 3}}});
  // 5x7: top = round(1.5) = 2 (half to even), left = round(2.0) = 2.
  Sample s = MakeSample(IndexImage(5, 7, 1));
  ASSERT_OK(Apply(crop.get(), s));
  ExpectShape(s.image, 2, 3, 1);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x) EXPECT_EQ(At(s.image, y, x), ((y + 2) * 100 + (x + 2) * 10) % 256) << y << "," << x;

  // 7x8: top = round(2.5) = 2, left = round(2.5) = 2; 3 channels.
  Sample t = MakeSample(IndexImage(7, 8, 3));
  ASSERT_OK(Apply(crop.get(), t));
  ExpectShape(t.image, 2, 3, 3);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x)
      for (int c = 0; c < 3; ++c)
        EXPECT_EQ(At(t.image, y, x, c), ((y + 2) * 100 + (x + 2) * 10 + c) % 256);

  // 6x9 with a square crop of one value: top = round(2.0) = 2, left = round(3.5) = 4.
  auto square = Make("center_crop", {{"size", std::vector<int64_t>{2}}});
  Sample u = MakeSample(IndexImage(6, 9, 1));
  ASSERT_OK(Apply(square.get(), u));
  ExpectShape(u.image, 2, 2, 1);
  EXPECT_EQ(At(u.image, 0, 0), (2 * 100 + 4 * 10) % 256);
  EXPECT_EQ(At(u.image, 1, 1), (3 * 100 + 5 * 10) % 256);
}

TEST(StagesTest, CenterCropPadsWithZeros) {
  // 2x3 into 4x6: one row of zeros above and below, one column left, two right (torchvision
  // puts the odd pixel after).
  auto crop = Make("center_crop", {{"size", std::vector<int64_t>{4, 6}}});
  Image src = SolidImage(2, 3, 3, 9);
  Sample s = MakeSample(src);
  ASSERT_OK(Apply(crop.get(), s));
  ExpectShape(s.image, 4, 6, 3);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x) {
      const bool inside = y >= 1 && y < 3 && x >= 1 && x < 4;
      for (int c = 0; c < 3; ++c) EXPECT_EQ(At(s.image, y, x, c), inside ? 9 : 0) << y << "," << x;
    }

  // Mixed: 5x2 into 3x5: rows cropped (top = 1), columns padded (left 1, right 2).
  auto mixed = Make("center_crop", {{"size", std::vector<int64_t>{3, 5}}});
  Sample m = MakeSample(IndexImage(5, 2, 1));
  ASSERT_OK(Apply(mixed.get(), m));
  ExpectShape(m.image, 3, 5, 1);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x) {
      const int want = (x >= 1 && x < 3) ? (y + 1) * 100 + (x - 1) * 10 : 0;
      EXPECT_EQ(At(m.image, y, x), want % 256) << y << "," << x;
    }
}

TEST(StagesTest, CenterCropFloatAndSameSize) {
  auto crop = Make("center_crop", {{"size", std::vector<int64_t>{2, 2}}});
  Image f = ToFloat(IndexImage(4, 4, 3));
  Sample s = MakeSample(f.Clone());
  ASSERT_OK(Apply(crop.get(), s));
  ExpectShape(s.image, 2, 2, 3, DType::kFloat32);
  EXPECT_FLOAT_EQ(AtF(s.image, 0, 0, 2), AtF(f, 1, 1, 2));
  EXPECT_FLOAT_EQ(AtF(s.image, 1, 0, 1), AtF(f, 2, 1, 1));

  // Already the size: untouched, no copy.
  Sample same = MakeSample(IndexImage(2, 2, 1));
  const uint8_t* before = same.image.data();
  ASSERT_OK(Apply(crop.get(), same));
  EXPECT_EQ(same.image.data(), before);
}

// ---------------------------------------------------------------------------------------------
// random_horizontal_flip

TEST(StagesTest, FlipReversesColumns) {
  auto always = Make("random_horizontal_flip", {{"p", 1.0}});
  auto never = Make("random_horizontal_flip", {{"p", 0.0}});
  Image src = IndexImage(4, 5, 3);
  for (int64_t index = 0; index < 20; ++index) {
    Sample s = MakeSample(src.Clone());
    ASSERT_OK(Apply(always.get(), s, 7, 0, index));
    ExpectShape(s.image, 4, 5, 3);
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 5; ++x)
        for (int c = 0; c < 3; ++c) ASSERT_EQ(At(s.image, y, x, c), At(src, y, 4 - x, c));

    Sample n = MakeSample(src.Clone());
    ASSERT_OK(Apply(never.get(), n, 7, 0, index));
    ASSERT_TRUE(SameBytes(n.image, src));
  }

  // One channel, even width, float.
  Image g = ToFloat(IndexImage(3, 6, 1));
  Sample f = MakeSample(g.Clone());
  ASSERT_OK(Apply(always.get(), f));
  ExpectShape(f.image, 3, 6, 1, DType::kFloat32);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 6; ++x) ASSERT_EQ(AtF(f.image, y, x), AtF(g, y, 5 - x));
}

TEST(StagesTest, FlipHalfTheTimeAndReproducibly) {
  auto flip = Make("random_horizontal_flip");  // p = 0.5
  Image src = IndexImage(2, 3, 1);
  int flipped = 0;
  for (int64_t index = 0; index < 400; ++index) {
    Sample a = MakeSample(src.Clone());
    Sample b = MakeSample(src.Clone());
    ASSERT_OK(Apply(flip.get(), a, 3, 1, index, 2));
    ASSERT_OK(Apply(flip.get(), b, 3, 1, index, 2));
    ASSERT_TRUE(SameBytes(a.image, b.image));
    if (!SameBytes(a.image, src)) ++flipped;
  }
  EXPECT_GT(flipped, 150);
  EXPECT_LT(flipped, 250);
}

// ---------------------------------------------------------------------------------------------
// normalize

TEST(StagesTest, NormalizeExactValues) {
  auto norm = Make("normalize", {{"mean", std::vector<double>{0.5, 0.25, 0.0}},
                                 {"std", std::vector<double>{0.5, 0.25, 2.0}}});
  Image img = Image::Allocate(1, 2, 3);
  const uint8_t px[6] = {0, 255, 51, 255, 0, 102};
  std::memcpy(img.data(), px, 6);
  Sample s = MakeSample(img);
  ASSERT_OK(Apply(norm.get(), s));
  ExpectShape(s.image, 1, 2, 3, DType::kFloat32);
  const float* out = reinterpret_cast<const float*>(s.image.data());
  EXPECT_NEAR(out[0], (0 / 255.0 - 0.5) / 0.5, 1e-6);     // -1
  EXPECT_NEAR(out[1], (255 / 255.0 - 0.25) / 0.25, 1e-6); // 3
  EXPECT_NEAR(out[2], (51 / 255.0 - 0.0) / 2.0, 1e-6);    // 0.1
  EXPECT_NEAR(out[3], 1.0, 1e-6);
  EXPECT_NEAR(out[4], -1.0, 1e-6);
  EXPECT_NEAR(out[5], 0.2, 1e-6);
}

TEST(StagesTest, NormalizeDefaultsAndLongRows) {
  // ImageNet defaults, an image long enough for the blocked loop and its tail.
  auto norm = Make("normalize");
  Image img = PatternImage(3, 101, 3, 4);
  Sample s = MakeSample(img);
  ASSERT_OK(Apply(norm.get(), s));
  ExpectShape(s.image, 3, 101, 3, DType::kFloat32);
  const double mean[3] = {0.485, 0.456, 0.406}, stdev[3] = {0.229, 0.224, 0.225};
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 101; ++x)
      for (int c = 0; c < 3; ++c)
        ASSERT_NEAR(AtF(s.image, y, x, c), (At(img, y, x, c) / 255.0 - mean[c]) / stdev[c], 1e-5)
            << y << "," << x << "," << c;
}

TEST(StagesTest, NormalizeOneValueAndFloatInput) {
  auto norm = Make("normalize", {{"mean", std::vector<double>{10.0}},
                                 {"std", std::vector<double>{4.0}},
                                 {"scale", 1.0}});
  // One value applies to every channel, for 1 and 3 channels.
  for (int channels : {1, 3}) {
    Sample s = MakeSample(SolidImage(2, 2, channels, 30));
    ASSERT_OK(Apply(norm.get(), s));
    ExpectShape(s.image, 2, 2, channels, DType::kFloat32);
    for (int c = 0; c < channels; ++c) EXPECT_FLOAT_EQ(AtF(s.image, 1, 1, c), 5.0f);
  }
  // Float input: the same formula.
  Image f = Image::Allocate(1, 1, 1, DType::kFloat32);
  *reinterpret_cast<float*>(f.data()) = 2.0f;
  Sample s = MakeSample(f);
  ASSERT_OK(Apply(norm.get(), s));
  EXPECT_FLOAT_EQ(AtF(s.image, 0, 0), -2.0f);
}

TEST(StagesTest, NormalizeChannelMismatchIsAnError) {
  auto norm = Make("normalize");
  Sample s = MakeSample(SolidImage(2, 2, 1, 0), "mnist[3]");
  Status st = Apply(norm.get(), s);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("normalize: image has 1 channel, mean has 3 values"), std::string::npos)
      << st.message();
  EXPECT_EQ(st.message().rfind("mnist[3]", 0), 0u) << st.message();
}

// ---------------------------------------------------------------------------------------------
// resize

TEST(StagesTest, ResizeSolidStaysSolid) {
  for (const char* interp : {"auto", "bilinear", "area", "nearest", "bicubic"}) {
    for (auto size : {std::vector<int64_t>{20, 30}, std::vector<int64_t>{90, 70}}) {
      auto resize = Make("resize", {{"size", size}, {"interpolation", std::string(interp)}});
      Sample s = MakeSample(SolidImage(37, 53, 3, 123));
      ASSERT_OK(Apply(resize.get(), s));
      ExpectShape(s.image, int(size[0]), int(size[1]), 3);
      for (size_t i = 0; i < s.image.size_bytes(); ++i) ASSERT_EQ(s.image.data()[i], 123) << interp;
    }
  }
}

TEST(StagesTest, ResizeAreaDownscaleAveragesBlocks) {
  // 4x4 -> 2x2 with area averaging: each output pixel is the mean of a 2x2 block.
  const uint8_t px[16] = {10, 20, 100, 100,   //
                          30, 40, 100, 200,   //
                          0, 0, 255, 255,     //
                          4, 8, 255, 251};
  Image img = Image::Allocate(4, 4, 1);
  std::memcpy(img.data(), px, 16);
  for (const char* interp : {"area", "auto"}) {
    auto resize = Make("resize", {{"size", std::vector<int64_t>{2, 2}}, {"interpolation", std::string(interp)}});
    Sample s = MakeSample(img);
    ASSERT_OK(Apply(resize.get(), s));
    ExpectShape(s.image, 2, 2, 1);
    EXPECT_EQ(At(s.image, 0, 0), 25);   // (10 + 20 + 30 + 40) / 4
    EXPECT_EQ(At(s.image, 0, 1), 125);  // (100 + 100 + 100 + 200) / 4
    EXPECT_EQ(At(s.image, 1, 0), 3);    // (0 + 0 + 4 + 8) / 4
    EXPECT_EQ(At(s.image, 1, 1), 254);  // (255 + 255 + 255 + 251) / 4
  }
  // The same on a one-value size (shorter side 2 of a square) and on float pixels.
  auto shorter = Make("resize", {{"size", std::vector<int64_t>{2}}});
  Sample f = MakeSample(ToFloat(img));
  ASSERT_OK(Apply(shorter.get(), f));
  ExpectShape(f.image, 2, 2, 1, DType::kFloat32);
  EXPECT_FLOAT_EQ(AtF(f.image, 0, 0), 25.25f);
  EXPECT_FLOAT_EQ(AtF(f.image, 1, 1), 254.25f);
}

TEST(StagesTest, ResizeShorterSideKeepsAspect) {
  auto resize = Make("resize", {{"size", std::vector<int64_t>{25}}});
  Sample tall = MakeSample(PatternImage(100, 50, 3));
  ASSERT_OK(Apply(resize.get(), tall));
  ExpectShape(tall.image, 50, 25, 3);
  Sample wide = MakeSample(PatternImage(50, 100, 1));
  ASSERT_OK(Apply(resize.get(), wide));
  ExpectShape(wide.image, 25, 50, 1);
  // torchvision truncates the long side: int(20 * 100 / 30) = 66.
  auto twenty = Make("resize", {{"size", std::vector<int64_t>{20}}});
  Sample odd = MakeSample(PatternImage(100, 30, 3));
  ASSERT_OK(Apply(twenty.get(), odd));
  ExpectShape(odd.image, 66, 20, 3);
  // Upscaling works the same way.
  Sample small = MakeSample(PatternImage(10, 8, 3));
  ASSERT_OK(Apply(twenty.get(), small));
  ExpectShape(small.image, 25, 20, 3);
}

TEST(StagesTest, ResizeExactAndFloat) {
  auto resize = Make("resize", {{"size", std::vector<int64_t>{17, 31}}});
  Sample s = MakeSample(PatternImage(40, 40, 3));
  ASSERT_OK(Apply(resize.get(), s));
  ExpectShape(s.image, 17, 31, 3);
  Sample f = MakeSample(ToFloat(PatternImage(40, 40, 1)));
  ASSERT_OK(Apply(resize.get(), f));
  ExpectShape(f.image, 17, 31, 1, DType::kFloat32);
  // Same size: nothing to do.
  Sample same = MakeSample(PatternImage(17, 31, 3));
  const uint8_t* before = same.image.data();
  ASSERT_OK(Apply(resize.get(), same));
  EXPECT_EQ(same.image.data(), before);
}

TEST(StagesTest, ResizeReusesScratch) {
  // Steady state: the sample's two buffers alternate, nothing is allocated per sample.
  auto resize = Make("resize", {{"size", std::vector<int64_t>{8, 8}}});
  Sample s;
  std::set<const uint8_t*> buffers;
  for (int i = 0; i < 8; ++i) {
    // The next input arrives in the sample's own storage, as the decoder writes it.
    s.image.Reshape(16, 16, 3);
    std::memset(s.image.data(), i, s.image.size_bytes());
    ASSERT_OK(Apply(resize.get(), s));
    ExpectShape(s.image, 8, 8, 3);
    if (i >= 2) {
      buffers.insert(s.image.data());
      buffers.insert(s.scratch.data());
    }
  }
  EXPECT_EQ(buffers.size(), 2u);
}

// ---------------------------------------------------------------------------------------------
// random_resized_crop

TEST(StagesTest, RandomResizedCropShapeAndReproducibility) {
  auto rrc = Make("random_resized_crop", {{"size", std::vector<int64_t>{24, 32}}});
  const Image inputs[] = {PatternImage(60, 80, 3, 1), PatternImage(200, 20, 3, 2),
                          PatternImage(5, 7, 1, 3), PatternImage(1, 1, 3, 4),
                          ToFloat(PatternImage(30, 30, 3, 5))};
  for (const Image& in : inputs) {
    for (int64_t index = 0; index < 30; ++index) {
      Sample a = MakeSample(in.Clone());
      Sample b = MakeSample(in.Clone());
      ASSERT_OK(Apply(rrc.get(), a, 42, 3, index, 1));
      ASSERT_OK(Apply(rrc.get(), b, 42, 3, index, 1));
      ExpectShape(a.image, 24, 32, in.channels(), in.dtype());
      ASSERT_TRUE(SameBytes(a.image, b.image));
    }
  }
}

TEST(StagesTest, RandomResizedCropVariesWithIndex) {
  auto rrc = Make("random_resized_crop", {{"size", std::vector<int64_t>{16}}});
  Image in = PatternImage(64, 64, 3, 6);
  std::vector<Image> outs;
  for (int64_t index = 0; index < 8; ++index) {
    Sample s = MakeSample(in.Clone());
    ASSERT_OK(Apply(rrc.get(), s, 42, 0, index, 1));
    ExpectShape(s.image, 16, 16, 3);
    outs.push_back(s.image);
  }
  int distinct_pairs = 0;
  for (size_t i = 0; i < outs.size(); ++i)
    for (size_t j = i + 1; j < outs.size(); ++j) distinct_pairs += !SameBytes(outs[i], outs[j]);
  EXPECT_EQ(distinct_pairs, 28);
  // Another epoch or seed changes it too.
  Sample a = MakeSample(in.Clone()), b = MakeSample(in.Clone()), c = MakeSample(in.Clone());
  ASSERT_OK(Apply(rrc.get(), a, 42, 0, 0, 1));
  ASSERT_OK(Apply(rrc.get(), b, 42, 1, 0, 1));
  ASSERT_OK(Apply(rrc.get(), c, 43, 0, 0, 1));
  EXPECT_FALSE(SameBytes(a.image, b.image));
  EXPECT_FALSE(SameBytes(a.image, c.image));
}

TEST(StagesTest, RandomResizedCropFullScaleEqualsResize) {
  auto rrc = Make("random_resized_crop", {{"size", std::vector<int64_t>{12, 12}},
                                          {"scale", std::vector<double>{1.0, 1.0}},
                                          {"ratio", std::vector<double>{1.0, 1.0}}});
  auto resize = Make("resize", {{"size", std::vector<int64_t>{12, 12}},
                                {"interpolation", std::string("bilinear")}});
  Image in = PatternImage(30, 30, 3, 8);
  for (int64_t index = 0; index < 5; ++index) {
    Sample a = MakeSample(in.Clone());
    Sample b = MakeSample(in.Clone());
    ASSERT_OK(Apply(rrc.get(), a, 9, 0, index, 0));
    ASSERT_OK(Apply(resize.get(), b));
    ASSERT_TRUE(SameBytes(a.image, b.image));
  }
}

TEST(StagesTest, RandomResizedCropFallbackCentresTheCrop) {
  // ratio 2 cannot fit a full-area crop of a square: all 10 attempts fail, and the fallback
  // takes the full width and height = round(20 / 2) = 10, centred: rows 5..14.
  auto rrc = Make("random_resized_crop", {{"size", std::vector<int64_t>{10, 20}},
                                          {"scale", std::vector<double>{1.0, 1.0}},
                                          {"ratio", std::vector<double>{2.0, 2.0}}});
  Image in = IndexImage(20, 20, 1);
  Sample s = MakeSample(in);
  ASSERT_OK(Apply(rrc.get(), s));
  ExpectShape(s.image, 10, 20, 1);
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 20; ++x) ASSERT_EQ(At(s.image, y, x), At(in, y + 5, x));
}

TEST(StagesTest, RandomResizedCropStaysInsideTheImage) {
  // Extreme scale and ratio ranges: every crop must lie inside the image (a ROI outside it would
  // throw), and the result is always made of input pixels.
  auto rrc = Make("random_resized_crop", {{"size", std::vector<int64_t>{8}},
                                          {"scale", std::vector<double>{0.01, 1.0}},
                                          {"ratio", std::vector<double>{0.1, 10.0}},
                                          {"interpolation", std::string("nearest")}});
  Image in = SolidImage(13, 29, 3, 77);
  for (int64_t index = 0; index < 200; ++index) {
    Sample s = MakeSample(in);
    ASSERT_OK(Apply(rrc.get(), s, 5, 0, index));
    for (size_t i = 0; i < s.image.size_bytes(); ++i) ASSERT_EQ(s.image.data()[i], 77);
  }
}

TEST(StagesTest, RandomResizedCropFromManyThreads) {
  auto rrc = Make("random_resized_crop", {{"size", std::vector<int64_t>{16}}});
  Image in = PatternImage(50, 70, 3, 2);
  std::vector<Image> ref;
  for (int64_t index = 0; index < 32; ++index) {
    Sample s = MakeSample(in);
    ASSERT_OK(Apply(rrc.get(), s, 1, 0, index));
    ref.push_back(s.image);
  }
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep)
        for (int64_t index = 0; index < 32; ++index) {
          Sample s = MakeSample(in);
          if (!Apply(rrc.get(), s, 1, 0, index).ok() || !SameBytes(s.image, ref[size_t(index)])) ++bad[t];
        }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0);
}

// ---------------------------------------------------------------------------------------------
// Factory errors

TEST(StagesTest, FactoryRejectsBadParameters) {
  ExpectError(TryMake("random_resized_crop", {{"size", std::vector<int64_t>{8}},
                                              {"scale", std::vector<double>{0.9, 0.1}}}),
              "scale: first value must be <= second");
  ExpectError(TryMake("random_resized_crop", {{"size", std::vector<int64_t>{8}},
                                              {"scale", std::vector<double>{0.0, 0.5}}}),
              "scale");
  ExpectError(TryMake("random_resized_crop", {{"size", std::vector<int64_t>{8}},
                                              {"ratio", std::vector<double>{2.0, 0.5}}}),
              "ratio: first value must be <= second");
  ExpectError(TryMake("random_resized_crop", {{"size", std::vector<int64_t>{8}},
                                              {"ratio", std::vector<double>{0.0, 0.5}}}),
              "ratio");
  ExpectError(TryMake("random_resized_crop", {{"size", std::vector<int64_t>{8, 8, 8}}}), "size");
  ExpectError(TryMake("normalize", {{"std", std::vector<double>{0.2, 0.0, 0.2}}}), "std");
  ExpectError(TryMake("normalize", {{"mean", std::vector<double>{0.5}}}), "std");
  ExpectError(TryMake("resize", {{"size", std::vector<int64_t>{}}}), "size");
  ExpectError(TryMake("resize", {{"size", std::vector<int64_t>{0, 5}}}), "size");
  ExpectError(TryMake("resize", {{"size", std::vector<int64_t>{5}},
                                 {"interpolation", std::string("lanczos")}}),
              "interpolation");
  ExpectError(TryMake("center_crop", {{"size", std::vector<int64_t>{-3}}}), "size");
  ExpectError(TryMake("random_horizontal_flip", {{"p", 1.5}}), "p");
  ExpectError(TryMake("decode", {{"color", std::string("cmyk")}}), "color");
  ExpectError(TryMake("decode", {{"max_pixels", int64_t(-1)}}), "max_pixels");
  // A parameter of the wrong type (a bug in whoever built the params) is an error, not a crash.
  ExpectError(TryMake("resize", {{"size", std::string("big")}}), "size");
}

// ---------------------------------------------------------------------------------------------
// decode

TEST(StagesTest, DecodeEncodedBytes) {
  auto decode = Make("decode");
  Image src = PatternImage(30, 40, 3);
  Sample s;
  s.source = "photos/cat.jpg";
  ASSERT_OK(EncodeJpeg(src, 95, &s.encoded));
  const size_t capacity = s.encoded.capacity();
  ASSERT_OK(Apply(decode.get(), s));
  ExpectShape(s.image, 30, 40, 3);
  EXPECT_TRUE(s.encoded.empty());
  EXPECT_EQ(s.encoded.capacity(), capacity);

  auto gray = Make("decode", {{"color", std::string("gray")}});
  Sample g;
  ASSERT_OK(EncodeJpeg(src, 95, &g.encoded));
  ASSERT_OK(Apply(gray.get(), g));
  ExpectShape(g.image, 30, 40, 1);
}

TEST(StagesTest, DecodeErrorsNameTheSource) {
  auto decode = Make("decode");
  Sample s;
  s.source = "photos/bad.jpg";
  ASSERT_OK(EncodeJpeg(PatternImage(30, 40, 3), 95, &s.encoded));
  s.encoded.resize(s.encoded.size() / 2);
  Status st = Apply(decode.get(), s);
  EXPECT_EQ(st.code(), StatusCode::kCorrupt);
  EXPECT_EQ(st.message().rfind("photos/bad.jpg: ", 0), 0u) << st.message();

  auto small = Make("decode", {{"max_pixels", int64_t(100)}});
  Sample big;
  big.source = "photos/big.jpg";
  ASSERT_OK(EncodeJpeg(PatternImage(30, 40, 3), 95, &big.encoded));
  st = Apply(small.get(), big);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(st.message().rfind("photos/big.jpg: ", 0), 0u) << st.message();

  Sample empty;
  empty.source = "data[7]";
  st = Apply(decode.get(), empty);
  EXPECT_EQ(st.code(), StatusCode::kCorrupt);
  EXPECT_EQ(st.message(), "data[7]: empty file (0 bytes), nothing to decode");
}

TEST(StagesTest, DecodeIdxPixelsToRgb) {
  auto decode = Make("decode");  // rgb
  Image gray = IndexImage(28, 28, 1);
  Sample s = MakeSample(gray, "train-images-idx3-ubyte.gz[42]");
  ASSERT_OK(Apply(decode.get(), s));
  ExpectShape(s.image, 28, 28, 3);
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x)
      for (int c = 0; c < 3; ++c) ASSERT_EQ(At(s.image, y, x, c), At(gray, y, x));

  // color: gray keeps the single channel as it is.
  auto keep = Make("decode", {{"color", std::string("gray")}});
  Sample g = MakeSample(gray, "idx[1]");
  const uint8_t* before = g.image.data();
  ASSERT_OK(Apply(keep.get(), g));
  ExpectShape(g.image, 28, 28, 1);
  EXPECT_EQ(g.image.data(), before);
}

// ---------------------------------------------------------------------------------------------
// Shared images are immutable

TEST(StagesTest, SharedImageIsNeverModified) {
  struct Case {
    const char* type;
    Overrides params;
    Image input;
  };
  std::vector<Case> cases = {
      {"resize", {{"size", std::vector<int64_t>{10}}}, PatternImage(20, 30, 3, 1)},
      {"center_crop", {{"size", std::vector<int64_t>{8, 9}}}, PatternImage(20, 30, 3, 2)},
      {"center_crop", {{"size", std::vector<int64_t>{40, 40}}}, PatternImage(20, 30, 1, 2)},
      {"random_resized_crop", {{"size", std::vector<int64_t>{12}}}, PatternImage(20, 30, 3, 3)},
      {"random_horizontal_flip", {{"p", 1.0}}, PatternImage(20, 30, 3, 4)},
      {"random_horizontal_flip", {{"p", 1.0}}, ToFloat(PatternImage(20, 30, 1, 4))},
      {"normalize", {}, PatternImage(20, 30, 3, 5)},
      {"decode", {}, PatternImage(20, 30, 1, 6)},
      {"decode", {{"color", std::string("bgr")}}, PatternImage(20, 30, 3, 6)},
  };
  for (Case& c : cases) {
    SCOPED_TRACE(c.type);
    auto stage = Make(c.type, c.params);
    ASSERT_NE(stage, nullptr);
    Image snapshot = c.input.Clone();
    Sample s = MakeSample(c.input);  // shares c.input's storage, as a cache would
    ASSERT_TRUE(s.image.shared());
    ASSERT_OK(Apply(stage.get(), s));
    EXPECT_TRUE(SameBytes(c.input, snapshot));
    EXPECT_NE(s.image.data(), c.input.data());
  }
}

}  // namespace
}  // namespace flowfeed
