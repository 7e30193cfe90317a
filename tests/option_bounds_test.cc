// Every numeric config key has a range on both sides, and a value outside it is a config error
// that names the key: walked over the option tables, so a key added without a bound fails here.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "config/option_table.h"
#include "flowfeed/config.h"
#include "flowfeed/registry.h"
#include "test_util.h"

namespace flowfeed {
namespace {

StageRegistry Builtins() {
  StageRegistry registry;
  RegisterBuiltinStages(&registry);
  return registry;
}

// A numeric key as a config writes it, with the overrides that make it valid to write
// (`model.hidden` only when model.type is mlp ...).
struct NumericKey {
  std::string path;  // "batch.size", "pipeline.0.concurrency"
  config::OptionInfo row;
  std::vector<std::string> needs;
};

bool IsNumeric(config::Kind k) {
  return k == config::Kind::kInt || k == config::Kind::kNumber || k == config::Kind::kBytes ||
         k == config::Kind::kIntList;
}

// The overrides that make a type-specific key valid: its section's `type` set to the first type
// the key is valid for, and what that type requires.
std::vector<std::string> Needs(const std::string& section, const std::string& only_when) {
  if (only_when.empty()) return {};
  const std::string type = only_when.substr(0, only_when.find(' '));
  std::vector<std::string> out = {section + ".type=" + type};
  if (section == "source" && type == "tar") out.push_back("source.shards=a.tar");
  return out;
}

template <typename S>
void Add(const std::string& section, std::vector<NumericKey>* keys) {
  for (const config::OptionSpec<S>& row : config::Options<S>()) {
    if (!IsNumeric(row.kind)) continue;
    const std::string path = section.empty() ? row.key : section + "." + row.key;
    std::vector<std::string> needs = Needs(section, row.only_when);
    // A time limit is refused for a stage that runs in this process.
    if (row.key == "timeout_ms") needs.push_back(section + ".isolate=process");
    keys->push_back({path, row, needs});
  }
}

std::vector<NumericKey> AllNumericKeys() {
  std::vector<NumericKey> keys;
  Add<PipelineOptions>("", &keys);
  Add<SourceOptions>("source", &keys);
  Add<StageSpec>("pipeline.0", &keys);
  Add<BatchOptions>("batch", &keys);
  Add<CacheOptions>("cache", &keys);
  Add<DistributedOptions>("distributed", &keys);
  Add<ModelOptions>("model", &keys);
  Add<OptimizerOptions>("optimizer", &keys);
  Add<ScheduleOptions>("schedule", &keys);
  Add<TrainOptions>("loss", &keys);
  Add<EvalOptions>("eval", &keys);
  return keys;
}

// Values past either end, and values no range admits.
std::vector<std::string> Extremes(const config::OptionInfo& row) {
  switch (row.kind) {
    case config::Kind::kInt:
      return {std::to_string(int64_t(row.hi->value) + 1), std::to_string(int64_t(row.lo->value) - 1),
              "2147483648", "9223372036854775807", "99999999999999999999999", "-2147483649"};
    case config::Kind::kIntList:
      return {"[1, " + std::to_string(int64_t(row.hi->value) + 1) + "]", "2147483647", "[0]",
              "-1"};
    case config::Kind::kBytes:
      return {std::to_string(int64_t(row.hi->value) + 1), "1025TiB", "-1", "16777216PiB",
              "99999999999999999999999"};
    default:  // kNumber
      return {"1e308", "-1e308", "1e400", ".nan", ".inf", "-.inf",
              config::FormatNumber(row.hi->value * 2 + 1)};
  }
}

// Trains nothing and reads no file: a config the reader accepts as it is.
const char* kBase =
    "source: {type: idx, root: data}\n"
    "pipeline:\n"
    "  - {type: normalize, mean: [0.5], std: [0.5]}\n"
    "batch: {size: 8}\n"
    "eval:\n"
    "  source: {type: idx, root: data}\n";

TEST(OptionBounds, EveryNumericKeyHasBothEnds) {
  for (const NumericKey& k : AllNumericKeys()) {
    EXPECT_TRUE(k.row.lo.has_value()) << k.path << " has no lower bound";
    EXPECT_TRUE(k.row.hi.has_value()) << k.path << " has no upper bound";
  }
}

TEST(OptionBounds, EveryExtremeValueIsRefusedNamingTheKey) {
  const std::vector<NumericKey> keys = AllNumericKeys();
  ASSERT_GT(keys.size(), 25u);
  const StageRegistry registry = Builtins();
  for (const NumericKey& k : keys) {
    if (!k.row.lo || !k.row.hi) continue;  // the test above fails for it
    for (const std::string& value : Extremes(k.row)) {
      std::vector<std::string> overrides = k.needs;
      overrides.push_back(k.path + "=" + value);
      std::vector<ConfigError> errors;
      Result<PipelineOptions> r = ParseConfig(kBase, "a.yaml", overrides, registry, &errors);
      ASSERT_FALSE(r.ok()) << k.path << "=" << value << " was accepted";
      const std::string message = r.status().message();
      // "--set pipeline.0.concurrency: pipeline[0] (normalize).concurrency: expected ..."
      EXPECT_NE(message.find("--set " + k.path + ": "), std::string::npos)
          << k.path << "=" << value << ": " << message;
      const bool names_key = message.find(k.row.key + ": expected") != std::string::npos ||
                             message.find(k.row.key + "[") != std::string::npos;  // a list item
      EXPECT_TRUE(names_key)
          << k.path << "=" << value << ": " << message;
      EXPECT_EQ(message.find("internal"), std::string::npos) << message;
    }
  }
}

// The bounds are where a value stops being a setting, not below real use: each key at its
// largest value is accepted, or refused only by the bound on samples in flight, which is the
// product of several keys.
TEST(OptionBounds, TheLargestValueOfEveryKeyIsAccepted) {
  const StageRegistry registry = Builtins();
  for (const NumericKey& k : AllNumericKeys()) {
    if (!k.row.hi) continue;
    const double top = k.row.hi->open ? std::nextafter(k.row.hi->value, -1e300) : k.row.hi->value;
    std::string value = k.row.kind == config::Kind::kNumber ? config::FormatNumber(top)
                                                             : std::to_string(int64_t(top));
    if (k.row.kind == config::Kind::kNumber && top != k.row.hi->value) {
      char text[64];
      std::snprintf(text, sizeof text, "%.17g", top);
      value = text;
    }
    std::vector<std::string> overrides = k.needs;
    overrides.push_back(k.path + "=" + value);
    Result<PipelineOptions> r = ParseConfig(kBase, "a.yaml", overrides, registry);
    if (r.ok()) continue;
    EXPECT_NE(r.status().message().find("samples in flight"), std::string::npos)
        << k.path << "=" << value << ": " << r.status().message();
  }
}

TEST(OptionBounds, SamplesInFlightAreBoundedAcrossKeys) {
  const StageRegistry registry = Builtins();
  Result<PipelineOptions> r =
      ParseConfig(kBase, "a.yaml", {"prefetch=1024", "batch.size=1024"}, registry);
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(m.find("prefetch x batch.size + max_in_flight must be <= 131072"), std::string::npos)
      << m;
  EXPECT_NE(m.find("1024 x 1024"), std::string::npos) << m;

  r = ParseConfig(kBase, "a.yaml", {"eval.batch_size=65536", "max_in_flight=131072"}, registry);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("eval.batch_size + max_in_flight"), std::string::npos)
      << r.status().message();

  // 4 per thread when max_in_flight is 0: the largest arena still fits beside a large batch.
  EXPECT_TRUE(ParseConfig(kBase, "a.yaml", {"threads=1024", "prefetch=2", "batch.size=63000"},
                          registry)
                  .ok());

  // Options built in code meet the same rule.
  PipelineOptions o;
  o.prefetch = 1000;
  o.batch.size = 1000;
  const Status s = Validate(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("samples in flight"), std::string::npos) << s.message();
}

// The same walk through the program a user runs: `bench` on a real (tiny) dataset, so a value
// that slipped through would run, not only parse. Exit 2 (a config error) naming the key, never
// an internal error.
TEST(OptionBounds, TheCliRefusesEveryExtremeWithExitTwoNamingTheKey) {
  test::TempDir dir;
  test::WriteIdx(dir / "data/images.idx", dir / "data/labels.idx", 16, 4, 4);
  test::WriteText(dir / "c.yaml",
                  "source: {type: idx, root: " + dir.path() +
                      "/data, images: images.idx, labels: labels.idx}\n"
                      "pipeline:\n  - {type: normalize, mean: [0.5], std: [0.5]}\n"
                      "batch: {size: 8}\n");
  for (const NumericKey& k : AllNumericKeys()) {
    if (!k.row.hi) continue;
    std::string sets;
    for (const std::string& n : k.needs) sets += " --set '" + n + "'";
    const std::string value = Extremes(k.row).front();  // just past the top
    const test::ShellRun r = test::Shell(std::string(FLOWFEED_BINARY) + " bench " + (dir / "c.yaml") +
                                         " --epochs 1" + sets + " --set '" + k.path + "=" + value +
                                         "'");
    EXPECT_EQ(r.code, 2) << k.path << "=" << value << ": " << r.output;
    EXPECT_NE(r.output.find("--set " + k.path + ": "), std::string::npos)
        << k.path << "=" << value << ": " << r.output;
    EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace flowfeed
