// Tests of the example plugins (plugins/*): each is loaded with LoadPlugin from
// FLOWFEED_PLUGIN_DIR (the folder holding cutout.so, color_jitter.so, gaussian_blur.so and
// grayscale.so, defined by the test build) and its stage is built through the registry's factory
// exactly as the engine builds it. Without FLOWFEED_PLUGIN_DIR every test skips.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flowfeed/image.h"
#include "flowfeed/plugin.h"
#include "flowfeed/registry.h"
#include "flowfeed/sample.h"
#include "flowfeed/stage.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::FillParams;

using Overrides = std::map<std::string, ParamValue>;

#ifdef FLOWFEED_PLUGIN_DIR
#define REQUIRE_PLUGINS() \
  do {                    \
  } while (0)
#else
#define REQUIRE_PLUGINS() GTEST_SKIP() << "FLOWFEED_PLUGIN_DIR is not defined by this build"
#endif

std::string PluginPath(const std::string& name) {
#ifdef FLOWFEED_PLUGIN_DIR
  return std::string(FLOWFEED_PLUGIN_DIR) + "/" + name + ".so";
#else
  return name + ".so";
#endif
}

// One registry for the whole suite; each plugin is loaded into it once (plugins are never
// unloaded, and loading the same stage twice into one registry is refused).
StageRegistry& Registry() {
  static StageRegistry* registry = new StageRegistry;
  return *registry;
}

// The stage type `name`, loading the plugin of the same name first if needed. nullptr (with a
// test failure) when loading fails.
const StageInfo* PluginStage(const std::string& name) {
  static std::map<std::string, Status>* loaded = new std::map<std::string, Status>;
  auto it = loaded->find(name);
  if (it == loaded->end()) {
    Result<LoadedPlugin> r = LoadPlugin(PluginPath(name), &Registry());
    it = loaded->emplace(name, r.ok() ? Status::Ok() : r.status()).first;
    if (r.ok()) {
      EXPECT_EQ(r.value().name, name);
      EXPECT_EQ(r.value().version, "1.0.0");
      EXPECT_EQ(r.value().stages, std::vector<std::string>{name});
    }
  }
  if (!it->second.ok()) {
    ADD_FAILURE() << "loading " << PluginPath(name) << ": " << it->second.ToString();
    return nullptr;
  }
  const StageInfo* info = Registry().Find(name);
  EXPECT_NE(info, nullptr) << name << " was loaded but is not registered";
  return info;
}

Result<std::unique_ptr<Stage>> TryMake(const std::string& type, const Overrides& overrides = {}) {
  const StageInfo* info = PluginStage(type);
  if (!info) return Status::NotFound("no stage " + type);
  return info->factory(FillParams(*info, overrides));
}

std::unique_ptr<Stage> Make(const std::string& type, const Overrides& overrides = {}) {
  Result<std::unique_ptr<Stage>> r = TryMake(type, overrides);
  EXPECT_TRUE(r.ok()) << type << ": " << r.status().ToString();
  if (!r.ok()) return nullptr;
  return std::move(r).value();
}

Sample MakeSample(Image img, int64_t index = 0) {
  Sample s;
  s.source = "img/test.png";
  s.index = index;
  s.image = std::move(img);
  return s;
}

Status Apply(Stage* stage, Sample& sample, uint64_t seed = 1, int epoch = 0, int64_t index = 0,
             int stage_index = 0) {
  return stage->Process(sample, StageContext(seed, epoch, index, stage_index));
}

// uint8 image whose values all lie in [lo, lo + span).
Image U8Image(int h, int w, int c, int lo = 20, int span = 100) {
  Image img = Image::Allocate(h, w, c, DType::kUInt8);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        img.row<uint8_t>(y)[x * c + k] = uint8_t(lo + (y * 7 + x * 13 + k * 31) % span);
  return img;
}

Image F32Image(int h, int w, int c) {
  Image img = Image::Allocate(h, w, c, DType::kFloat32);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) img.row<float>(y)[x * c + k] = 0.25f + 0.01f * ((y + x + k) % 50);
  return img;
}

Image Solid(int h, int w, int c, uint8_t v) {
  Image img = Image::Allocate(h, w, c, DType::kUInt8);
  std::memset(img.data(), v, img.size_bytes());
  return img;
}

bool SameImage(const Image& a, const Image& b) {
  return a.height() == b.height() && a.width() == b.width() && a.channels() == b.channels() &&
         a.dtype() == b.dtype() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

template <typename T>
T At(const Image& img, int y, int x, int c) {
  return img.row<T>(y)[x * img.channels() + c];
}

// ---------------------------------------------------------------------------------------------
// Loading

TEST(PluginsLoad, EachPluginAddsItsStageWithTraitsAndDocs) {
  REQUIRE_PLUGINS();
  const std::map<std::string, bool> deterministic = {
      {"cutout", false}, {"color_jitter", false}, {"gaussian_blur", false}, {"grayscale", true}};
  for (const auto& [name, det] : deterministic) {
    const StageInfo* info = PluginStage(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->traits.deterministic, det) << name;
    EXPECT_TRUE(info->traits.thread_safe) << name;
    EXPECT_FALSE(info->doc.empty()) << name;
    EXPECT_NE(info->origin, "built-in") << name;
    EXPECT_NE(info->origin.find(name + ".so"), std::string::npos) << info->origin;
    for (const ParamSpec& p : info->params) {
      EXPECT_FALSE(p.doc.empty()) << name << "." << p.name;
      EXPECT_TRUE(p.default_value.has_value()) << name << "." << p.name;
    }
    EXPECT_NE(Make(name), nullptr) << name << " with its defaults";
  }
}

TEST(PluginsLoad, LoadingTwiceIntoOneRegistryIsRefused) {
  REQUIRE_PLUGINS();
  ASSERT_NE(PluginStage("grayscale"), nullptr);
  Result<LoadedPlugin> again = LoadPlugin(PluginPath("grayscale"), &Registry());
  EXPECT_FALSE(again.ok());
  // A fresh registry takes it.
  StageRegistry fresh;
  Result<LoadedPlugin> r = LoadPlugin(PluginPath("grayscale"), &fresh);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE(fresh.Find("grayscale"), nullptr);
}

// Every stage with p = 1 (where it has p): the shared input image is never written.
TEST(PluginsLoad, SharedInputIsNeverModified) {
  REQUIRE_PLUGINS();
  const std::map<std::string, Overrides> stages = {
      {"cutout", {{"p", 1.0}, {"value", 3.0}}},
      {"color_jitter", {{"hue", 0.4}}},
      {"gaussian_blur", {{"p", 1.0}}},
      {"grayscale", {{"channels", int64_t(3)}}}};
  for (const auto& [name, overrides] : stages) {
    std::unique_ptr<Stage> stage = Make(name, overrides);
    ASSERT_NE(stage, nullptr) << name;
    for (uint64_t seed = 1; seed <= 5; ++seed) {
      const Image original = U8Image(24, 32, 3);
      const Image copy = original.Clone();
      Sample s = MakeSample(original);  // shares storage with `original`
      ASSERT_TRUE(s.image.shared());
      Status st = Apply(stage.get(), s, seed);
      ASSERT_TRUE(st.ok()) << name << ": " << st.ToString();
      EXPECT_TRUE(SameImage(original, copy)) << name << " wrote into a shared image, seed " << seed;
      EXPECT_NE(s.image.data(), original.data()) << name << " seed " << seed;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// cutout

// Checks that `out` differs from `in` exactly on one rectangle whose values are all `fill`.
// Returns the rectangle's area (0 when nothing changed).
template <typename T>
int64_t CheckOneRectangle(const Image& in, const Image& out, T fill) {
  EXPECT_EQ(in.height(), out.height());
  EXPECT_EQ(in.width(), out.width());
  EXPECT_EQ(in.channels(), out.channels());
  int y0 = in.height(), y1 = -1, x0 = in.width(), x1 = -1;
  int64_t changed = 0;
  for (int y = 0; y < in.height(); ++y)
    for (int x = 0; x < in.width(); ++x) {
      bool diff = false;
      for (int c = 0; c < in.channels(); ++c) diff |= At<T>(in, y, x, c) != At<T>(out, y, x, c);
      if (!diff) continue;
      ++changed;
      y0 = std::min(y0, y), y1 = std::max(y1, y), x0 = std::min(x0, x), x1 = std::max(x1, x);
    }
  if (changed == 0) return 0;
  const int64_t area = int64_t(y1 - y0 + 1) * (x1 - x0 + 1);
  EXPECT_EQ(changed, area) << "changed pixels do not form a rectangle";
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x)
      for (int c = 0; c < in.channels(); ++c) EXPECT_EQ(At<T>(out, y, x, c), fill);
  // torchvision requires the rectangle to be strictly smaller than the image on both sides.
  EXPECT_LT(y1 - y0 + 1, in.height());
  EXPECT_LT(x1 - x0 + 1, in.width());
  return area;
}

TEST(PluginsCutout, P1ErasesOneRectangleToTheFillValue) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> stage = Make("cutout", {{"p", 1.0}, {"value", 7.0}});
  ASSERT_NE(stage, nullptr);
  int erased = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const Image in = U8Image(40, 50, 3);  // values in [20, 120): never 7
    Sample s = MakeSample(in.Clone());
    ASSERT_TRUE(Apply(stage.get(), s, seed).ok());
    const int64_t area = CheckOneRectangle<uint8_t>(in, s.image, 7);
    if (area > 0) {
      ++erased;
      // Area fraction in [0.02, 0.33], up to rounding of both sides.
      EXPECT_GE(area, int64_t(0.02 * 2000 * 0.5)) << "seed " << seed;
      EXPECT_LE(area, int64_t(0.33 * 2000 * 1.5)) << "seed " << seed;
    }
  }
  EXPECT_GE(erased, 15) << "the default scale and ratio should fit almost always";
}

TEST(PluginsCutout, WorksOnFloatAndGrayImages) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> stage = Make("cutout", {{"p", 1.0}, {"value", -1.5}});
  ASSERT_NE(stage, nullptr);
  int erased_f = 0, erased_g = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    const Image f = F32Image(30, 20, 3);
    Sample sf = MakeSample(f.Clone());
    ASSERT_TRUE(Apply(stage.get(), sf, seed).ok());
    erased_f += CheckOneRectangle<float>(f, sf.image, -1.5f) > 0;

    const Image g = U8Image(30, 20, 1);
    Sample sg = MakeSample(g.Clone());
    ASSERT_TRUE(Apply(stage.get(), sg, seed).ok());
    erased_g += CheckOneRectangle<uint8_t>(g, sg.image, 0) > 0;  // -1.5 clamps to 0
  }
  EXPECT_GT(erased_f, 5);
  EXPECT_GT(erased_g, 5);
}

TEST(PluginsCutout, P0LeavesTheImageIdentical) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> stage = Make("cutout", {{"p", 0.0}});
  ASSERT_NE(stage, nullptr);
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    const Image in = U8Image(16, 16, 3);
    Sample s = MakeSample(in.Clone());
    ASSERT_TRUE(Apply(stage.get(), s, seed).ok());
    EXPECT_TRUE(SameImage(in, s.image));
  }
}

TEST(PluginsCutout, SameContextGivesSameOutput) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> stage = Make("cutout", {{"p", 0.7}});
  ASSERT_NE(stage, nullptr);
  const Image in = U8Image(32, 32, 3);
  int differs = 0;
  Image first;
  for (int64_t index = 0; index < 8; ++index) {
    Sample a = MakeSample(in.Clone(), index), b = MakeSample(in.Clone(), index);
    ASSERT_TRUE(Apply(stage.get(), a, 42, 3, index, 2).ok());
    ASSERT_TRUE(Apply(stage.get(), b, 42, 3, index, 2).ok());
    EXPECT_TRUE(SameImage(a.image, b.image)) << "index " << index;
    if (index == 0)
      first = a.image.Clone();
    else
      differs += !SameImage(first, a.image);
  }
  EXPECT_GT(differs, 0) << "different samples should get different rectangles";
}

TEST(PluginsCutout, FactoryRejectsBadParameters) {
  REQUIRE_PLUGINS();
  EXPECT_FALSE(TryMake("cutout", {{"p", 1.5}}).ok());
  EXPECT_FALSE(TryMake("cutout", {{"scale", std::vector<double>{0.5, 0.1}}}).ok());
  EXPECT_FALSE(TryMake("cutout", {{"scale", std::vector<double>{0.0, 0.1}}}).ok());
  EXPECT_FALSE(TryMake("cutout", {{"ratio", std::vector<double>{3.0, 0.3}}}).ok());
  EXPECT_FALSE(TryMake("cutout", {{"ratio", std::vector<double>{1.0}}}).ok());
}

// ---------------------------------------------------------------------------------------------
// color_jitter

Overrides Jitter(double b, double c, double s, double h) {
  return {{"brightness", b}, {"contrast", c}, {"saturation", s}, {"hue", h}};
}

TEST(PluginsColorJitter, AllZeroIsTheIdentity) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> stage = Make("color_jitter", Jitter(0, 0, 0, 0));
  ASSERT_NE(stage, nullptr);
  for (int c : {1, 3})
    for (uint64_t seed = 1; seed <= 5; ++seed) {
      const Image in = U8Image(12, 17, c, 0, 256);
      Sample s = MakeSample(in.Clone());
      ASSERT_TRUE(Apply(stage.get(), s, seed).ok());
      EXPECT_TRUE(SameImage(in, s.image));
    }
}

TEST(PluginsColorJitter, BrightnessOnlyScalesEveryValueByOneFactor) {
  REQUIRE_PLUGINS();
  const double x = 0.5;
  std::unique_ptr<Stage> stage = Make("color_jitter", Jitter(x, 0, 0, 0));
  ASSERT_NE(stage, nullptr);
  std::vector<double> factors;
  for (int channels : {3, 1})
    for (uint64_t seed = 1; seed <= 10; ++seed) {
      const Image in = U8Image(10, 12, channels, 40, 120);  // <= 159: * 1.5 stays below 255
      Sample s = MakeSample(in.Clone());
      ASSERT_TRUE(Apply(stage.get(), s, seed).ok());
      ASSERT_EQ(s.image.channels(), channels);
      // The factor, estimated from the largest value, then checked on every value.
      const uint8_t* pi = in.data();
      const uint8_t* po = s.image.data();
      size_t big = 0;
      for (size_t i = 0; i < in.size_bytes(); ++i)
        if (pi[i] > pi[big]) big = i;
      const double f = double(po[big]) / pi[big];
      EXPECT_GE(f, 1 - x - 0.5 / pi[big]);
      EXPECT_LE(f, 1 + x + 0.5 / pi[big]);
      factors.push_back(f);
      for (size_t i = 0; i < in.size_bytes(); ++i) {
        const double ratio = double(po[i]) / pi[i];
        EXPECT_GE(ratio, 1 - x - 0.5 / pi[i]) << i;
        EXPECT_LE(ratio, 1 + x + 0.5 / pi[i]) << i;
        EXPECT_NEAR(po[i], pi[i] * f, 1.0 + pi[i] * 0.5 / pi[big]) << "value " << i;
      }
    }
  const auto [lo, hi] = std::minmax_element(factors.begin(), factors.end());
  EXPECT_GT(*hi - *lo, 0.1) << "the factor should vary between samples";
}

TEST(PluginsColorJitter, ContrastOnlyKeepsTheMean) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> stage = Make("color_jitter", Jitter(0, 0.5, 0, 0));
  ASSERT_NE(stage, nullptr);
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    // Half the pixels 60, half 140: mean 100.
    Image in = Solid(8, 8, 1, 100);
    for (size_t i = 0; i < in.size_bytes(); ++i) in.data()[i] = i % 2 ? 60 : 140;
    Sample s = MakeSample(in.Clone());
    ASSERT_TRUE(Apply(stage.get(), s, seed).ok());
    double sum = 0;
    for (size_t i = 0; i < in.size_bytes(); ++i) sum += s.image.data()[i];
    EXPECT_NEAR(sum / in.size_bytes(), 100.0, 0.5);
    // 140 -> 100 + 40 f with f in [0.5, 1.5].
    EXPECT_GE(s.image.data()[0], 119);
    EXPECT_LE(s.image.data()[0], 161);
  }
}

TEST(PluginsColorJitter, SaturationAndHueLeaveGrayPixelsAlone) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> stage = Make("color_jitter", Jitter(0, 0, 0.9, 0.5));
  ASSERT_NE(stage, nullptr);
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    // R = G = B everywhere, with varying levels.
    Image in = Image::Allocate(6, 7, 3, DType::kUInt8);
    for (int y = 0; y < 6; ++y)
      for (int x = 0; x < 7; ++x)
        for (int c = 0; c < 3; ++c) in.row<uint8_t>(y)[x * 3 + c] = uint8_t(y * 40 + x * 5);
    Sample s = MakeSample(in.Clone());
    ASSERT_TRUE(Apply(stage.get(), s, seed).ok());
    EXPECT_TRUE(SameImage(in, s.image)) << "seed " << seed;
    // A 1-channel image gets neither.
    const Image g = U8Image(5, 5, 1, 0, 256);
    Sample sg = MakeSample(g.Clone());
    ASSERT_TRUE(Apply(stage.get(), sg, seed).ok());
    EXPECT_TRUE(SameImage(g, sg.image)) << "seed " << seed;
  }
}

TEST(PluginsColorJitter, HueChangesColouredPixelsButKeepsTheShape) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> stage = Make("color_jitter", Jitter(0, 0, 0, 0.5));
  ASSERT_NE(stage, nullptr);
  int changed = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    Image in = Image::Allocate(4, 4, 3, DType::kUInt8);
    for (size_t i = 0; i < in.size_bytes(); i += 3) {
      in.data()[i] = 200;
      in.data()[i + 1] = 30;
      in.data()[i + 2] = 30;
    }
    Sample s = MakeSample(in.Clone());
    ASSERT_TRUE(Apply(stage.get(), s, seed).ok());
    ASSERT_EQ(s.image.height(), 4);
    ASSERT_EQ(s.image.channels(), 3);
    changed += !SameImage(in, s.image);
    // HSV keeps max(R, G, B) (V), up to rounding.
    const uint8_t* p = s.image.data();
    EXPECT_NEAR(std::max({p[0], p[1], p[2]}), 200, 2);
  }
  EXPECT_GE(changed, 3);
}

TEST(PluginsColorJitter, FloatImagesAreRefusedAndSameContextRepeats) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> stage = Make("color_jitter");
  ASSERT_NE(stage, nullptr);
  Sample f = MakeSample(F32Image(4, 4, 3));
  Status st = Apply(stage.get(), f);
  EXPECT_EQ(st.code(), StatusCode::kUnsupported) << st.ToString();

  const Image in = U8Image(16, 16, 3, 0, 256);
  Sample a = MakeSample(in.Clone()), b = MakeSample(in.Clone());
  ASSERT_TRUE(Apply(stage.get(), a, 9, 1, 5, 3).ok());
  ASSERT_TRUE(Apply(stage.get(), b, 9, 1, 5, 3).ok());
  EXPECT_TRUE(SameImage(a.image, b.image));
  EXPECT_FALSE(SameImage(a.image, in));
}

TEST(PluginsColorJitter, FactoryRejectsBadParameters) {
  REQUIRE_PLUGINS();
  EXPECT_FALSE(TryMake("color_jitter", {{"hue", 0.6}}).ok());
  EXPECT_FALSE(TryMake("color_jitter", {{"brightness", -0.1}}).ok());
}

// ---------------------------------------------------------------------------------------------
// gaussian_blur

TEST(PluginsGaussianBlur, ConstantImageStaysConstant) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> stage = Make("gaussian_blur", {{"p", 1.0}, {"kernel", int64_t(7)}});
  ASSERT_NE(stage, nullptr);
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const Image in = Solid(20, 15, 3, 77);
    Sample s = MakeSample(in.Clone());
    ASSERT_TRUE(Apply(stage.get(), s, seed).ok());
    EXPECT_TRUE(SameImage(in, s.image)) << "seed " << seed;
  }
}

TEST(PluginsGaussianBlur, ImpulseSpreadsSymmetrically) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> stage =
      Make("gaussian_blur", {{"p", 1.0}, {"sigma", std::vector<double>{1.0, 1.5}}});
  ASSERT_NE(stage, nullptr);
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    Image in = Image::Allocate(15, 15, 1, DType::kFloat32);
    std::memset(in.data(), 0, in.size_bytes());
    in.row<float>(7)[7] = 1.0f;
    Sample s = MakeSample(in.Clone());
    ASSERT_TRUE(Apply(stage.get(), s, seed).ok());
    const Image& out = s.image;
    ASSERT_EQ(out.dtype(), DType::kFloat32);
    double sum = 0;
    for (int y = 0; y < 15; ++y)
      for (int x = 0; x < 15; ++x) {
        const float v = out.row<float>(y)[x];
        sum += v;
        const int dy = y - 7, dx = x - 7;
        if (std::abs(dy) > 2 || std::abs(dx) > 2) {
          EXPECT_EQ(v, 0.0f) << y << "," << x;  // outside the 5x5 kernel
          continue;
        }
        EXPECT_GT(v, 0.0f) << y << "," << x;
        EXPECT_NEAR(v, out.row<float>(7 - dy)[7 - dx], 1e-6);
        EXPECT_NEAR(v, out.row<float>(7 + dx)[7 + dy], 1e-6);
        if (dy != 0 || dx != 0) {
          EXPECT_LT(v, out.row<float>(7)[7]);
        }
      }
    EXPECT_NEAR(sum, 1.0, 1e-4);
    EXPECT_LT(out.row<float>(7)[7], 0.5f);
  }
}

TEST(PluginsGaussianBlur, P0IsTheIdentity) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> stage = Make("gaussian_blur", {{"p", 0.0}});
  ASSERT_NE(stage, nullptr);
  const Image in = U8Image(9, 9, 3, 0, 256);
  Sample s = MakeSample(in.Clone());
  ASSERT_TRUE(Apply(stage.get(), s).ok());
  EXPECT_TRUE(SameImage(in, s.image));
}

TEST(PluginsGaussianBlur, EvenKernelIsRefused) {
  REQUIRE_PLUGINS();
  Result<std::unique_ptr<Stage>> r = TryMake("gaussian_blur", {{"kernel", int64_t(4)}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("kernel: must be odd"), std::string::npos)
      << r.status().ToString();
  EXPECT_FALSE(TryMake("gaussian_blur", {{"sigma", std::vector<double>{2.0, 1.0}}}).ok());
  EXPECT_FALSE(TryMake("gaussian_blur", {{"sigma", std::vector<double>{0.0, 1.0}}}).ok());
  EXPECT_TRUE(TryMake("gaussian_blur", {{"kernel", int64_t(3)}}).ok());
}

// ---------------------------------------------------------------------------------------------
// grayscale

TEST(PluginsGrayscale, Itu601WeightsRounded) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> one = Make("grayscale");
  std::unique_ptr<Stage> three = Make("grayscale", {{"channels", int64_t(3)}});
  ASSERT_NE(one, nullptr);
  ASSERT_NE(three, nullptr);
  const uint8_t pixels[][3] = {{200, 100, 50}, {0, 0, 0}, {255, 255, 255}, {255, 0, 0},
                               {0, 255, 0},    {0, 0, 255}, {13, 170, 99}, {90, 91, 92}};
  const int n = int(sizeof(pixels) / sizeof(pixels[0]));
  Image in = Image::Allocate(1, n, 3, DType::kUInt8);
  for (int i = 0; i < n; ++i) std::memcpy(in.data() + 3 * i, pixels[i], 3);

  Sample s1 = MakeSample(in.Clone()), s3 = MakeSample(in.Clone());
  ASSERT_TRUE(Apply(one.get(), s1).ok());
  ASSERT_TRUE(Apply(three.get(), s3).ok());
  ASSERT_EQ(s1.image.channels(), 1);
  ASSERT_EQ(s3.image.channels(), 3);
  ASSERT_EQ(s1.image.width(), n);
  ASSERT_EQ(s1.image.height(), 1);
  for (int i = 0; i < n; ++i) {
    const auto& p = pixels[i];
    const int want = int(std::lround(0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]));
    EXPECT_EQ(s1.image.data()[i], want) << "pixel " << i;
    for (int c = 0; c < 3; ++c) EXPECT_EQ(s3.image.data()[3 * i + c], want) << "pixel " << i;
  }
  EXPECT_EQ(s1.image.data()[0], 124);  // 59.8 + 58.7 + 5.7 = 124.2
}

TEST(PluginsGrayscale, FloatAndGrayInputs) {
  REQUIRE_PLUGINS();
  std::unique_ptr<Stage> one = Make("grayscale");
  std::unique_ptr<Stage> three = Make("grayscale", {{"channels", int64_t(3)}});
  ASSERT_NE(one, nullptr);
  ASSERT_NE(three, nullptr);

  const Image f = F32Image(5, 6, 3);
  Sample sf = MakeSample(f.Clone());
  ASSERT_TRUE(Apply(three.get(), sf).ok());
  ASSERT_EQ(sf.image.dtype(), DType::kFloat32);
  ASSERT_EQ(sf.image.channels(), 3);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 6; ++x) {
      const double want = 0.299 * At<float>(f, y, x, 0) + 0.587 * At<float>(f, y, x, 1) +
                          0.114 * At<float>(f, y, x, 2);
      for (int c = 0; c < 3; ++c) EXPECT_NEAR(At<float>(sf.image, y, x, c), want, 1e-5);
    }

  const Image g = U8Image(4, 4, 1, 0, 256);
  Sample sg1 = MakeSample(g.Clone()), sg3 = MakeSample(g.Clone());
  ASSERT_TRUE(Apply(one.get(), sg1).ok());
  EXPECT_TRUE(SameImage(g, sg1.image));
  ASSERT_TRUE(Apply(three.get(), sg3).ok());
  ASSERT_EQ(sg3.image.channels(), 3);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) EXPECT_EQ(At<uint8_t>(sg3.image, y, x, c), At<uint8_t>(g, y, x, 0));
}

TEST(PluginsGrayscale, FactoryRejectsTwoChannels) {
  REQUIRE_PLUGINS();
  Result<std::unique_ptr<Stage>> r = TryMake("grayscale", {{"channels", int64_t(2)}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("channels"), std::string::npos);
}

}  // namespace
}  // namespace flowfeed
