// Stage fusion (engine/src/stages/fusion.h): region JPEG decoding for a following crop/resize, and
// flip/normalize inside the conversion into the batch. Fused and unfused pipelines are run side
// by side on the same files and their batches compared.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

StageSpec Spec(const std::string& type, std::map<std::string, ParamValue> params = {}) {
  StageSpec s;
  s.type = type;
  for (auto& [k, v] : params) s.params.Set(k, v);
  return s;
}

// A smooth, photo-like RGB image: a few low-frequency waves per channel, no wrap-around edges.
Image SmoothImage(int h, int w, int seed) {
  Image img = Image::Allocate(h, w, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        double v = 128 + 60 * std::sin((x + 7 * seed) * (0.021 + 0.004 * c)) +
                   50 * std::cos((y + 3 * seed) * (0.017 + 0.003 * c)) +
                   15 * std::sin((x + y) * 0.05);
        img.row<uint8_t>(y)[x * 3 + c] = uint8_t(std::clamp(v, 0.0, 255.0));
      }
  return img;
}

struct Output {
  std::vector<uint8_t> pixels;  // every batch's bytes, in order
  std::vector<float> values;    // the same for float batches
  RunStats stats;
};

Output RunPipeline(PipelineOptions o) {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  Output out;
  auto p = Pipeline::Open(o, reg);
  EXPECT_OK(p);
  if (!p.ok()) return out;
  for (int e = 0; e < o.epochs; ++e)
    for (BatchPtr b;;) {
      Status st = p.value()->Next(&b);
      EXPECT_OK(st);
      if (!st.ok() || !b) break;
      if (b->dtype == DType::kUInt8)
        out.pixels.insert(out.pixels.end(), b->data(), b->data() + b->bytes());
      else
        out.values.insert(out.values.end(), reinterpret_cast<const float*>(b->data()),
                          reinterpret_cast<const float*>(b->data()) + b->bytes() / sizeof(float));
    }
  out.stats = p.value()->stats();
  return out;
}

const StageStats* Find(const EpochStats& e, const std::string& name) {
  for (const auto& s : e.stages)
    if (s.name == name) return &s;
  return nullptr;
}

PipelineOptions FolderOptions(const std::string& root) {
  PipelineOptions o;
  o.source.type = "image_folder";
  o.source.root = root;
  o.threads = 2;
  o.epochs = 2;
  o.shuffle = false;
  o.cache.mode = CacheMode::kOff;
  o.batch.size = 5;
  o.batch.dtype = DType::kUInt8;
  o.batch.layout = Layout::kNHWC;
  return o;
}

// Mean and largest absolute difference of two equally long byte vectors.
std::pair<double, int> Diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double sum = 0;
  int worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    int d = std::abs(int(a[i]) - int(b[i]));
    sum += d;
    worst = std::max(worst, d);
  }
  return {a.empty() ? 0 : sum / double(a.size()), worst};
}

// Flip and normalize fused into the conversion give the very same batches as separate passes,
// for both layouts, both dtypes, 1 and 3 channels, and either order of the two stages.
TEST(Fusion, FusedTailIsBitIdentical) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 2, 6);
  test::WriteIdx(dir / "i.idx", dir / "l.idx", 30, 7, 9);
  const std::map<std::string, ParamValue> norm3 = {{"mean", std::vector<double>{0.4, 0.5, 0.6}},
                                                   {"std", std::vector<double>{0.2, 0.25, 0.3}}};
  const std::map<std::string, ParamValue> norm1 = {{"mean", std::vector<double>{0.3}},
                                                   {"std", std::vector<double>{0.7}}};
  for (bool idx : {false, true})
    for (Layout layout : {Layout::kNCHW, Layout::kNHWC})
      for (DType dtype : {DType::kFloat32, DType::kUInt8})
        for (int order = 0; order < 3; ++order) {
          PipelineOptions o = FolderOptions(dir / "photos");
          if (idx) {
            o.source.type = "idx";
            o.source.root = dir.path();
            o.source.images = "i.idx";
            o.source.labels = "l.idx";
          }
          o.batch.layout = layout;
          o.batch.dtype = dtype;
          o.shuffle = true;
          const auto& norm = idx ? norm1 : norm3;
          o.pipeline = {Spec("decode", {{"color", std::string(idx ? "gray" : "rgb")}}),
                        Spec("center_crop", {{"size", std::vector<int64_t>{24}}})};
          if (order == 0) {
            o.pipeline.push_back(Spec("random_horizontal_flip"));
            o.pipeline.push_back(Spec("normalize", norm));
          } else if (order == 1) {
            o.pipeline.push_back(Spec("normalize", norm));
            o.pipeline.push_back(Spec("random_horizontal_flip"));
          } else {
            o.pipeline.push_back(Spec("random_horizontal_flip"));
          }
          SCOPED_TRACE(std::string(idx ? "idx" : "jpeg") + " layout " + LayoutName(layout) +
                       " order " + std::to_string(order) +
                       (dtype == DType::kUInt8 ? " uint8" : " float32"));
          Output fused = RunPipeline(o);
          o.fuse = false;
          Output plain = RunPipeline(o);
          ASSERT_FALSE(fused.pixels.empty() && fused.values.empty());
          EXPECT_EQ(fused.pixels, plain.pixels);
          EXPECT_EQ(fused.values, plain.values);
          ASSERT_EQ(fused.stats.epochs.size(), 2u);
          EXPECT_EQ(fused.stats.epochs[0].batch_digest, plain.stats.epochs[0].batch_digest);
          const StageStats* flip = Find(fused.stats.epochs[0], "random_horizontal_flip");
          ASSERT_NE(flip, nullptr);
          EXPECT_EQ(flip->fused_into, "collate");
          EXPECT_EQ(Find(plain.stats.epochs[0], "random_horizontal_flip")->fused_into, "");
        }
}

// The vectorised conversion (3 channels into float planes, four pixels at a time) against values
// computed here one by one: distinct channels, widths that leave a remainder, flipped or not,
// with and without normalize.
TEST(Fusion, ConversionIntoPlanesIsExact) {
  TempDir dir;
  const int widths[] = {4, 7, 13, 30};
  for (int i = 0; i < 4; ++i) {
    Image img = Image::Allocate(5, widths[i], 3);
    for (int y = 0; y < 5; ++y)
      for (int x = 0; x < widths[i]; ++x)
        for (int c = 0; c < 3; ++c) img.row<uint8_t>(y)[x * 3 + c] = uint8_t(x * 11 + y * 5 + c * 80 + i);
    test::WritePng(dir / ("photos/a/" + std::to_string(i) + ".png"), img);
  }
  const std::vector<double> mean = {0.485, 0.456, 0.406}, stdev = {0.229, 0.224, 0.225};
  for (bool normalize : {false, true})
    for (double p : {0.0, 1.0}) {
      PipelineOptions o = FolderOptions(dir / "photos");
      o.epochs = 1;
      o.batch.size = 1;
      o.batch.dtype = DType::kFloat32;
      o.batch.layout = Layout::kNCHW;
      o.pipeline = {Spec("decode"), Spec("random_horizontal_flip", {{"p", p}})};
      if (normalize)
        o.pipeline.push_back(Spec("normalize", {{"mean", mean}, {"std", stdev}, {"scale", 1.0 / 255}}));
      Output out = RunPipeline(o);
      size_t at = 0;
      for (int i = 0; i < 4; ++i) {
        const int w = widths[i];
        for (int c = 0; c < 3; ++c)
          for (int y = 0; y < 5; ++y)
            for (int x = 0; x < w; ++x, ++at) {
              const int sx = p == 1.0 ? w - 1 - x : x;
              float want = float(uint8_t(sx * 11 + y * 5 + c * 80 + i));
              if (normalize) want = want * float((1.0 / 255) / stdev[c]) + float(-mean[c] / stdev[c]);
              ASSERT_LT(at, out.values.size());
              ASSERT_EQ(out.values[at], want) << "image " << i << " c" << c << " y" << y << " x" << x
                                              << " flip " << p << " normalize " << normalize;
            }
      }
      EXPECT_EQ(at, out.values.size());
    }
}

// Two value maps are not fused together: only the last normalize joins the conversion.
TEST(Fusion, OnlyOneNormalizeIsFused) {
  TempDir dir;
  test::MakeImageFolder(dir / "photos", 1, 4);
  PipelineOptions o = FolderOptions(dir / "photos");
  o.batch.dtype = DType::kFloat32;
  o.pipeline = {Spec("decode"), Spec("center_crop", {{"size", std::vector<int64_t>{16}}}),
                Spec("normalize", {{"mean", std::vector<double>{0.5}}, {"std", std::vector<double>{0.5}}}),
                Spec("normalize", {{"mean", std::vector<double>{0.1}}, {"std", std::vector<double>{2.0}}})};
  Output fused = RunPipeline(o);
  o.fuse = false;
  Output plain = RunPipeline(o);
  EXPECT_EQ(fused.values, plain.values);
  EXPECT_EQ(Find(fused.stats.epochs[0], "normalize")->fused_into, "");
  EXPECT_EQ(Find(fused.stats.epochs[0], "normalize#2")->fused_into, "collate");
}

// A crop small enough that no DCT scaling applies: decoding only the crop's rows and columns
// gives exactly the pixels of decoding the whole image.
TEST(Fusion, RegionDecodeAtFullScaleIsExact) {
  TempDir dir;
  for (int i = 0; i < 12; ++i)
    test::WriteJpeg(dir / ("photos/a/" + std::to_string(i) + ".jpg"),
                    SmoothImage(90 + 7 * i, 120 + 5 * i, i), 90);
  PipelineOptions o = FolderOptions(dir / "photos");
  // Output 64 from crops of at most ~170 px: never 2x the output, so decoded at full scale.
  o.pipeline = {Spec("decode"), Spec("random_resized_crop", {{"size", std::vector<int64_t>{64}},
                                                             {"scale", std::vector<double>{0.1, 1.0}}})};
  Output fused = RunPipeline(o);
  o.fuse = false;
  Output plain = RunPipeline(o);
  ASSERT_EQ(fused.pixels.size(), plain.pixels.size());
  EXPECT_EQ(fused.pixels, plain.pixels);
  EXPECT_EQ(Find(fused.stats.epochs[0], "decode")->fused, 12);  // every file region-decoded
  EXPECT_EQ(Find(plain.stats.epochs[0], "decode")->fused, 0);
}

// "Interpolation tolerance": how far apart the unfused pipeline's own interpolation choices
// (bilinear, area, bicubic) put the same batches. A fused result is within tolerance when it
// is no further from the default than those are from each other.
struct Tolerance {
  double mean = 0;
  int max = 0;
};
Tolerance InterpolationTolerance(const PipelineOptions& unfused, const Output& with_default) {
  Tolerance t;
  for (const char* interp : {"bilinear", "area", "bicubic"}) {
    PipelineOptions o = unfused;
    o.pipeline[1].params.Set("interpolation", std::string(interp));
    auto [mean, worst] = Diff(RunPipeline(o).pixels, with_default.pixels);
    t.mean = std::max(t.mean, mean);
    t.max = std::max(t.max, worst);
  }
  return t;
}

// Crops at least twice the output are decoded at 1/2, 1/4 or 1/8 scale: within interpolation
// tolerance of decoding the whole image and resizing.
TEST(Fusion, DctScaledRegionDecodeIsWithinTolerance) {
  TempDir dir;
  for (int i = 0; i < 10; ++i)
    test::WriteJpeg(dir / ("photos/a/" + std::to_string(i) + ".jpg"),
                    SmoothImage(300 + 20 * i, 400 + 10 * i, i), 92);
  for (const char* stage : {"random_resized_crop", "resize"}) {
    PipelineOptions o = FolderOptions(dir / "photos");
    if (std::string(stage) == "resize")
      o.pipeline = {Spec("decode", {{"dct_scaling", true}}),
                    Spec("resize", {{"size", std::vector<int64_t>{40, 50}}})};
    else
      o.pipeline = {Spec("decode", {{"dct_scaling", true}}),
                    Spec(stage, {{"size", std::vector<int64_t>{48}},
                                                 {"scale", std::vector<double>{0.5, 1.0}}})};
    Output fused = RunPipeline(o);
    o.fuse = false;
    Output plain = RunPipeline(o);
    ASSERT_EQ(fused.pixels.size(), plain.pixels.size());
    EXPECT_NE(fused.pixels, plain.pixels) << stage << ": scaled decoding was expected";
    const Tolerance t = InterpolationTolerance(o, plain);
    auto [mean, worst] = Diff(fused.pixels, plain.pixels);
    std::printf("%s: |fused - whole| mean %.3f max %d; interpolation choices differ by up to mean "
                "%.3f max %d\n", stage, mean, worst, t.mean, t.max);
    EXPECT_LE(mean, 1.25 * t.mean) << stage;
    EXPECT_LE(worst, 2 * t.max) << stage;
  }
}

// The same on a real photograph, when the machine has Debian's mate-backgrounds.
TEST(Fusion, DctScaledRegionDecodeOnARealPhoto) {
  std::vector<std::string> candidates;
  if (std::filesystem::exists("/usr/share/backgrounds/mate"))
    for (const auto& e : std::filesystem::recursive_directory_iterator("/usr/share/backgrounds/mate"))
      if (e.path().extension() == ".jpg") candidates.push_back(e.path().string());
  if (candidates.empty()) GTEST_SKIP() << "no photographs under /usr/share/backgrounds/mate";
  std::sort(candidates.begin(), candidates.end());
  TempDir dir;
  std::filesystem::create_directories(dir / "photos/a");
  // A 1/4-size copy keeps the test quick; it is still a real photograph's texture.
  cv::Mat big = cv::imread(candidates[0], cv::IMREAD_COLOR);
  ASSERT_FALSE(big.empty()) << candidates[0];
  cv::Mat small;
  cv::resize(big, small, cv::Size(big.cols / 4, big.rows / 4), 0, 0, cv::INTER_AREA);
  ASSERT_TRUE(cv::imwrite(dir / "photos/a/photo.jpg", small, {cv::IMWRITE_JPEG_QUALITY, 90}));
  PipelineOptions o = FolderOptions(dir / "photos");
  o.epochs = 20;  // twenty different crops
  o.batch.size = 1;
  o.pipeline = {Spec("decode", {{"dct_scaling", true}}),
                Spec("random_resized_crop", {{"size", std::vector<int64_t>{112}},
                                                             {"scale", std::vector<double>{0.3, 1.0}}})};
  Output fused = RunPipeline(o);
  o.fuse = false;
  Output plain = RunPipeline(o);
  ASSERT_EQ(fused.pixels.size(), plain.pixels.size());
  const Tolerance t = InterpolationTolerance(o, plain);
  auto [mean, worst] = Diff(fused.pixels, plain.pixels);
  std::printf("%s: |fused - whole| mean %.3f max %d; interpolation choices differ by up to mean "
              "%.3f max %d\n", candidates[0].c_str(), mean, worst, t.mean, t.max);
  EXPECT_LE(mean, 1.25 * t.mean);
  EXPECT_LE(worst, 2 * t.max);
}

// Files the region decoder declines take the whole-image path, with its error messages: a
// truncated JPEG is still skipped and named, and a PNG is decoded as before.
TEST(Fusion, DeclinedFilesTakeTheWholeImagePath) {
  TempDir dir;
  test::WriteJpeg(dir / "photos/a/good.jpg", SmoothImage(200, 260, 1), 90);
  test::WritePng(dir / "photos/a/other.png", SmoothImage(120, 100, 2));
  test::WriteJpeg(dir / "photos/a/cut.jpg", SmoothImage(200, 260, 3), 90);
  std::vector<uint8_t> bytes = test::ReadBytes(dir / "photos/a/cut.jpg");
  bytes.resize(bytes.size() * 2 / 3);
  test::WriteBytes(dir / "photos/a/cut.jpg", bytes);
  PipelineOptions o = FolderOptions(dir / "photos");
  o.epochs = 1;
  o.pipeline = {Spec("decode"), Spec("random_resized_crop", {{"size", std::vector<int64_t>{32}}})};
  Output fused = RunPipeline(o);
  const EpochStats& e = fused.stats.epochs.at(0);
  EXPECT_EQ(e.samples, 2);
  ASSERT_EQ(e.skipped_count, 1);
  EXPECT_NE(e.skipped[0].source.find("cut.jpg"), std::string::npos);
  EXPECT_NE(e.skipped[0].reason.find("truncated or corrupt JPEG"), std::string::npos)
      << e.skipped[0].reason;
  EXPECT_EQ(Find(e, "decode")->fused, 1);  // only good.jpg
}

// Where the cache keeps the decoded image, the decoder decodes whole images (and the cached
// epochs serve them), which is exactly what the full-scale region decode of an uncached run
// gives; a cache after a deterministic resize keeps the fused result instead.
TEST(Fusion, NoRegionDecodeWhereTheCacheKeepsTheDecodedImage) {
  TempDir dir;
  for (int i = 0; i < 6; ++i)
    test::WriteJpeg(dir / ("photos/a/" + std::to_string(i) + ".jpg"), SmoothImage(200, 240, i), 90);
  PipelineOptions o = FolderOptions(dir / "photos");
  o.cache.mode = CacheMode::kMemory;
  o.cache.after = "decode";  // pixels, not the files the cost model might choose
  o.pipeline = {Spec("decode"), Spec("random_resized_crop", {{"size", std::vector<int64_t>{32}}})};
  Output cached = RunPipeline(o);
  EXPECT_EQ(cached.stats.cache_placement, "decode");
  EXPECT_EQ(Find(cached.stats.epochs[0], "decode")->fused, 0);
  o.cache.mode = CacheMode::kOff;
  Output uncached = RunPipeline(o);
  EXPECT_EQ(Find(uncached.stats.epochs[0], "decode")->fused, 6);
  EXPECT_EQ(uncached.pixels, cached.pixels);  // fused region decode, same pixels
  o.fuse = false;
  EXPECT_EQ(RunPipeline(o).pixels, cached.pixels);  // the same as whole-image decoding

  o.cache.mode = CacheMode::kMemory;
  o.cache.after = "resize";
  o.fuse = true;
  o.pipeline = {Spec("decode"), Spec("resize", {{"size", std::vector<int64_t>{50}}}),
                Spec("random_resized_crop", {{"size", std::vector<int64_t>{32}}})};
  // Which epoch a sample's lookup (and so its decode) counts in depends on scheduling: the
  // pipeline prefetches across the epoch boundary, so epoch 2's copy of a sample may be
  // computed and inserted before epoch 1's copy looks it up, which then hits and is not decoded
  // in epoch 1 (docs/cache.md, "Measuring it honestly"; under ASan on a loaded machine epoch 1
  // once showed 5 region decodes). Fewer tokens narrow that window but cannot close it (a
  // batch's tokens come back while the epoch's last sample may still wait for its lookup). What
  // holds whatever the schedule: every lookup is a hit or a miss, every miss is decoded and
  // region-decoded in the epoch it counts in, each sample is computed at least once (an index's
  // first lookup finds nothing), and the batches do not depend on which copy was computed.
  Output overlapped = RunPipeline(o);
  EXPECT_EQ(overlapped.stats.cache_placement, "resize");
  ASSERT_EQ(overlapped.stats.epochs.size(), 2u);
  int64_t misses = 0;
  for (const EpochStats& e : overlapped.stats.epochs) {
    EXPECT_EQ(e.cache.hits + e.cache.misses, 6) << "epoch " << e.epoch;
    EXPECT_EQ(Find(e, "decode")->count, e.cache.misses) << "epoch " << e.epoch;
    EXPECT_EQ(Find(e, "decode")->fused, e.cache.misses) << "epoch " << e.epoch;
    misses += e.cache.misses;
  }
  EXPECT_GE(misses, 6);
  EXPECT_LT(misses, 12);  // the second epoch is served, at least in part, from the cache
  EXPECT_EQ(overlapped.stats.cache.memory_entries, 6);
  EXPECT_EQ(RunPipeline(o).pixels, overlapped.pixels);
}

}  // namespace
}  // namespace flowfeed
