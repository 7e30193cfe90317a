// The report module: what it writes reads back as the same document, what other tools write
// reads as far as it goes, and what is not a report is refused naming the file.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "flowfeed/report.h"
#include "flowfeed/stats.h"
#include "flowfeed/trace_file.h"
#include "flowfeed/util/strings.h"

namespace flowfeed {
namespace {

// A document with every section and a non-default value in each kind of field.
ReportDoc FullDoc() {
  RunStats run;
  run.source = "idx /data/fashion (2000 samples)";
  run.threads = 4;
  run.dataset_size = 2000;
  run.open_seconds = 0.125;
  run.peak_rss_bytes = int64_t(1) << 40;  // past 2^32: read back exactly
  run.prefetch = 8;
  run.tokens = 512;
  run.cache_mode = "memory";
  run.cache_placement = "decode";
  run.cache_store = "pixels";
  run.cache_decision = "after decode: deterministic";
  run.cache_fingerprint = "abc123";
  run.cache_flush_seconds = 0.5;
  run.cache.budget_bytes = 1 << 30;
  run.cache.memory_entries = 2000;
  run.cache.overhead_bytes = 64000;
  run.cache.disk_disabled = true;
  run.cache.messages = {"reusing 12 samples"};
  run.warnings = {"frozen augmentation"};
  EpochStats e;
  e.epoch = 1;
  e.seconds = 1.75;
  e.samples = 2000;
  e.batches = 32;
  e.samples_per_second = 1142.857;
  e.cpu_seconds = 3.25;
  e.consumer_wait_seconds = 0.4;
  e.consumer_wait_p95_ms = 12.5;
  e.consumer_wait_max_ms = 40;
  e.bytes_read = 1568000;
  e.cache = {"memory", 10, 1990, 7840, 120};
  e.queue_occupancy = {{0.0, 0}, {0.5, 3}};
  e.queue_mean = 1.5;
  e.stages = {{"read", "read", 2000, 0, 0.2, 0.1, 0.2, 0.3, 0.4, 1568000, 0, ""},
              {"decode", "decode", 2000, 1, 1.1, 0.5, 0.9, 1.2, 3.0, 1568000, 2000, ""},
              {"normalize", "normalize", 2000, 0, 0.3, 0.1, 0.1, 0.1, 0.2, 0, 2000, "collate"}};
  e.skipped = {{17, "img17.png", "decode", "truncated"}};
  e.skipped_count = 1;
  e.batch_digest = "0123456789abcdef";
  run.epochs = {e};
  e.epoch = 2;
  e.seconds = 0.75;
  run.epochs.push_back(e);
  ReportDoc doc = PipelineReportDoc(run);
  doc.setup = ReportSetup{{{"config", 0.01}, {"model", 0.2}}, 0.21};
  doc.first_epoch_gap = ReportGap{1.0, {{"data wait: decode", 0.75}, {"unexplained", 0.25}}};
  doc.ledger = ReportLedger{4.0, 0.21, 3.5, 0.29};
  ReportTrainer trainer;
  trainer.device = "cpu";
  trainer.torch_threads = 2;
  trainer.model = "cnn (421,642 parameters)";
  trainer.wall_seconds = 4.0;
  doc.trainer = trainer;
  doc.distributed = ReportDistributed{0, 2, "gloo", "interleaved", "pad"};
  ReportTrainerEpoch t;
  t.steps = 32;
  t.loss = 0.5;
  t.model_digest = "feedbeef";
  t.indices = {3, 1, 2};
  doc.epochs[0].trainer = t;
  doc.epochs[0].eval = ReportEval{0.6, 0.8, 1000, 0.3};
  doc.epochs[0].cache_hit_rate_per_rank = {0.25, 0.5};
  return doc;
}

TEST(ReportJson, RoundTripGivesTheSameText) {
  const std::string text = WriteReportJson(FullDoc());
  auto doc = ReadReportJson(text, "full.json");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(doc->schema_version, kReportSchemaVersion);
  EXPECT_EQ(WriteReportJson(*doc), text);
  EXPECT_EQ(doc->run.peak_rss_bytes, int64_t(1) << 40);
  ASSERT_EQ(doc->epochs.size(), 2u);
  EXPECT_EQ(doc->epochs[0].pipeline.stages[2].fused_into, "collate");
  EXPECT_EQ(doc->epochs[0].trainer->indices, (std::vector<int64_t>{3, 1, 2}));
  EXPECT_FALSE(doc->epochs[1].trainer.has_value());
  EXPECT_EQ(doc->distributed->backend, "gloo");
}

// File names are bytes: one in Latin-1 (or cut mid-character) must not lose the report, which
// nlohmann's dump() would by throwing type_error.316 at the end of the run.
TEST(ReportJson, AFileNameThatIsNotUtf8IsWrittenWithItsBytesEscaped) {
  ReportDoc full = FullDoc();
  RunStats run = full.run;
  for (const ReportEpoch& e : full.epochs) run.epochs.push_back(e.pipeline);
  run.source = "image_folder /data/caf\xe9";
  run.epochs[0].skipped = {{3, "/data/caf\xe9/\xff\xfe.jpg", "read", "truncated \xc3"}};
  run.warnings = {"odd name \xe9t\xe9"};
  std::string text;
  ASSERT_NO_THROW(text = ReportJson(run));
  auto doc = ReadReportJson(text, "bench.json");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(doc->run.source, "image_folder /data/caf\\xe9");
  ASSERT_EQ(doc->epochs[0].pipeline.skipped.size(), 1u);
  EXPECT_EQ(doc->epochs[0].pipeline.skipped[0].source, "/data/caf\\xe9/\\xff\\xfe.jpg");
  EXPECT_EQ(doc->epochs[0].pipeline.skipped[0].reason, "truncated \\xc3");
  EXPECT_EQ(doc->run.warnings, (std::vector<std::string>{"odd name \\xe9t\\xe9"}));
  // Valid UTF-8 is left as it is.
  run.epochs[0].skipped[0].source = "/data/caf\xc3\xa9.jpg";
  auto valid = ReadReportJson(ReportJson(run), "bench.json");
  ASSERT_TRUE(valid.ok());
  EXPECT_EQ(valid->epochs[0].pipeline.skipped[0].source, "/data/caf\xc3\xa9.jpg");

  // The trace too.
  std::string trace;
  ASSERT_NO_THROW(trace = ChromeTraceJson({{"read \xff", "worker \xfe", 0, 10, 1, 3}}));
  EXPECT_NE(trace.find("read \\\\xff"), std::string::npos) << trace;
}

// The escaping behind the report's names and the CLI's output: what is not UTF-8 by the
// standard's rules (overlong forms, surrogates, past U+10FFFF, cut short) is escaped byte by
// byte; for the terminal, controls too, newline and tab aside.
TEST(TextEscaping, InvalidUtf8AndControlBytesBecomeHex) {
  EXPECT_EQ(EscapeInvalidUtf8("caf\xc3\xa9 \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xf0\x9f\x98\x80");
  EXPECT_EQ(EscapeInvalidUtf8("\xc0\xaf"), "\\xc0\\xaf");                  // overlong '/'
  EXPECT_EQ(EscapeInvalidUtf8("\xed\xa0\x80"), "\\xed\\xa0\\x80");         // a surrogate
  EXPECT_EQ(EscapeInvalidUtf8("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  EXPECT_EQ(EscapeInvalidUtf8("a\xe2\x82"), "a\\xe2\\x82");                // cut short
  EXPECT_EQ(EscapeInvalidUtf8("\x1b[31m"), "\x1b[31m");  // JSON escapes controls itself
  EXPECT_EQ(EscapeForTerminal("a\tb\nc\rd\x1b[31m\x7f\xc2\x9b\xc2\xa0"),
            "a\tb\nc\\x0dd\\x1b[31m\\x7f\\xc2\\x9b\xc2\xa0");
}

TEST(ReportJson, PipelineReportHasTheSchemaVersionAndNoTrainerSections) {
  ReportDoc full = FullDoc();
  RunStats run = full.run;
  for (const ReportEpoch& e : full.epochs) run.epochs.push_back(e.pipeline);
  const std::string text = ReportJson(run);
  EXPECT_NE(text.find("\"schema_version\": 1"), std::string::npos);
  auto doc = ReadReportJson(text, "bench.json");
  ASSERT_TRUE(doc.ok());
  EXPECT_FALSE(doc->trainer || doc->setup || doc->ledger || doc->first_epoch_gap ||
               doc->distributed);
  EXPECT_FALSE(doc->epochs[0].trainer || doc->epochs[0].eval);
  EXPECT_EQ(doc->epochs[1].pipeline.batch_digest, "0123456789abcdef");
  EXPECT_EQ(WriteReportJson(*doc), text);
}

// The shape tools/bench/peers/harness.py writes: no stage times, no cache figures, no
// schema_version, keys of its own.
TEST(ReportJson, ReadsAPeerReportTolerantly) {
  const std::string peer = R"({
    "run": {"source": "folder /data", "tool": "dali-cpu", "threads": 2, "dataset_size": 2000,
            "batch": 64, "versions": {"dali": "1.2"}, "warnings": ["a note", 3]},
    "cache": {"mode": "off"},
    "epochs": [{"epoch": 1, "seconds": 2.5, "samples": 2000, "batches": 32.0,
                "consumer_wait_seconds": 1.2, "iterator_start_seconds": 0.3,
                "cache": {"mode": "off"}, "stages": {}, "stage_order": []},
               {"seconds": 2, "samples": 2000, "stages": {"decode": {"busy_seconds": 1.5}},
                "stage_order": ["missing", "decode"]}]})";
  auto doc = ReadReportJson(peer, "dali.json");
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(doc->schema_version, 0);
  EXPECT_EQ(doc->tool, "dali-cpu");
  EXPECT_EQ(doc->run.threads, 2);
  EXPECT_EQ(doc->run.cache_mode, "off");
  EXPECT_EQ(doc->run.warnings, std::vector<std::string>{"a note"});
  ASSERT_EQ(doc->epochs.size(), 2u);
  const ReportEpoch& e1 = doc->epochs[0];
  EXPECT_EQ(e1.pipeline.batches, 32);
  EXPECT_TRUE(e1.has_consumer_wait);
  EXPECT_FALSE(e1.has_cpu_seconds);
  EXPECT_DOUBLE_EQ(e1.pipeline.samples_per_second, 800);  // samples / seconds when absent
  const ReportEpoch& e2 = doc->epochs[1];
  EXPECT_EQ(e2.pipeline.epoch, 2);  // its place in the list
  EXPECT_FALSE(e2.has_consumer_wait);
  ASSERT_EQ(e2.pipeline.stages.size(), 1u);
  EXPECT_EQ(e2.pipeline.stages[0].name, "decode");
  EXPECT_DOUBLE_EQ(e2.pipeline.stages[0].busy_seconds, 1.5);
  EXPECT_FALSE(doc->trainer || doc->ledger || doc->first_epoch_gap);
  // What it lacks is not invented on the way out: the tool stays, the rest is defaults.
  auto again = ReadReportJson(WriteReportJson(*doc), "dali.json");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->tool, "dali-cpu");
  EXPECT_EQ(again->schema_version, kReportSchemaVersion);
}

TEST(ReportJson, RefusesWhatIsNotAReportNamingTheFile) {
  auto not_json = ReadReportJson("{\"epochs\": [", "/tmp/broken.json");
  ASSERT_FALSE(not_json.ok());
  EXPECT_EQ(not_json.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(not_json.status().message().rfind("/tmp/broken.json: not JSON", 0), 0u)
      << not_json.status().message();
  auto no_epochs = ReadReportJson(R"({"traceEvents": []})", "trace.json");
  ASSERT_FALSE(no_epochs.ok());
  EXPECT_NE(no_epochs.status().message().find("trace.json: not a flowfeed report"),
            std::string::npos);
  auto no_seconds = ReadReportJson(R"({"epochs": [{"seconds": 1}, {"samples": 3}]})", "run 2");
  ASSERT_FALSE(no_seconds.ok());
  EXPECT_EQ(no_seconds.status().message(), "run 2: epochs[1] has no \"seconds\"");
}

}  // namespace
}  // namespace flowfeed
