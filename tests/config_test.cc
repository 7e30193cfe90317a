// Tests for config.cc: YAML to PipelineOptions, every error with its line and column, overrides.
//
// The stage types are registered here (not RegisterBuiltinStages) so these tests depend only on
// the registry's schema machinery.
#include "flowfeed/config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "flowfeed/registry.h"
#include "flowfeed/stage.h"
#include "test_util.h"

namespace flowfeed {
namespace {

// gmock is not linked into the test binary: a plain substring check instead of HasSubstr.
::testing::AssertionResult Contains(const std::string& haystack, const std::string& needle) {
  if (haystack.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << haystack << "\"\ndoes not contain\n\""
                                       << needle << "\"";
}

class NoopStage : public Stage {
 public:
  Status Process(Sample&, const StageContext&) override { return Status::Ok(); }
};

Result<std::unique_ptr<Stage>> MakeNoop(const StageParams&) {
  return std::unique_ptr<Stage>(std::make_unique<NoopStage>());
}

StageInfo Info(std::string name, std::vector<ParamSpec> params, StageFactory factory = MakeNoop) {
  StageInfo info;
  info.name = std::move(name);
  info.doc = "test stage";
  info.params = std::move(params);
  info.factory = std::move(factory);
  info.origin = "config_test";
  return info;
}

// decode, resize, crop, pad, norm, jitter: small schemas covering every parameter type.
const StageRegistry& TestRegistry() {
  static const StageRegistry* registry = [] {
    auto* reg = new StageRegistry;
    Status s;
    s = reg->Register(Info("decode", {ParamSpec::String("color", "rgb", "channel order",
                                                        {"rgb", "gray", "bgr"})}));
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = reg->Register(Info(
        "resize", {ParamSpec::Int("size", std::nullopt, "shorter side", 1, 8192),
                   ParamSpec::String("interpolation", "bilinear", "filter",
                                     {"nearest", "bilinear", "bicubic"})}));
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = reg->Register(Info(
        "crop",
        {ParamSpec::FloatList("scale", std::vector<double>{0.08, 1.0}, "area range", 2, 2, 0.0,
                              1.0)},
        [](const StageParams& p) -> Result<std::unique_ptr<Stage>> {
          const std::vector<double> scale = p.FloatList("scale");
          if (scale[0] > scale[1]) return Status::InvalidArgument("scale: min must be <= max");
          return std::unique_ptr<Stage>(std::make_unique<NoopStage>());
        }));
    EXPECT_TRUE(s.ok()) << s.ToString();
    ParamSpec padding = ParamSpec::IntList("padding", std::nullopt, "pixels", 2, 2, 0, 100);
    padding.scalar_broadcast = true;
    s = reg->Register(Info("pad", {padding, ParamSpec::Bool("reflect", false, "mirror edges")}));
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = reg->Register(Info("norm", {ParamSpec::FloatList("mean", std::vector<double>{0.5},
                                                          "per channel", 1, 4)}));
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = reg->Register(Info("jitter", {ParamSpec::Float("strength", 0.5, "amount", 0.0, 1.0),
                                      ParamSpec::String("tag", "jit", "free text")}));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return reg;
  }();
  return *registry;
}

// Parses `text` as "a.yaml"; expects failure and returns the errors.
std::vector<ConfigError> ErrorsOf(const std::string& text,
                                  const std::vector<std::string>& overrides = {}) {
  std::vector<ConfigError> errors;
  Result<PipelineOptions> r = ParseConfig(text, "a.yaml", overrides, TestRegistry(), &errors);
  EXPECT_FALSE(r.ok()) << "expected the config to fail:\n" << text;
  if (!r.ok()) {
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(errors.size() == 0, false);
  }
  return errors;
}

// The one error of a config that should have exactly one; "" when the count is wrong.
std::string OnlyError(const std::string& text, const std::vector<std::string>& overrides = {}) {
  std::vector<ConfigError> errors = ErrorsOf(text, overrides);
  if (errors.size() != 1) {
    std::string all;
    for (const auto& e : errors) all += "\n  " + e.ToString();
    ADD_FAILURE() << "expected exactly one error, got " << errors.size() << ":" << all;
    return "";
  }
  return errors[0].ToString();
}

PipelineOptions ParseOk(const std::string& text, const std::vector<std::string>& overrides = {}) {
  std::vector<ConfigError> errors;
  Result<PipelineOptions> r = ParseConfig(text, "a.yaml", overrides, TestRegistry(), &errors);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(errors.empty());
  return r.ok() ? r.value() : PipelineOptions{};
}

const std::string kSource = "source: {type: image_folder, root: data}\n";

// A fresh folder, removed on destruction (test_util's TempDir lives in a file with codec deps).
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ff_config_XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) const {
    const std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << text;
    return file;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ------------------------------------------------------------------------------------------------
// Valid configs

TEST(ConfigParse, FullConfigFillsEveryField) {
  const std::string text =
      "seed: 18446744073709551615\n"  // 1
      "threads: 2\n"                  // 2
      "epochs: 3\n"                   // 3
      "shuffle: false\n"              // 4
      "prefetch: 5\n"                 // 5
      "max_in_flight: 7\n"            // 6
      "digest: false\n"               // 7
      "source:\n"                     // 8
      "  type: image_folder\n"        // 9
      "  root: data/photos\n"         // 10
      "  extensions: [.jpg, .png]\n"  // 11
      "  limit: 100\n"                // 12
      "  on_error: fail\n"            // 13
      "pipeline:\n"                   // 14
      "  - type: decode\n"            // 15
      "    color: gray\n"             // 16
      "    on_error: fail\n"          // 17
      "    concurrency: 3\n"          // 18
      "  - type: resize\n"            // 19
      "    size: 256\n"               // 20
      "  - type: resize\n"            // 21
      "    size: 224\n"               // 22
      "    interpolation: bicubic\n"  // 23
      "  - type: crop\n"              // 24
      "    name: my_crop\n"           // 25
      "  - {type: pad, padding: [1, 2], reflect: true}\n"  // 26
      "  - type: jitter\n"            // 27
      "    strength: 1\n"             // 28
      "batch:\n"                      // 29
      "  size: 32\n"                  // 30
      "  drop_last: true\n"           // 31
      "  layout: nhwc\n"              // 32
      "  dtype: uint8\n";             // 33
  const PipelineOptions o = ParseOk(text);
  EXPECT_EQ(o.seed, 18446744073709551615ull);
  EXPECT_EQ(o.threads, 2);
  EXPECT_EQ(o.epochs, 3);
  EXPECT_FALSE(o.shuffle);
  EXPECT_EQ(o.prefetch, 5);
  EXPECT_EQ(o.max_in_flight, 7);
  EXPECT_FALSE(o.digest);
  EXPECT_EQ(o.config_path, "a.yaml");

  EXPECT_EQ(o.source.type, "image_folder");
  EXPECT_EQ(o.source.root, "data/photos");
  EXPECT_EQ(o.source.extensions, (std::vector<std::string>{".jpg", ".png"}));
  EXPECT_EQ(o.source.limit, 100);
  EXPECT_EQ(o.source.on_error, OnError::kFail);
  EXPECT_EQ(o.source.where.ToString(), "a.yaml:8:1");

  ASSERT_EQ(o.pipeline.size(), 6u);
  const StageSpec& decode = o.pipeline[0];
  EXPECT_EQ(decode.type, "decode");
  EXPECT_EQ(decode.name, "decode");
  EXPECT_EQ(decode.params.String("color"), "gray");
  EXPECT_EQ(decode.on_error, OnError::kFail);
  EXPECT_EQ(decode.concurrency, 3);
  EXPECT_EQ(decode.where.ToString(), "a.yaml:15:5");

  EXPECT_EQ(o.pipeline[1].name, "resize");
  EXPECT_EQ(o.pipeline[1].params.Int("size"), 256);
  EXPECT_EQ(o.pipeline[1].params.String("interpolation"), "bilinear");  // default
  EXPECT_EQ(o.pipeline[1].on_error, OnError::kSkip);
  EXPECT_EQ(o.pipeline[1].concurrency, 0);
  EXPECT_EQ(o.pipeline[2].name, "resize#2");
  EXPECT_EQ(o.pipeline[2].params.Int("size"), 224);
  EXPECT_EQ(o.pipeline[2].params.String("interpolation"), "bicubic");
  EXPECT_EQ(o.pipeline[2].where.ToString(), "a.yaml:21:5");

  EXPECT_EQ(o.pipeline[3].type, "crop");
  EXPECT_EQ(o.pipeline[3].name, "my_crop");
  EXPECT_EQ(o.pipeline[3].params.FloatList("scale"), (std::vector<double>{0.08, 1.0}));

  EXPECT_EQ(o.pipeline[4].params.IntList("padding"), (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(o.pipeline[4].params.Bool("reflect"));
  EXPECT_EQ(o.pipeline[4].where.ToString(), "a.yaml:26:5");

  // An int is a valid float; defaults are filled in for the rest.
  EXPECT_DOUBLE_EQ(o.pipeline[5].params.Float("strength"), 1.0);
  EXPECT_EQ(o.pipeline[5].params.String("tag"), "jit");
  EXPECT_EQ(o.pipeline[5].params.values().size(), 2u);

  EXPECT_EQ(o.batch.size, 32);
  EXPECT_TRUE(o.batch.drop_last);
  EXPECT_EQ(o.batch.layout, Layout::kNHWC);
  EXPECT_EQ(o.batch.dtype, DType::kUInt8);
}

TEST(ConfigParse, OmittedKeysKeepStructDefaults) {
  const PipelineOptions o = ParseOk(kSource);
  const PipelineOptions d;
  EXPECT_EQ(o.seed, d.seed);
  EXPECT_EQ(o.threads, d.threads);
  EXPECT_EQ(o.epochs, d.epochs);
  EXPECT_EQ(o.shuffle, d.shuffle);
  EXPECT_EQ(o.prefetch, d.prefetch);
  EXPECT_EQ(o.max_in_flight, d.max_in_flight);
  EXPECT_EQ(o.digest, d.digest);
  EXPECT_EQ(o.source.extensions, d.source.extensions);
  EXPECT_EQ(o.source.limit, 0);
  EXPECT_EQ(o.source.on_error, OnError::kSkip);
  EXPECT_TRUE(o.pipeline.empty());
  EXPECT_EQ(o.batch.size, d.batch.size);
  EXPECT_EQ(o.batch.drop_last, d.batch.drop_last);
  EXPECT_EQ(o.batch.layout, d.batch.layout);
  EXPECT_EQ(o.batch.dtype, d.batch.dtype);
}

TEST(ConfigParse, EmptySectionsMeanDefaults) {
  const PipelineOptions o = ParseOk(kSource + "pipeline: []\nbatch:\n");
  EXPECT_TRUE(o.pipeline.empty());
  EXPECT_EQ(o.batch.size, 64);
  EXPECT_TRUE(ParseOk(kSource + "pipeline:\n").pipeline.empty());
}

TEST(ConfigParse, SourceTypes) {
  PipelineOptions o = ParseOk("source: {type: file_list, root: r, list: files.csv}\n");
  EXPECT_EQ(o.source.type, "file_list");
  EXPECT_EQ(o.source.list, "files.csv");

  o = ParseOk("source: {type: idx, root: mnist}\n");
  EXPECT_EQ(o.source.type, "idx");
  EXPECT_EQ(o.source.images, "train-images-idx3-ubyte.gz");
  EXPECT_EQ(o.source.labels, "train-labels-idx1-ubyte.gz");

  o = ParseOk("source: {type: idx, root: mnist, images: t10k-images, labels: t10k-labels}\n");
  EXPECT_EQ(o.source.images, "t10k-images");
  EXPECT_EQ(o.source.labels, "t10k-labels");
}

TEST(ConfigParse, DuplicateNamesAreNumberedInOrder) {
  const PipelineOptions o = ParseOk(kSource +
                                    "pipeline:\n"
                                    "  - {type: resize, size: 1}\n"
                                    "  - {type: decode}\n"
                                    "  - {type: resize, size: 2}\n"
                                    "  - {type: resize, size: 3}\n"
                                    "  - {type: decode, name: resize}\n");
  ASSERT_EQ(o.pipeline.size(), 5u);
  EXPECT_EQ(o.pipeline[0].name, "resize");
  EXPECT_EQ(o.pipeline[1].name, "decode");
  EXPECT_EQ(o.pipeline[2].name, "resize#2");
  EXPECT_EQ(o.pipeline[3].name, "resize#3");
  EXPECT_EQ(o.pipeline[4].name, "resize#4");
}

TEST(ConfigParse, ScalarBroadcastRepeatsTheNumber) {
  const PipelineOptions o = ParseOk(kSource + "pipeline:\n  - {type: pad, padding: 4}\n");
  ASSERT_EQ(o.pipeline.size(), 1u);
  EXPECT_EQ(o.pipeline[0].params.IntList("padding"), (std::vector<int64_t>{4, 4}));
}

TEST(ConfigParse, OneNumberIsAOneItemList) {
  // Without scalar_broadcast, a lone number is a one-item list where one item is allowed.
  const PipelineOptions o = ParseOk(kSource + "pipeline:\n  - {type: norm, mean: 0.25}\n"
                                              "  - {type: norm, mean: [1, 2, 3]}\n");
  EXPECT_EQ(o.pipeline[0].params.FloatList("mean"), (std::vector<double>{0.25}));
  EXPECT_EQ(o.pipeline[1].params.FloatList("mean"), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - {type: norm, mean: [1, 2, 3, 4, 5]}\n"),
            "a.yaml:3:24: pipeline[0] (norm).mean: expected a number or a list of 1 to 4 "
            "numbers, got a list of 5 items");
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - {type: norm, mean: []}\n"),
            "a.yaml:3:24: pipeline[0] (norm).mean: expected a number or a list of 1 to 4 "
            "numbers, got a list of 0 items");
}

TEST(ConfigParse, NumbersAndBools) {
  PipelineOptions o = ParseOk(kSource + "seed: +7\nshuffle: True\ndigest: FALSE\n");
  EXPECT_EQ(o.seed, 7u);
  EXPECT_TRUE(o.shuffle);
  EXPECT_FALSE(o.digest);
  o = ParseOk(kSource + "pipeline:\n  - {type: jitter, strength: 2.5e-1}\n"
                        "  - {type: crop, scale: [0, .5]}\n");
  EXPECT_DOUBLE_EQ(o.pipeline[0].params.Float("strength"), 0.25);
  EXPECT_EQ(o.pipeline[1].params.FloatList("scale"), (std::vector<double>{0.0, 0.5}));
}

// ------------------------------------------------------------------------------------------------
// Errors: exact positions and messages

TEST(ConfigErrors, IntGivenAWord) {
  EXPECT_EQ(OnlyError(kSource + "threads: two\n"),
            "a.yaml:2:10: threads: expected an integer in [0, 1024], got \"two\"");
}

TEST(ConfigErrors, IntGivenAFraction) {
  EXPECT_EQ(OnlyError(kSource + "epochs: 1.5\n"),
            "a.yaml:2:9: epochs: expected an integer in [1, 10000], got \"1.5\"");
  EXPECT_EQ(OnlyError(kSource + "epochs: 0x10\n"),
            "a.yaml:2:9: epochs: expected an integer in [1, 10000], got \"0x10\"");
  EXPECT_EQ(OnlyError(kSource + "epochs: 0\n"),
            "a.yaml:2:9: epochs: expected an integer in [1, 10000], got \"0\"");
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - {type: resize, size: 1.5}\n"),
            "a.yaml:3:26: pipeline[0] (resize).size: expected an integer in [1, 8192], got "
            "\"1.5\"");
}

TEST(ConfigErrors, IntTooLargeForInt) {
  EXPECT_EQ(OnlyError(kSource + "prefetch: 3000000000\n"),
            "a.yaml:2:11: prefetch: expected an integer in [1, 1024], got "
            "\"3000000000\"");
}

TEST(ConfigErrors, QuotedNumberIsAString) {
  EXPECT_EQ(OnlyError(kSource + "threads: \"2\"\n"),
            "a.yaml:2:10: threads: expected an integer in [0, 1024], got the string \"2\"");
}

TEST(ConfigErrors, NegativeSeed) {
  EXPECT_EQ(OnlyError(kSource + "seed: -1\n"),
            "a.yaml:2:7: seed: expected an integer >= 0, got \"-1\"");
}

TEST(ConfigErrors, BoolGivenANumber) {
  EXPECT_EQ(OnlyError(kSource + "shuffle: 3\n"),
            "a.yaml:2:10: shuffle: expected true or false, got \"3\"");
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - {type: pad, padding: 1, reflect: 3}\n"),
            "a.yaml:3:38: pipeline[0] (pad).reflect: expected true or false, got \"3\"");
}

TEST(ConfigErrors, EmptyValueIsReportedAtItsKey) {
  EXPECT_EQ(OnlyError(kSource + "threads:\nepochs: 2\n"),
            "a.yaml:2:1: threads: expected an integer in [0, 1024], got nothing");
}

TEST(ConfigErrors, ListOfWrongLength) {
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - type: crop\n    scale: [0.1, 0.5, 1]\n"),
            "a.yaml:4:12: pipeline[0] (crop).scale: expected a list of 2 numbers in [0, 1], got "
            "a list of 3 items");
}

TEST(ConfigErrors, ScalarForAListWithoutBroadcast) {
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - type: crop\n    scale: 0.8\n"),
            "a.yaml:4:12: pipeline[0] (crop).scale: expected a list of 2 numbers in [0, 1], got "
            "\"0.8\"");
}

TEST(ConfigErrors, ListElementOutOfRange) {
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - type: crop\n    scale: [0.5, 1.5]\n"),
            "a.yaml:4:18: pipeline[0] (crop).scale[1]: expected a number in [0, 1], got \"1.5\"");
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - type: pad\n    padding: [1, x]\n"),
            "a.yaml:4:18: pipeline[0] (pad).padding[1]: expected an integer in [0, 100], got "
            "\"x\"");
}

TEST(ConfigErrors, BroadcastScalarOutOfRange) {
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - type: pad\n    padding: -1\n"),
            "a.yaml:4:14: pipeline[0] (pad).padding: expected an integer in [0, 100], got "
            "\"-1\"");
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - type: pad\n    padding: {a: 1}\n"),
            "a.yaml:4:14: pipeline[0] (pad).padding: expected an integer or a list of 2 "
            "integers in [0, 100], got a map");
}

TEST(ConfigErrors, FloatOutOfRange) {
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - type: jitter\n    strength: 1.01\n"),
            "a.yaml:4:15: pipeline[0] (jitter).strength: expected a number in [0, 1], got "
            "\"1.01\"");
}

TEST(ConfigErrors, StringNotInChoices) {
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - type: decode\n    color: rbg\n"),
            "a.yaml:4:12: pipeline[0] (decode).color: expected one of rgb, gray, bgr, got "
            "\"rbg\"; did you mean \"rgb\"?");
  EXPECT_EQ(OnlyError(kSource + "batch:\n  layout: NCHW\n"),
            "a.yaml:3:11: batch.layout: expected one of nchw, nhwc, got \"NCHW\"; did you mean "
            "\"nchw\"?");
  EXPECT_EQ(OnlyError("source: {type: image_foldr, root: x}\n"),
            "a.yaml:1:16: source.type: expected one of image_folder, file_list, idx, tar, got "
            "\"image_foldr\"; did you mean \"image_folder\"?");
  EXPECT_EQ(OnlyError(kSource + "batch: {dtype: [float32]}\n"),
            "a.yaml:2:16: batch.dtype: expected one of float32, uint8, got a list");
  EXPECT_EQ(OnlyError("source: {type: folder, root: x}\n"),
            "a.yaml:1:16: source.type: expected one of image_folder, file_list, idx, tar, got "
            "\"folder\"");
}

TEST(ConfigErrors, UnknownTopLevelKey) {
  EXPECT_EQ(OnlyError(kSource + "thread: 2\n"),
            "a.yaml:2:1: thread: unknown key; did you mean \"threads\"?");
  // Nothing close: the known keys are listed instead.
  const std::string e = OnlyError(kSource + "colour: red\n");
  EXPECT_EQ(e, "a.yaml:2:1: colour: unknown key (known keys: amp, batch, cache, channels_last, "
               "checkpoint, checkpoint_every, cudnn_benchmark, device, digest, distributed, "
               "epochs, eval, fuse, loss, max_in_flight, max_in_flight_bytes, max_skipped, model, "
               "normalize_on_device, optimizer, pipeline, plugins, prefetch, record_indices, "
               "schedule, seed, shuffle, source, threads)");
}

TEST(ConfigErrors, UnknownNestedKey) {
  EXPECT_EQ(OnlyError(kSource + "batch:\n  sise: 3\n"),
            "a.yaml:3:3: batch.sise: unknown key; did you mean \"size\"?");
  EXPECT_EQ(OnlyError("source:\n  type: idx\n  root: x\n  label: y\n"),
            "a.yaml:4:3: source.label: unknown key; did you mean \"labels\"?");
}

TEST(ConfigErrors, UnknownStageType) {
  const std::string text =
      "source:\n"
      "  type: idx\n"
      "  root: x\n"
      "pipeline:\n"
      "- type: resise\n"
      "  size: 3\n";
  EXPECT_EQ(OnlyError(text),
            "a.yaml:5:9: pipeline[0].type: unknown stage type \"resise\"; did you mean "
            "\"resize\"?");
  EXPECT_TRUE(Contains(OnlyError(kSource + "pipeline:\n- type: zzzzzz\n"),
                       "unknown stage type \"zzzzzz\" (known types: crop, decode, jitter, norm, pad, "
                       "resize)"));
}

TEST(ConfigErrors, UnknownStageParam) {
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - type: resize\n    size: 3\n    interpolaton: x\n"),
            "a.yaml:5:5: pipeline[0] (resize).interpolaton: unknown key; did you mean "
            "\"interpolation\"?");
  // The entry's own keys are candidates too.
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - type: resize\n    size: 3\n    nme: r\n"),
            "a.yaml:5:5: pipeline[0] (resize).nme: unknown key; did you mean \"name\"?");
}

TEST(ConfigErrors, StageEntryKeys) {
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - {type: decode, on_error: ignore}\n"),
            "a.yaml:3:30: pipeline[0] (decode).on_error: expected one of skip, fail, got "
            "\"ignore\"");
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - {type: decode, concurrency: -2}\n"),
            "a.yaml:3:33: pipeline[0] (decode).concurrency: expected an integer in [0, 131072], got \"-2\"");
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - decode\n"),
            "a.yaml:3:5: pipeline[0]: expected a map with a \"type\" key, got \"decode\"");
  EXPECT_EQ(OnlyError(kSource + "pipeline: {type: decode}\n"),
            "a.yaml:2:11: pipeline: expected a list of stages (- type: ...), got a map");
}

TEST(ConfigErrors, MissingRequiredKeys) {
  EXPECT_EQ(OnlyError("source:\n  root: data\n"), "a.yaml:1:1: source.type: missing required key");
  EXPECT_EQ(OnlyError("threads: 1\nsource:\n  type: idx\n"),
            "a.yaml:2:1: source.root: missing required key");
  EXPECT_EQ(OnlyError("threads: 1\n"), "a.yaml:1:1: source: missing required key");
  EXPECT_EQ(OnlyError("source: {type: idx, root: \"\"}\n"),
            "a.yaml:1:27: source.root: expected a folder path, got \"\"");
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - size: 3\n"),
            "a.yaml:3:5: pipeline[0].type: missing required key");
}

TEST(ConfigErrors, MissingRequiredStageParam) {
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - type: decode\n  - type: resize\n"),
            "a.yaml:4:5: pipeline[1] (resize).size: missing required parameter (int)");
}

TEST(ConfigErrors, SourceKeysThatDependOnType) {
  EXPECT_EQ(OnlyError("source:\n  type: file_list\n  root: r\n"),
            "a.yaml:1:1: source.list: missing required key (source.type is file_list)");
  EXPECT_EQ(OnlyError("source:\n  type: image_folder\n  root: r\n  list: f.csv\n"),
            "a.yaml:4:3: source.list: only valid when source.type is file_list (it is "
            "image_folder)");
  EXPECT_EQ(OnlyError("source:\n  type: idx\n  root: r\n  extensions: [.png]\n"),
            "a.yaml:4:3: source.extensions: only valid when source.type is image_folder or tar "
            "(it is idx)");
  EXPECT_EQ(OnlyError("source:\n  type: file_list\n  root: r\n  list: l\n  images: i\n"),
            "a.yaml:5:3: source.images: only valid when source.type is idx (it is file_list)");
  EXPECT_EQ(OnlyError("source:\n  type: image_folder\n  root: r\n  extensions: []\n"),
            "a.yaml:4:15: source.extensions: expected a list of file endings such as [.jpg, "
            ".png], got an empty list");
}

TEST(ConfigErrors, FactoryErrorIsLocatedAtTheEntry) {
  EXPECT_EQ(OnlyError(kSource + "pipeline:\n  - type: decode\n  - type: crop\n    scale: [0.9, "
                                "0.1]\n"),
            "a.yaml:4:5: pipeline[1] (crop): scale: min must be <= max");
}

TEST(ConfigErrors, DuplicateKey) {
  EXPECT_EQ(OnlyError(kSource + "threads: 1\nthreads: 2\n"),
            "a.yaml:3:1: threads: duplicate key (first given on line 2)");
}

TEST(ConfigErrors, ManyErrorsAreAllReportedInLineOrder) {
  const std::string text =
      "thread: 2\n"                 // 1: unknown key
      "epochs: 0\n"                 // 2: out of range
      "source:\n"                   // 3: (type missing)
      "  root: data\n"              // 4
      "pipeline:\n"                 // 5
      "  - type: resise\n"          // 6: unknown type
      "  - type: crop\n"            // 7
      "    scale: [0.5, 2]\n"       // 8: element out of range
      "  - type: resize\n"          // 9: size missing
      "    interpolation: cubic\n"  // 10: not a choice
      "batch:\n"                    // 11
      "  sise: 2\n"                 // 12: unknown key
      "  layout: nchw\n";           // 13
  std::vector<ConfigError> errors;
  Result<PipelineOptions> r = ParseConfig(text, "a.yaml", {}, TestRegistry(), &errors);
  ASSERT_FALSE(r.ok());
  std::vector<std::string> got;
  for (const auto& e : errors) got.push_back(e.ToString());
  const std::vector<std::string> want = {
      "a.yaml:1:1: thread: unknown key; did you mean \"threads\"?",
      "a.yaml:2:9: epochs: expected an integer in [1, 10000], got \"0\"",
      "a.yaml:3:1: source.type: missing required key",
      "a.yaml:6:11: pipeline[0].type: unknown stage type \"resise\"; did you mean \"resize\"?",
      "a.yaml:8:18: pipeline[1] (crop).scale[1]: expected a number in [0, 1], got \"2\"",
      "a.yaml:9:5: pipeline[2] (resize).size: missing required parameter (int)",
      "a.yaml:10:20: pipeline[2] (resize).interpolation: expected one of nearest, bilinear, "
      "bicubic, got \"cubic\"",
      "a.yaml:12:3: batch.sise: unknown key; did you mean \"size\"?",
  };
  EXPECT_EQ(got, want);

  // The status lists them all under a count.
  const std::string& m = r.status().message();
  EXPECT_EQ(m.substr(0, m.find('\n')), "8 problems in a.yaml:");
  for (const auto& line : want) EXPECT_TRUE(Contains(m, "\n" + line));
}

TEST(ConfigErrors, ErrorsVectorIsClearedFirst) {
  std::vector<ConfigError> errors(3);
  ASSERT_OK(ParseConfig(kSource, "a.yaml", {}, TestRegistry(), &errors));
  EXPECT_TRUE(errors.empty());
  // And a null errors pointer is fine.
  Result<PipelineOptions> r = ParseConfig("threads: x\n", "a.yaml", {}, TestRegistry());
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(Contains(r.status().message(), "2 problems in a.yaml:\n"));
}

TEST(ConfigErrors, SingleProblemHeader) {
  Result<PipelineOptions> r = ParseConfig(kSource + "threads: x\n", "cfg.yaml", {}, TestRegistry());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "1 problem in cfg.yaml:\ncfg.yaml:2:10: threads: expected an integer in [0, 1024], got \"x\"");
}

TEST(ConfigErrors, YamlSyntaxError) {
  EXPECT_EQ(OnlyError("threads: 2\nbatch: [1, 2\nepochs: 3\n"),
            "a.yaml:3:7: YAML syntax error: end of sequence flow not found");
  EXPECT_TRUE(Contains(OnlyError("a: 1\n b: 2\n"), "a.yaml:2:3: YAML syntax error: "));
}

TEST(ConfigErrors, EmptyAndNonMapDocuments) {
  EXPECT_EQ(OnlyError(""), "a.yaml: empty config");
  EXPECT_EQ(OnlyError("# only a comment\n\n"), "a.yaml: empty config");
  EXPECT_TRUE(Contains(OnlyError("- a\n- b\n"),
                       "a.yaml:1:1: expected a map of settings (seed: ..., source: ...) at the "
                       "top, got a list"));
  EXPECT_TRUE(Contains(OnlyError("\n42\n"), "a.yaml:2:1: expected a map of settings"));
  EXPECT_EQ(OnlyError(kSource + "---\nthreads: 1\n"),
            "a.yaml:3:1: expected one YAML document, found 2");
  EXPECT_EQ(OnlyError(kSource + "---\n---\nthreads: 1\n"),
            "a.yaml:3:1: expected one YAML document, found 3");
}

// Regression (fuzz/corpus/config/regress-*-hang.yaml): a ',' where a document starts made
// yaml-cpp's LoadAll() loop forever, growing a list of empty documents until memory ran out.
TEST(ConfigErrors, CommaWhereADocumentStartsIsASyntaxError) {
  EXPECT_EQ(OnlyError(",a\n"), "a.yaml:1:1: YAML syntax error: unexpected ','");
  EXPECT_EQ(OnlyError(kSource + "---\n,\n"), "a.yaml:3:1: YAML syntax error: unexpected ','");
  EXPECT_EQ(OnlyError("- a\n- b\n,"), "a.yaml:3:1: YAML syntax error: unexpected ','");
}

// ------------------------------------------------------------------------------------------------
// Files

TEST(ConfigLoad, MissingFileIsNotFound) {
  ScratchDir dir;
  const std::string path = dir.path() + "/nope.yaml";
  std::vector<ConfigError> errors;
  Result<PipelineOptions> r = LoadConfig(path, {}, TestRegistry(), &errors);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(r.status().message(), path));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].where.file, path);
}

TEST(ConfigLoad, ReadsAFileAndNamesItInErrors) {
  ScratchDir dir;
  const std::string good = dir.Write("good.yaml", kSource + "epochs: 4\n");
  Result<PipelineOptions> r = LoadConfig(good, {}, TestRegistry());
  ASSERT_OK(r);
  EXPECT_EQ(r->epochs, 4);
  EXPECT_EQ(r->config_path, good);
  EXPECT_EQ(r->source.where.file, good);

  const std::string bad = dir.Write("bad.yaml", kSource + "epochs: many\n");
  std::vector<ConfigError> errors;
  r = LoadConfig(bad, {}, TestRegistry(), &errors);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].ToString(), bad + ":2:9: epochs: expected an integer in [1, 10000], got \"many\"");
  EXPECT_EQ(r.status().message(), "1 problem in " + bad + ":\n" + errors[0].ToString());

  const std::string empty = dir.Write("empty.yaml", "");
  r = LoadConfig(empty, {}, TestRegistry(), &errors);
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "empty config");
}

TEST(ConfigLoad, OverridesApplyToFiles) {
  ScratchDir dir;
  const std::string path = dir.Write("c.yaml", kSource + "batch: {size: 8}\n");
  Result<PipelineOptions> r = LoadConfig(path, {"batch.size=16"}, TestRegistry());
  ASSERT_OK(r);
  EXPECT_EQ(r->batch.size, 16);
}

// ------------------------------------------------------------------------------------------------
// Overrides

TEST(ConfigOverrides, ChangeAValue) {
  const PipelineOptions o = ParseOk(kSource + "batch:\n  size: 64\n",
                                    {"batch.size=32", "source.root=/tmp/x", "shuffle=false"});
  EXPECT_EQ(o.batch.size, 32);
  EXPECT_EQ(o.source.root, "/tmp/x");
  EXPECT_FALSE(o.shuffle);
}

TEST(ConfigOverrides, AddMissingKeys) {
  const PipelineOptions o = ParseOk(kSource, {"batch.size=32", "batch.layout=nhwc", "epochs=9"});
  EXPECT_EQ(o.batch.size, 32);
  EXPECT_EQ(o.batch.layout, Layout::kNHWC);
  EXPECT_EQ(o.epochs, 9);
}

TEST(ConfigOverrides, ValuesAreYaml) {
  const PipelineOptions o = ParseOk(kSource, {"source.extensions=[.jpg]", "batch={size: 8}"});
  EXPECT_EQ(o.source.extensions, (std::vector<std::string>{".jpg"}));
  EXPECT_EQ(o.batch.size, 8);
  const PipelineOptions p =
      ParseOk("threads: 1\n", {"source={type: idx, root: m}", "pipeline=[{type: decode}]"});
  EXPECT_EQ(p.source.type, "idx");
  ASSERT_EQ(p.pipeline.size(), 1u);
  EXPECT_EQ(p.pipeline[0].type, "decode");
}

TEST(ConfigOverrides, IndexIntoPipeline) {
  const std::string text = kSource +
                           "pipeline:\n"
                           "  - type: decode\n"
                           "  - type: resize\n"
                           "    size: 256\n";
  const PipelineOptions o =
      ParseOk(text, {"pipeline.1.size=128", "pipeline.1.interpolation=nearest",
                     "pipeline.0.color=bgr"});
  ASSERT_EQ(o.pipeline.size(), 2u);
  EXPECT_EQ(o.pipeline[1].params.Int("size"), 128);
  EXPECT_EQ(o.pipeline[1].params.String("interpolation"), "nearest");
  EXPECT_EQ(o.pipeline[0].params.String("color"), "bgr");
  // The entry itself still comes from the file.
  EXPECT_EQ(o.pipeline[1].where.ToString(), "a.yaml:4:5");
}

TEST(ConfigOverrides, BadValueReportsTheOverride) {
  EXPECT_EQ(OnlyError(kSource + "batch:\n  size: 64\n", {"batch.size=0"}),
            "--set batch.size: batch.size: expected an integer in [1, 65536], got \"0\"");
  const std::string text = kSource + "pipeline:\n  - type: decode\n  - type: resize\n    size: 2\n";
  EXPECT_EQ(OnlyError(text, {"pipeline.1.size=big"}),
            "--set pipeline.1.size: pipeline[1] (resize).size: expected an integer in [1, 8192], "
            "got \"big\"");
  // Errors inside a replaced subtree name the override too.
  EXPECT_EQ(OnlyError(kSource, {"batch={sise: 8}"}),
            "--set batch: batch.sise: unknown key; did you mean \"size\"?");
  EXPECT_EQ(OnlyError(kSource, {"batch.sise=8"}),
            "--set batch.sise: batch.sise: unknown key; did you mean \"size\"?");
  // A map created on the way to a new key names the override that created it.
  EXPECT_EQ(OnlyError("threads: 1\n", {"source.root=/data"}),
            "--set source.root: source.type: missing required key");
}

TEST(ConfigOverrides, MalformedOverrides) {
  std::vector<ConfigError> errors =
      ErrorsOf(kSource + "threads: 1\npipeline:\n  - type: decode\n",
               {"batch.size", "=3", "pipeline.5.color=rgb", "threads.x=1", "pipeline.a=1",
                "batch..size=1", "batch.size=[1"});
  ASSERT_EQ(errors.size(), 7u);
  for (const auto& e : errors) {
    EXPECT_EQ(e.where.file, "--set");
    EXPECT_EQ(e.where.line, 0);
  }
  EXPECT_EQ(errors[0].ToString(),
            "--set: override \"batch.size\" has no '='; expected KEY.PATH=VALUE");
  EXPECT_EQ(errors[1].ToString(),
            "--set: override \"=3\" has an empty key; expected KEY.PATH=VALUE");
  EXPECT_EQ(errors[2].ToString(),
            "--set: pipeline.5.color: index 5 is out of range: \"pipeline\" has 1 item(s) "
            "(override \"pipeline.5.color=rgb\")");
  EXPECT_TRUE(Contains(errors[3].ToString(), "--set: threads.x: cannot set \"x\" inside "
                                             "\"threads\", which is a single value"));
  EXPECT_TRUE(Contains(errors[4].ToString(),
                       "--set: pipeline.a: \"pipeline\" is a list; expected an item number"));
  EXPECT_TRUE(Contains(errors[5].ToString(), "--set: batch..size: empty key segment"));
  EXPECT_TRUE(Contains(errors[6].ToString(), "--set: batch.size: value is not valid YAML"));
}

TEST(ConfigOverrides, FileAndOverrideErrorsTogether) {
  std::vector<ConfigError> errors =
      ErrorsOf(kSource + "threads: x\n", {"epochs=0", "nope"});
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].where.file, "--set");
  EXPECT_EQ(errors[1].ToString(), "a.yaml:2:10: threads: expected an integer in [0, 1024], got \"x\"");
  EXPECT_EQ(errors[2].ToString(), "--set epochs: epochs: expected an integer in [1, 10000], got \"0\"");
}

// ------------------------------------------------------------------------------------------------
// ClosestMatch

TEST(ConfigClosestMatch, Cases) {
  const std::vector<std::string> keys = {"size", "drop_last", "layout", "dtype"};
  EXPECT_EQ(ClosestMatch("sise", keys), "size");
  EXPECT_EQ(ClosestMatch("SIZE", keys), "size");       // case-insensitive
  EXPECT_EQ(ClosestMatch("droplast", keys), "drop_last");
  EXPECT_EQ(ClosestMatch("lyaout", keys), "layout");   // a transposition is one edit
  EXPECT_EQ(ClosestMatch("colour", keys), "");
  EXPECT_EQ(ClosestMatch("", keys), "");
  EXPECT_EQ(ClosestMatch("size", {}), "");
  EXPECT_EQ(ClosestMatch("x", {"y", "z"}), "");  // one letter is not a typo of another
  EXPECT_EQ(ClosestMatch("rbg", {"rgb", "gray", "bgr"}), "rgb");
  EXPECT_EQ(ClosestMatch("resise", {"decode", "resize", "crop"}), "resize");
  EXPECT_EQ(ClosestMatch("random_resize_crop", {"random_resized_crop", "center_crop"}),
            "random_resized_crop");
  EXPECT_EQ(ClosestMatch("threads", {"thread", "threads"}), "threads");  // exact wins
}

// ------------------------------------------------------------------------------------------------
// Training sections: model, optimizer, schedule, loss, eval, checkpoint, device, amp

// decode and resize as in TestRegistry, plus a random stage (traits.deterministic = false).
const StageRegistry& TrainRegistry() {
  static const StageRegistry* registry = [] {
    auto* reg = new StageRegistry;
    Status s = reg->Register(Info("decode", {ParamSpec::String("color", "rgb", "channel order",
                                                               {"rgb", "gray", "bgr"})}));
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = reg->Register(Info("resize", {ParamSpec::Int("size", std::nullopt, "shorter side", 1,
                                                     8192)}));
    EXPECT_TRUE(s.ok()) << s.ToString();
    StageInfo flip =
        Info("random_horizontal_flip", {ParamSpec::Float("p", 0.5, "probability", 0.0, 1.0)});
    flip.traits.deterministic = false;
    s = reg->Register(std::move(flip));
    EXPECT_TRUE(s.ok()) << s.ToString();
    return reg;
  }();
  return *registry;
}

PipelineOptions TrainOk(const std::string& text, const std::vector<std::string>& overrides = {}) {
  std::vector<ConfigError> errors;
  Result<PipelineOptions> r = ParseConfig(text, "a.yaml", overrides, TrainRegistry(), &errors);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(errors.empty());
  return r.ok() ? r.value() : PipelineOptions{};
}

std::vector<std::string> TrainErrors(const std::string& text,
                                     const std::vector<std::string>& overrides = {}) {
  std::vector<ConfigError> errors;
  Result<PipelineOptions> r = ParseConfig(text, "a.yaml", overrides, TrainRegistry(), &errors);
  EXPECT_FALSE(r.ok()) << "expected the config to fail:\n" << text;
  std::vector<std::string> out;
  for (const ConfigError& e : errors) out.push_back(e.ToString());
  return out;
}

std::string TrainOnlyError(const std::string& text,
                           const std::vector<std::string>& overrides = {}) {
  const std::vector<std::string> errors = TrainErrors(text, overrides);
  if (errors.size() != 1) {
    std::string all;
    for (const auto& e : errors) all += "\n  " + e;
    ADD_FAILURE() << "expected exactly one error, got " << errors.size() << ":" << all;
    return "";
  }
  return errors[0];
}

TEST(ConfigTrainParse, FullConfigFillsEveryField) {
  const std::string text =
      "source: {type: idx, root: /usr/share/datasets/fashion-mnist}\n"  // 1
      "pipeline:\n"                                                     // 2
      "  - type: decode\n"                                              // 3
      "  - type: random_horizontal_flip\n"                              // 4
      "batch: {size: 128}\n"                                            // 5
      "model:\n"                                                        // 6
      "  type: mlp\n"                                                   // 7
      "  hidden: [256, 128]\n"                                          // 8
      "  num_classes: 10\n"                                             // 9
      "optimizer:\n"                                                    // 10
      "  type: sgd\n"                                                   // 11
      "  lr: 0.1\n"                                                     // 12
      "  momentum: 0.8\n"                                               // 13
      "  nesterov: false\n"                                             // 14
      "  weight_decay: 5e-4\n"                                          // 15
      "schedule: {warmup_epochs: 0.5, type: step, min_lr: 1e-5, step_epochs: 10, gamma: 0.5}\n"
      "loss: {label_smoothing: 0.1}\n"                                  // 17
      "eval:\n"                                                         // 18
      "  source:\n"                                                     // 19
      "    type: idx\n"                                                 // 20
      "    root: /usr/share/datasets/fashion-mnist\n"                   // 21
      "    images: t10k-images-idx3-ubyte.gz\n"                         // 22
      "    labels: t10k-labels-idx1-ubyte.gz\n"                         // 23
      "  pipeline:\n"                                                   // 24
      "    - type: decode\n"                                            // 25
      "      color: gray\n"                                             // 26
      "    - {type: resize, size: 32}\n"                                // 27
      "    - {type: resize, size: 28}\n"                                // 28
      "  batch_size: 1000\n"                                            // 29
      "checkpoint: runs/fmnist/ckpt.pt\n"                               // 30
      "device: cuda\n"                                                  // 31
      "amp: true\n";                                                    // 32
  const PipelineOptions o = TrainOk(text);
  const TrainOptions& t = o.train;
  EXPECT_EQ(t.model.type, "mlp");
  EXPECT_EQ(t.model.hidden, (std::vector<int>{256, 128}));
  EXPECT_EQ(t.model.num_classes, 10);
  EXPECT_EQ(t.model.stem, "imagenet");  // default, unused by mlp

  EXPECT_EQ(t.optimizer.type, "sgd");
  EXPECT_DOUBLE_EQ(t.optimizer.lr, 0.1);
  EXPECT_DOUBLE_EQ(t.optimizer.momentum, 0.8);
  EXPECT_FALSE(t.optimizer.nesterov);
  EXPECT_DOUBLE_EQ(t.optimizer.weight_decay, 5e-4);

  EXPECT_DOUBLE_EQ(t.schedule.warmup_epochs, 0.5);
  EXPECT_EQ(t.schedule.type, "step");
  EXPECT_DOUBLE_EQ(t.schedule.min_lr, 1e-5);
  EXPECT_EQ(t.schedule.step_epochs, 10);
  EXPECT_DOUBLE_EQ(t.schedule.gamma, 0.5);

  EXPECT_DOUBLE_EQ(t.label_smoothing, 0.1);

  EXPECT_TRUE(t.eval.enabled);
  EXPECT_EQ(t.eval.source.type, "idx");
  EXPECT_EQ(t.eval.source.root, "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(t.eval.source.images, "t10k-images-idx3-ubyte.gz");
  EXPECT_EQ(t.eval.source.labels, "t10k-labels-idx1-ubyte.gz");
  EXPECT_EQ(t.eval.source.where.ToString(), "a.yaml:19:3");
  ASSERT_EQ(t.eval.pipeline.size(), 3u);
  EXPECT_EQ(t.eval.pipeline[0].type, "decode");
  EXPECT_EQ(t.eval.pipeline[0].params.String("color"), "gray");
  EXPECT_EQ(t.eval.pipeline[0].where.ToString(), "a.yaml:25:7");
  EXPECT_EQ(t.eval.pipeline[1].name, "resize");
  EXPECT_EQ(t.eval.pipeline[1].params.Int("size"), 32);
  EXPECT_EQ(t.eval.pipeline[2].name, "resize#2");  // names are unique per pipeline
  EXPECT_EQ(t.eval.pipeline[2].params.Int("size"), 28);
  EXPECT_EQ(t.eval.batch_size, 1000);

  EXPECT_EQ(t.checkpoint, "runs/fmnist/ckpt.pt");
  EXPECT_EQ(t.device, "cuda");
  EXPECT_TRUE(t.amp);

  // The training pipeline is untouched by the eval one (a random stage is fine there).
  ASSERT_EQ(o.pipeline.size(), 2u);
  EXPECT_EQ(o.pipeline[1].type, "random_horizontal_flip");
  EXPECT_EQ(o.source.images, "train-images-idx3-ubyte.gz");
  EXPECT_EQ(o.batch.size, 128);
}

TEST(ConfigTrainParse, ResNetAndAdamW) {
  const PipelineOptions o = TrainOk(kSource +
                                    "model: {type: resnet18, stem: cifar, num_classes: 0}\n"
                                    "optimizer:\n"
                                    "  type: adamw\n"
                                    "  lr: 3e-4\n"
                                    "  beta1: 0.85\n"
                                    "  beta2: 0.99\n"
                                    "  weight_decay: 0\n"
                                    "schedule: {type: constant, warmup_epochs: 2}\n"
                                    "device: cpu\n");
  const TrainOptions& t = o.train;
  EXPECT_EQ(t.model.type, "resnet18");
  EXPECT_EQ(t.model.stem, "cifar");
  EXPECT_EQ(t.model.num_classes, 0);
  EXPECT_EQ(t.optimizer.type, "adamw");
  EXPECT_DOUBLE_EQ(t.optimizer.lr, 3e-4);
  EXPECT_DOUBLE_EQ(t.optimizer.beta1, 0.85);
  EXPECT_DOUBLE_EQ(t.optimizer.beta2, 0.99);
  EXPECT_DOUBLE_EQ(t.optimizer.weight_decay, 0);
  EXPECT_EQ(t.schedule.type, "constant");
  EXPECT_DOUBLE_EQ(t.schedule.warmup_epochs, 2);  // an int is a valid number
  EXPECT_EQ(t.device, "cpu");

  // A lone width is a one-layer mlp.
  EXPECT_EQ(TrainOk(kSource + "model: {type: mlp, hidden: 64}\n").train.model.hidden,
            (std::vector<int>{64}));
}

TEST(ConfigTrainParse, DefaultsWhenAbsent) {
  const TrainOptions d;
  for (const std::string& text :
       {kSource, kSource + "model:\noptimizer:\nschedule:\nloss:\n"}) {
    const TrainOptions t = TrainOk(text).train;
    EXPECT_EQ(t.model.type, d.model.type);
    EXPECT_EQ(t.model.type, "cnn");
    EXPECT_EQ(t.model.stem, d.model.stem);
    EXPECT_EQ(t.model.hidden, d.model.hidden);
    EXPECT_EQ(t.model.num_classes, d.model.num_classes);
    EXPECT_EQ(t.optimizer.type, d.optimizer.type);
    EXPECT_EQ(t.optimizer.lr, d.optimizer.lr);
    EXPECT_EQ(t.optimizer.momentum, d.optimizer.momentum);
    EXPECT_EQ(t.optimizer.nesterov, d.optimizer.nesterov);
    EXPECT_EQ(t.optimizer.weight_decay, d.optimizer.weight_decay);
    EXPECT_EQ(t.optimizer.beta1, d.optimizer.beta1);
    EXPECT_EQ(t.optimizer.beta2, d.optimizer.beta2);
    EXPECT_EQ(t.schedule.warmup_epochs, d.schedule.warmup_epochs);
    EXPECT_EQ(t.schedule.type, d.schedule.type);
    EXPECT_EQ(t.schedule.min_lr, d.schedule.min_lr);
    EXPECT_EQ(t.schedule.step_epochs, d.schedule.step_epochs);
    EXPECT_EQ(t.schedule.gamma, d.schedule.gamma);
    EXPECT_EQ(t.label_smoothing, d.label_smoothing);
    EXPECT_FALSE(t.eval.enabled);
    EXPECT_TRUE(t.eval.pipeline.empty());
    EXPECT_EQ(t.eval.batch_size, 0);
    EXPECT_EQ(t.checkpoint, "");
    EXPECT_EQ(t.device, "auto");
    EXPECT_FALSE(t.amp);
  }
}

TEST(ConfigTrainParse, EvalSourceFollowsTheSourceRules) {
  // idx file names default exactly as for the top-level source.
  const TrainOptions t =
      TrainOk(kSource + "eval:\n  source: {type: idx, root: m}\n").train;
  EXPECT_TRUE(t.eval.enabled);
  EXPECT_EQ(t.eval.source.images, "train-images-idx3-ubyte.gz");
  EXPECT_EQ(t.eval.source.labels, "train-labels-idx1-ubyte.gz");
  EXPECT_TRUE(t.eval.pipeline.empty());
  EXPECT_EQ(t.eval.batch_size, 0);

  EXPECT_EQ(TrainOnlyError(kSource + "eval:\n  source:\n    type: idx\n"),
            "a.yaml:3:3: eval.source.root: missing required key");
  EXPECT_EQ(TrainOnlyError(kSource + "eval:\n  source:\n    type: file_list\n    root: r\n"),
            "a.yaml:3:3: eval.source.list: missing required key (eval.source.type is "
            "file_list)");
  EXPECT_EQ(TrainOnlyError(kSource + "eval:\n  source:\n    type: idx\n    root: r\n"
                                     "    list: l.csv\n"),
            "a.yaml:6:5: eval.source.list: only valid when eval.source.type is file_list (it is "
            "idx)");
  EXPECT_EQ(TrainOnlyError(kSource + "eval:\n  source: {type: idx, root: r, label: l}\n"),
            "a.yaml:3:32: eval.source.label: unknown key; did you mean \"labels\"?");
}

TEST(ConfigTrainErrors, UnknownKeyInOptimizer) {
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  type: sgd\n  momentun: 0.9\n"),
            "a.yaml:4:3: optimizer.momentun: unknown key; did you mean \"momentum\"?");
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer: {learning_rate: 0.1}\n"),
            "a.yaml:2:13: optimizer.learning_rate: unknown key (known keys: beta1, beta2, "
            "lr, momentum, nesterov, type, weight_decay)");
  EXPECT_EQ(TrainOnlyError(kSource + "optimiser: {lr: 0.1}\n"),
            "a.yaml:2:1: optimiser: unknown key; did you mean \"optimizer\"?");
  EXPECT_EQ(TrainOnlyError(kSource + "model: {tpye: cnn}\n"),
            "a.yaml:2:9: model.tpye: unknown key; did you mean \"type\"?");
  EXPECT_EQ(TrainOnlyError(kSource + "schedule: {gama: 0.5}\n"),
            "a.yaml:2:12: schedule.gama: unknown key; did you mean \"gamma\"?");
  EXPECT_EQ(TrainOnlyError(kSource + "eval:\n  source: {type: idx, root: r}\n  batchsize: 8\n"),
            "a.yaml:4:3: eval.batchsize: unknown key; did you mean \"batch_size\"?");
}

TEST(ConfigTrainErrors, LearningRateMustBePositive) {
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer: {lr: 0}\n"),
            "a.yaml:2:17: optimizer.lr: expected a number in (0, 1000], got \"0\"");
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  lr: -0.1\n"),
            "a.yaml:3:7: optimizer.lr: expected a number in (0, 1000], got \"-0.1\"");
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  lr: fast\n"),
            "a.yaml:3:7: optimizer.lr: expected a number in (0, 1000], got \"fast\"");
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  lr: \"0.1\"\n"),
            "a.yaml:3:7: optimizer.lr: expected a number in (0, 1000], got the string \"0.1\"");
}

TEST(ConfigTrainErrors, OptimizerRanges) {
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  momentum: 1\n"),
            "a.yaml:3:13: optimizer.momentum: expected a number in [0, 1), got \"1\"");
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  weight_decay: -1e-4\n"),
            "a.yaml:3:17: optimizer.weight_decay: expected a number in [0, 1000], got \"-1e-4\"");
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  type: adamw\n  beta2: 1.0\n"),
            "a.yaml:4:10: optimizer.beta2: expected a number in [0, 1), got \"1.0\"");
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  nesterov: yes\n"),
            "a.yaml:3:13: optimizer.nesterov: expected true or false, got \"yes\"");
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  type: adam\n"),
            "a.yaml:3:9: optimizer.type: expected one of sgd, adamw, got \"adam\"; did you "
            "mean \"adamw\"?");
}

TEST(ConfigTrainErrors, KeysThatDependOnOptimizerType) {
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  type: adamw\n  momentum: 0.9\n"),
            "a.yaml:4:3: optimizer.momentum: only valid when optimizer.type is sgd (it is "
            "adamw)");
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  type: adamw\n  nesterov: false\n"),
            "a.yaml:4:3: optimizer.nesterov: only valid when optimizer.type is sgd (it is "
            "adamw)");
  // sgd is the default type.
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  lr: 0.1\n  beta1: 0.9\n"),
            "a.yaml:4:3: optimizer.beta1: only valid when optimizer.type is adamw (it is sgd)");
  // An invalid type is reported once, not again for every key that depends on it.
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  type: lamb\n  beta1: 0.9\n  momentum: 0\n"),
            "a.yaml:3:9: optimizer.type: expected one of sgd, adamw, got \"lamb\"");
}

TEST(ConfigTrainErrors, NesterovWithoutMomentum) {
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer:\n  momentum: 0\n  nesterov: true\n"),
            "a.yaml:4:13: optimizer.nesterov: nesterov needs momentum > 0");
  EXPECT_EQ(TrainOnlyError(kSource + "optimizer: {nesterov: true, momentum: 0.0}\n"),
            "a.yaml:2:23: optimizer.nesterov: nesterov needs momentum > 0");
  // The default nesterov (true) gives way to momentum 0; explicit false is fine.
  EXPECT_FALSE(TrainOk(kSource + "optimizer: {momentum: 0}\n").train.optimizer.nesterov);
  EXPECT_FALSE(
      TrainOk(kSource + "optimizer: {momentum: 0, nesterov: false}\n").train.optimizer.nesterov);
  EXPECT_TRUE(TrainOk(kSource + "optimizer: {nesterov: true}\n").train.optimizer.nesterov);
}

TEST(ConfigTrainErrors, KeysThatDependOnModelType) {
  EXPECT_EQ(TrainOnlyError(kSource + "model:\n  type: cnn\n  stem: cifar\n"),
            "a.yaml:4:3: model.stem: only valid when model.type is resnet18 (it is cnn)");
  EXPECT_EQ(TrainOnlyError(kSource + "model:\n  type: cnn\n  hidden: [128]\n"),
            "a.yaml:4:3: model.hidden: only valid when model.type is mlp (it is cnn)");
  // cnn is the default type.
  EXPECT_EQ(TrainOnlyError(kSource + "model: {hidden: [64]}\n"),
            "a.yaml:2:9: model.hidden: only valid when model.type is mlp (it is cnn)");
  EXPECT_EQ(TrainOnlyError(kSource + "model: {type: mlp, stem: imagenet}\n"),
            "a.yaml:2:20: model.stem: only valid when model.type is resnet18 (it is mlp)");
}

TEST(ConfigTrainErrors, ModelValues) {
  EXPECT_EQ(TrainOnlyError(kSource + "model: {type: resnet}\n"),
            "a.yaml:2:15: model.type: expected one of mlp, cnn, resnet18, got \"resnet\"; did "
            "you mean \"resnet18\"?");
  EXPECT_EQ(TrainOnlyError(kSource + "model: {type: transformer}\n"),
            "a.yaml:2:15: model.type: expected one of mlp, cnn, resnet18, got \"transformer\"");
  EXPECT_EQ(TrainOnlyError(kSource + "model: {type: resnet18, stem: cifr}\n"),
            "a.yaml:2:31: model.stem: expected one of imagenet, cifar, got \"cifr\"; did you "
            "mean \"cifar\"?");
  EXPECT_EQ(TrainOnlyError(kSource + "model:\n  type: mlp\n  hidden: []\n"),
            "a.yaml:4:11: model.hidden: expected a list of layer widths (integers in [1, 65536]), got an "
            "empty list");
  EXPECT_EQ(TrainOnlyError(kSource + "model:\n  type: mlp\n  hidden: [256, 0]\n"),
            "a.yaml:4:17: model.hidden[1]: expected an integer in [1, 65536], got \"0\"");
  EXPECT_EQ(TrainOnlyError(kSource + "model:\n  type: mlp\n  hidden: {a: 1}\n"),
            "a.yaml:4:11: model.hidden: expected a list of layer widths (integers in [1, 65536]), got a "
            "map");
  EXPECT_EQ(TrainOnlyError(kSource + "model:\n  num_classes: -1\n"),
            "a.yaml:3:16: model.num_classes: expected an integer in [0, 65536], got \"-1\"");
  EXPECT_EQ(TrainOnlyError(kSource + "model: cnn\n"),
            "a.yaml:2:8: model: expected a map (type, stem, hidden, num_classes), got \"cnn\"");
}

TEST(ConfigTrainErrors, ScheduleValues) {
  EXPECT_EQ(TrainOnlyError(kSource + "schedule:\n  warmup_epochs: -1\n"),
            "a.yaml:3:18: schedule.warmup_epochs: expected a number in [0, 10000], got \"-1\"");
  EXPECT_EQ(TrainOnlyError(kSource + "schedule:\n  type: linear\n"),
            "a.yaml:3:9: schedule.type: expected one of cosine, step, constant, got \"linear\"");
  EXPECT_EQ(TrainOnlyError(kSource + "schedule:\n  min_lr: -0.1\n"),
            "a.yaml:3:11: schedule.min_lr: expected a number in [0, 1000], got \"-0.1\"");
  EXPECT_EQ(TrainOnlyError(kSource + "schedule:\n  step_epochs: 0\n"),
            "a.yaml:3:16: schedule.step_epochs: expected an integer in [1, 10000], got \"0\"");
  EXPECT_EQ(TrainOnlyError(kSource + "schedule:\n  step_epochs: 2.5\n"),
            "a.yaml:3:16: schedule.step_epochs: expected an integer in [1, 10000], got \"2.5\"");
  EXPECT_EQ(TrainOnlyError(kSource + "schedule:\n  gamma: 0\n"),
            "a.yaml:3:10: schedule.gamma: expected a number in (0, 1], got \"0\"");
  EXPECT_EQ(TrainOnlyError(kSource + "schedule:\n  gamma: 1.5\n"),
            "a.yaml:3:10: schedule.gamma: expected a number in (0, 1], got \"1.5\"");
  EXPECT_DOUBLE_EQ(TrainOk(kSource + "schedule: {gamma: 1}\n").train.schedule.gamma, 1.0);
}

TEST(ConfigTrainErrors, LabelSmoothingBelowOne) {
  EXPECT_EQ(TrainOnlyError(kSource + "loss: {label_smoothing: 1.0}\n"),
            "a.yaml:2:25: loss.label_smoothing: expected a number in [0, 1), got \"1.0\"");
  EXPECT_EQ(TrainOnlyError(kSource + "loss:\n  label_smoothing: -0.1\n"),
            "a.yaml:3:20: loss.label_smoothing: expected a number in [0, 1), got \"-0.1\"");
  EXPECT_EQ(TrainOnlyError(kSource + "loss:\n  smoothing: 0.1\n"),
            "a.yaml:3:3: loss.smoothing: unknown key (known keys: label_smoothing)");
  EXPECT_DOUBLE_EQ(TrainOk(kSource + "loss: {label_smoothing: 0}\n").train.label_smoothing, 0);
}

TEST(ConfigTrainErrors, RandomStageInEvalPipeline) {
  const std::string text = kSource +
                           "eval:\n"                                   // 2
                           "  source: {type: idx, root: m}\n"          // 3
                           "  pipeline:\n"                             // 4
                           "    - type: decode\n"                      // 5
                           "    - type: random_horizontal_flip\n"      // 6
                           "      p: 0.5\n"                            // 7
                           "    - {type: resize, size: 28}\n";         // 8
  EXPECT_EQ(TrainOnlyError(text),
            "a.yaml:6:7: eval.pipeline[1] (random_horizontal_flip): eval pipelines must be "
            "deterministic: 'random_horizontal_flip' is random");
  // Stage errors in the eval pipeline carry its path.
  EXPECT_EQ(TrainOnlyError(kSource + "eval:\n  source: {type: idx, root: m}\n  pipeline:\n"
                                     "    - type: decode\n    - {type: resize, size: 0}\n"),
            "a.yaml:6:28: eval.pipeline[1] (resize).size: expected an integer in [1, 8192], got "
            "\"0\"");
  EXPECT_EQ(TrainOnlyError(kSource + "eval:\n  source: {type: idx, root: m}\n  pipeline: decode\n"),
            "a.yaml:4:13: eval.pipeline: expected a list of stages (- type: ...), got \"decode\"");
}

TEST(ConfigTrainErrors, EvalWithoutSource) {
  EXPECT_EQ(TrainOnlyError(kSource + "eval:\n  batch_size: 100\n"),
            "a.yaml:2:1: eval.source: missing required key");
  EXPECT_EQ(TrainOnlyError(kSource + "eval:\n"), "a.yaml:2:1: eval.source: missing required key");
  EXPECT_EQ(TrainOnlyError(kSource + "eval: [a]\n"),
            "a.yaml:2:7: eval: expected a map (source, pipeline, batch_size), got a list");
  EXPECT_EQ(TrainOnlyError(kSource + "eval:\n  source: {type: idx, root: m}\n  batch_size: 0\n"),
            "a.yaml:4:15: eval.batch_size: expected an integer in [1, 65536], got \"0\"");
}

TEST(ConfigTrainErrors, DeviceCheckpointAmp) {
  EXPECT_EQ(TrainOnlyError(kSource + "device: gpu\n"),
            "a.yaml:2:9: device: expected one of auto, cpu, cuda, got \"gpu\"; did you mean "
            "\"cpu\"?");
  EXPECT_EQ(TrainOnlyError(kSource + "device: cuda:0\n"),
            "a.yaml:2:9: device: expected one of auto, cpu, cuda, got \"cuda:0\"; did you mean "
            "\"cuda\"?");
  EXPECT_EQ(TrainOnlyError(kSource + "device: [cpu]\n"),
            "a.yaml:2:9: device: expected one of auto, cpu, cuda, got a list");
  EXPECT_EQ(TrainOnlyError(kSource + "checkpoint: \"\"\n"),
            "a.yaml:2:13: checkpoint: expected a file path, got \"\"");
  EXPECT_EQ(TrainOnlyError(kSource + "checkpoint:\n"),
            "a.yaml:2:1: checkpoint: expected a file path, got nothing");
  EXPECT_EQ(TrainOnlyError(kSource + "amp: 1\n"),
            "a.yaml:2:6: amp: expected true or false, got \"1\"");
}

TEST(ConfigTrainErrors, ManyErrorsAreAllReportedInLineOrder) {
  const std::vector<std::string> got = TrainErrors(kSource +
                                                   "model: {type: cnn, stem: cifar}\n"   // 2
                                                   "optimizer:\n"                        // 3
                                                   "  type: adamw\n"                     // 4
                                                   "  lr: 0\n"                           // 5
                                                   "  momentum: 0.9\n"                   // 6
                                                   "loss: {label_smoothing: 1}\n"        // 7
                                                   "device: tpu\n");                     // 8
  const std::vector<std::string> want = {
      "a.yaml:2:20: model.stem: only valid when model.type is resnet18 (it is cnn)",
      "a.yaml:5:7: optimizer.lr: expected a number in (0, 1000], got \"0\"",
      "a.yaml:6:3: optimizer.momentum: only valid when optimizer.type is sgd (it is adamw)",
      "a.yaml:7:25: loss.label_smoothing: expected a number in [0, 1), got \"1\"",
      "a.yaml:8:9: device: expected one of auto, cpu, cuda, got \"tpu\"; did you mean "
      "\"cpu\"?",
  };
  EXPECT_EQ(got, want);
}

TEST(ConfigTrainOverrides, SetValuesInTheNewSections) {
  // Sections the file lacks are created.
  PipelineOptions o = TrainOk(kSource, {"optimizer.lr=0.1", "model.type=mlp",
                                        "model.hidden=[512, 256]", "schedule.type=step",
                                        "loss.label_smoothing=0.05", "device=cpu", "amp=true",
                                        "checkpoint=/tmp/c.pt"});
  EXPECT_DOUBLE_EQ(o.train.optimizer.lr, 0.1);
  EXPECT_EQ(o.train.model.type, "mlp");
  EXPECT_EQ(o.train.model.hidden, (std::vector<int>{512, 256}));
  EXPECT_EQ(o.train.schedule.type, "step");
  EXPECT_DOUBLE_EQ(o.train.label_smoothing, 0.05);
  EXPECT_EQ(o.train.device, "cpu");
  EXPECT_TRUE(o.train.amp);
  EXPECT_EQ(o.train.checkpoint, "/tmp/c.pt");
  EXPECT_FALSE(o.train.eval.enabled);

  // And values the file gives are replaced.
  const std::string text = kSource +
                           "model: {type: cnn}\n"
                           "optimizer: {lr: 0.05, weight_decay: 5e-4}\n"
                           "eval:\n"
                           "  source: {type: idx, root: m}\n"
                           "  pipeline:\n"
                           "    - type: decode\n"
                           "    - {type: resize, size: 32}\n";
  o = TrainOk(text, {"optimizer.lr=1e-3", "model.type=resnet18", "model.stem=cifar",
                     "eval.batch_size=500", "eval.pipeline.1.size=64",
                     "eval.source.root=/data/test"});
  EXPECT_DOUBLE_EQ(o.train.optimizer.lr, 1e-3);
  EXPECT_DOUBLE_EQ(o.train.optimizer.weight_decay, 5e-4);
  EXPECT_EQ(o.train.model.type, "resnet18");
  EXPECT_EQ(o.train.model.stem, "cifar");
  EXPECT_EQ(o.train.eval.batch_size, 500);
  ASSERT_EQ(o.train.eval.pipeline.size(), 2u);
  EXPECT_EQ(o.train.eval.pipeline[1].params.Int("size"), 64);
  EXPECT_EQ(o.train.eval.source.root, "/data/test");

  // An eval section made entirely by overrides.
  o = TrainOk(kSource, {"eval.source={type: idx, root: m, images: t10k-images-idx3-ubyte.gz}"});
  EXPECT_TRUE(o.train.eval.enabled);
  EXPECT_EQ(o.train.eval.source.images, "t10k-images-idx3-ubyte.gz");
  EXPECT_EQ(o.train.eval.source.labels, "train-labels-idx1-ubyte.gz");
}

TEST(ConfigTrainOverrides, BadValuesReportTheOverride) {
  EXPECT_EQ(TrainOnlyError(kSource, {"optimizer.lr=0"}),
            "--set optimizer.lr: optimizer.lr: expected a number in (0, 1000], got \"0\"");
  EXPECT_EQ(TrainOnlyError(kSource, {"model.type=vit"}),
            "--set model.type: model.type: expected one of mlp, cnn, resnet18, got \"vit\"");
  EXPECT_EQ(TrainOnlyError(kSource, {"optimizer.nesterov=true", "optimizer.momentum=0"}),
            "--set optimizer.nesterov: optimizer.nesterov: nesterov needs momentum > 0");
  // A key the file gives becomes invalid through an override's type: reported in the file.
  EXPECT_EQ(TrainOnlyError(kSource + "model:\n  type: mlp\n  hidden: [64]\n", {"model.type=cnn"}),
            "a.yaml:4:3: model.hidden: only valid when model.type is mlp (it is cnn)");
  EXPECT_EQ(TrainOnlyError(kSource, {"eval.batch_size=8"}),
            "--set eval.batch_size: eval.source: missing required key");
  EXPECT_EQ(TrainOnlyError(kSource + "eval:\n  source: {type: idx, root: m}\n  pipeline:\n"
                                     "    - {type: decode}\n",
                           {"eval.pipeline=[{type: random_horizontal_flip}]"}),
            "--set eval.pipeline: eval.pipeline[0] (random_horizontal_flip): eval pipelines "
            "must be deterministic: 'random_horizontal_flip' is random");
}

TEST(ConfigDistributed, SectionAndTarSourceAreRead) {
  PipelineOptions o = ParseOk(
      "source: {type: tar, shards: 'd/shard-{000000..000003}.tar', label_extension: label, "
      "shuffle_buffer: 500, extensions: [.png]}\n"
      "pipeline: [{type: decode}]\n"
      "distributed: {policy: stable, uneven: drop, backend: gloo, timeout_seconds: 30, "
      "rank_reports: true}\n"
      "checkpoint_every: 100\nrecord_indices: true\n");
  EXPECT_EQ(o.source.type, "tar");
  EXPECT_EQ(o.source.shards, "d/shard-{000000..000003}.tar");
  EXPECT_EQ(o.source.label_extension, "label");
  EXPECT_EQ(o.source.shuffle_buffer, 500);
  EXPECT_EQ(o.distributed.policy, ShardPolicy::kStable);
  EXPECT_EQ(o.distributed.uneven, UnevenPolicy::kDrop);
  EXPECT_EQ(o.distributed.backend, "gloo");
  EXPECT_DOUBLE_EQ(o.distributed.timeout_seconds, 30);
  EXPECT_TRUE(o.distributed.rank_reports);
  EXPECT_EQ(o.train.checkpoint_every, 100);
  EXPECT_TRUE(o.train.record_indices);
}

TEST(ConfigDistributed, BadValuesAreNamed) {
  EXPECT_EQ(OnlyError(kSource + "distributed: {policy: shared}\n"),
            "a.yaml:2:23: distributed.policy: expected one of global, stable, got \"shared\"");
  EXPECT_EQ(OnlyError(kSource + "distributed: {timeout_seconds: 0}\n"),
            "a.yaml:2:32: distributed.timeout_seconds: expected a number in (0, 604800], got \"0\"");
  EXPECT_EQ(OnlyError("source: {type: tar}\n"),
            "a.yaml:1:1: source.shards: missing required key (source.type is tar)");
  EXPECT_EQ(OnlyError("source: {type: image_folder, root: r, shards: x.tar}\n"),
            "a.yaml:1:39: source.shards: only valid when source.type is tar (it is image_folder)");
}

TEST(ConfigDistributed, EnvironmentFillsTheRank) {
  PipelineOptions o = ParseOk(kSource);
  setenv("RANK", "1", 1);
  setenv("WORLD_SIZE", "4", 1);
  setenv("MASTER_ADDR", "10.0.0.7", 1);
  setenv("MASTER_PORT", "29999", 1);
  Status st = ApplyDistributedEnvironment(&o);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(o.distributed.rank, 1);
  EXPECT_EQ(o.distributed.world_size, 4);
  EXPECT_EQ(o.distributed.master_addr, "10.0.0.7");
  EXPECT_EQ(o.distributed.master_port, 29999);
  setenv("MASTER_PORT", "70000", 1);
  st = ApplyDistributedEnvironment(&o);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("MASTER_PORT=\"70000\""), std::string::npos) << st.message();
  for (const char* v : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}) unsetenv(v);
}

}  // namespace
}  // namespace flowfeed
