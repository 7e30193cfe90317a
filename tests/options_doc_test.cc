// The option tables against what is derived from them: docs/config.md's key reference, and
// Validate() (options.h) against the checks Pipeline::Open and the config reader make.
#include <gtest/gtest.h>

#include <string>

#include "flowfeed/config.h"
#include "flowfeed/options.h"
#include "flowfeed/registry.h"
#include "test_util.h"

namespace flowfeed {
namespace {

std::string Between(const std::string& text, const std::string& begin, const std::string& end) {
  const size_t b = text.find(begin);
  const size_t e = text.find(end);
  if (b == std::string::npos || e == std::string::npos || e < b) return "<markers not found>";
  return text.substr(b + begin.size(), e - b - begin.size());
}

TEST(OptionsDoc, ConfigMdKeyTablesMatchTheOptionTables) {
  const std::string doc = test::ReadText(std::string(FLOWFEED_SOURCE_DIR) + "/docs/config.md");
  const std::string block = Between(doc, "<!-- options:begin -->\n", "<!-- options:end -->");
  EXPECT_EQ(block, ConfigReference())
      << "docs/config.md's key tables differ from engine/src/config/option_table.cc; rewrite "
         "them with tools/gen_config_reference.sh (after building build/flowfeed)";
}

TEST(OptionsDoc, ReferenceNamesEveryKeyWithItsDefault) {
  const std::string ref = ConfigReference();
  EXPECT_NE(ref.find("| `threads` | integer | `0` | in [0, 1024] |"), std::string::npos) << ref;
  EXPECT_NE(ref.find("| `layout` | choice | `nchw` | `nchw`, `nhwc` |"), std::string::npos);
  EXPECT_NE(ref.find("| `write_queue` | size | `256MiB` | in [0, 1PiB] |"), std::string::npos);
  EXPECT_NE(ref.find("| `gamma` | number | `0.1` | in (0, 1] |"), std::string::npos);
}

TEST(Validate, DefaultsAreValid) { EXPECT_TRUE(Validate(PipelineOptions()).ok()); }

// Every range check Pipeline::Open makes, in its words.
TEST(Validate, CoversPipelineOpensChecks) {
  const auto message = [](void (*change)(PipelineOptions*)) {
    PipelineOptions o;
    change(&o);
    const Status s = Validate(o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    return s.message();
  };
  EXPECT_EQ(message([](PipelineOptions* o) { o->batch.size = 0; }), "batch.size must be in [1, 65536]");
  EXPECT_EQ(message([](PipelineOptions* o) { o->epochs = 0; }),
            "epochs must be in [1, 10000]\nstart_epoch must be in [0, epochs)");
  EXPECT_EQ(message([](PipelineOptions* o) { o->prefetch = 0; }), "prefetch must be in [1, 1024]");
  EXPECT_EQ(message([](PipelineOptions* o) { o->threads = -1; }), "threads must be in [0, 1024]");
  EXPECT_EQ(message([](PipelineOptions* o) { o->max_in_flight = -1; }),
            "max_in_flight must be in [0, 131072]");
  EXPECT_EQ(message([](PipelineOptions* o) { o->start_epoch = 1; }),
            "start_epoch must be in [0, epochs)");
  EXPECT_EQ(message([](PipelineOptions* o) { o->start_position = -1; }),
            "start_position and start_batch must be >= 0");
  EXPECT_EQ(message([](PipelineOptions* o) { o->start_batch = -1; }),
            "start_position and start_batch must be >= 0");
  EXPECT_EQ(message([](PipelineOptions* o) { o->distributed.rank = 2; }),
            "distributed: rank 2 is not in [0, world_size 1)");
  EXPECT_EQ(message([](PipelineOptions* o) { o->distributed.world_size = 0; }),
            "distributed: rank 0 is not in [0, world_size 0)");
}

TEST(Validate, CoversTheTablesRangesAndTheRulesBetweenKeys) {
  PipelineOptions o;
  o.train.optimizer.lr = 0;
  o.train.optimizer.momentum = 0;  // with the default nesterov: true
  o.train.model.type = "vgg";
  o.train.schedule.gamma = 1.5;
  o.source.type = "file_list";
  o.cache.mode = CacheMode::kDisk;
  StageSpec stage;
  stage.type = "decode";
  stage.concurrency = -2;
  o.pipeline.push_back(stage);
  const Status s = Validate(o);
  EXPECT_EQ(s.message(),
            "pipeline[0].concurrency must be in [0, 131072]\n"
            "model.type must be one of mlp, cnn, resnet18 (it is \"vgg\")\n"
            "optimizer.lr must be in (0, 1000]\n"
            "schedule.gamma must be in (0, 1]\n"
            "source.list is required when source.type is file_list\n"
            "cache.path is required when cache.mode is disk\n"
            "optimizer.nesterov needs momentum > 0");
}

// Defaults outside a key's config range are sentinels ("0: the training batch size").
TEST(Validate, ADefaultOutsideTheConfigRangeIsValid) {
  PipelineOptions o;
  o.train.eval.enabled = true;
  o.train.eval.source.root = "eval";
  EXPECT_TRUE(Validate(o).ok());
  o.train.eval.batch_size = -1;
  EXPECT_EQ(Validate(o).message(), "eval.batch_size must be in [1, 65536]");
}

TEST(Validate, OptionsFromAConfigAreValid) {
  StageRegistry registry;
  RegisterBuiltinStages(&registry);
  Result<PipelineOptions> r = ParseConfig(
      "source: {type: idx, root: data}\n"
      "pipeline: [{type: normalize, mean: [0.5], std: [0.5]}]\n"
      "batch: {size: 1}\n"
      "optimizer: {momentum: 0}\n"
      "eval: {source: {type: idx, root: data}}\n",
      "a.yaml", {}, registry);
  ASSERT_OK(r);
  EXPECT_TRUE(Validate(r.value()).ok()) << Validate(r.value()).message();
}

}  // namespace
}  // namespace flowfeed
