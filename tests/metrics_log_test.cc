// The metrics logs: TFRecord framing and CRC-32C against published values, the event file read
// back field by field, JSON Lines and CSV read back, appending on resume, refusals and a full
// disk. (python/tests/test_metrics.py reads a real run's files with TensorBoard's own reader.)
#include "flowfeed/metrics_log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"
#include "tfrecord.h"

namespace flowfeed {
namespace {

using test::TempDir;

// ---- A minimal reader of what tfrecord.cc writes, written from the format's description. ----

struct Frame {
  std::string payload;
  bool length_crc_ok = false, payload_crc_ok = false;
};

std::vector<Frame> ReadFrames(const std::string& bytes) {
  std::vector<Frame> out;
  size_t at = 0;
  auto u32 = [&](size_t p) {
    uint32_t v;
    std::memcpy(&v, bytes.data() + p, 4);
    return v;
  };
  while (at + 12 <= bytes.size()) {
    uint64_t n;
    std::memcpy(&n, bytes.data() + at, 8);
    Frame f;
    f.length_crc_ok = u32(at + 8) == tfrecord::MaskedCrc32c(bytes.substr(at, 8));
    if (at + 12 + n + 4 > bytes.size()) break;
    f.payload = bytes.substr(at + 12, n);
    f.payload_crc_ok = u32(at + 12 + n) == tfrecord::MaskedCrc32c(f.payload);
    out.push_back(f);
    at += 12 + n + 4;
  }
  EXPECT_EQ(at, bytes.size()) << "bytes left after the last whole record";
  return out;
}

// A protobuf message as (field, wire type) -> raw values (varint as number, others as bytes).
struct Field {
  int number;
  int wire;
  uint64_t varint = 0;
  std::string bytes;
};

std::vector<Field> Parse(const std::string& m) {
  std::vector<Field> out;
  size_t at = 0;
  auto varint = [&]() {
    uint64_t v = 0;
    for (int shift = 0; at < m.size(); shift += 7) {
      const uint8_t b = uint8_t(m[at++]);
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) break;
    }
    return v;
  };
  while (at < m.size()) {
    const uint64_t key = varint();
    Field f{int(key >> 3), int(key & 7), 0, {}};
    if (f.wire == 0) f.varint = varint();
    if (f.wire == 1) f.bytes = m.substr(at, 8), at += 8;
    if (f.wire == 5) f.bytes = m.substr(at, 4), at += 4;
    if (f.wire == 2) {
      const uint64_t n = varint();
      f.bytes = m.substr(at, n);
      at += n;
    }
    out.push_back(f);
  }
  return out;
}

template <typename T>
T As(const std::string& b) {
  T v;
  EXPECT_EQ(b.size(), sizeof(T));
  std::memcpy(&v, b.data(), sizeof(T));
  return v;
}

struct Scalars {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<std::pair<std::string, float>> values;
};

Scalars DecodeEvent(const std::string& payload) {
  Scalars s;
  for (const Field& f : Parse(payload)) {
    if (f.number == 1 && f.wire == 1) s.wall_time = As<double>(f.bytes);
    if (f.number == 2 && f.wire == 0) s.step = int64_t(f.varint);
    if (f.number == 3 && f.wire == 2) s.file_version = f.bytes;
    if (f.number == 5 && f.wire == 2)
      for (const Field& v : Parse(f.bytes)) {
        std::string tag;
        float value = 0;
        for (const Field& g : Parse(v.bytes)) {
          if (g.number == 1) tag = g.bytes;
          if (g.number == 2 && g.wire == 5) value = As<float>(g.bytes);
        }
        s.values.emplace_back(tag, value);
      }
  }
  return s;
}

Provenance RunBy(const std::string& command_line, const std::string& host) {
  Provenance p;
  p.started = "2026-12-05T00:00:00Z";
  p.command_line = command_line;
  p.config_path = "c.yaml";
  p.host = host;
  return p;
}

MetricsRecord StepRecordAt(int64_t global, double loss) {
  MetricsRecord r;
  r.kind = MetricsRecord::Kind::kStep;
  r.epoch = 1;
  r.step = global;
  r.global_step = global;
  r.wall_time = 1.7e9 + double(global);
  r.values = {{"loss", loss}, {"lr", 0.1}};
  return r;
}

MetricsRecord EpochRecordAt(int epoch, double accuracy) {
  MetricsRecord r;
  r.kind = MetricsRecord::Kind::kEpoch;
  r.epoch = epoch;
  r.global_step = 10 * epoch;
  r.wall_time = 1.7e9 + 100.0 * epoch;
  r.values = {{"eval_accuracy", accuracy}, {"stage_decode, fused_seconds", 1.5}};
  return r;
}

std::string OnlyFileIn(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path());
  EXPECT_EQ(files.size(), 1u);
  return files.empty() ? "" : files[0];
}

TEST(TfRecord, Crc32cMatchesThePublishedCheckValues) {
  EXPECT_EQ(tfrecord::Crc32c("123456789"), 0xE3069283u);  // the CRC catalogue's check value
  EXPECT_EQ(tfrecord::Crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4
  EXPECT_EQ(tfrecord::Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
}

TEST(TfRecord, AnEmptyRecordIsFramedAsTensorFlowFramesIt) {
  std::string out;
  tfrecord::AppendRecord("", &out);
  ASSERT_EQ(out.size(), 16u);
  EXPECT_EQ(out.substr(0, 8), std::string(8, '\0'));
  // Masking: rotate right 15, add 0xa282ead8 (tensorflow/core/lib/hash/crc32c.h).
  const uint32_t c = tfrecord::Crc32c(std::string(8, '\0'));
  EXPECT_EQ(As<uint32_t>(out.substr(8, 4)), ((c >> 15) | (c << 17)) + 0xA282EAD8u);
  EXPECT_EQ(As<uint32_t>(out.substr(12, 4)), tfrecord::MaskedCrc32c(""));
}

TEST(MetricsLog, TensorBoardFileHoldsTheVersionThenOneEventPerRecord) {
  TempDir dir;
  auto sink = OpenTensorBoardLog(dir / "tb/run1", RunBy("x", "host1"));
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  ASSERT_TRUE(sink.value()->Write(StepRecordAt(1, 2.5)).ok());
  ASSERT_TRUE(sink.value()->Write(StepRecordAt(2, std::nan(""))).ok());
  ASSERT_TRUE(sink.value()->Write(EpochRecordAt(1, 0.75)).ok());
  ASSERT_TRUE(sink.value()->Close().ok());
  ASSERT_TRUE(sink.value()->Close().ok());  // twice is harmless

  const std::string path = OnlyFileIn(dir / "tb/run1");
  EXPECT_NE(path.find("events.out.tfevents."), std::string::npos);
  EXPECT_NE(path.find(".host1."), std::string::npos);
  EXPECT_EQ(sink.value()->path(), path);
  std::vector<Frame> frames = ReadFrames(test::ReadText(path));
  ASSERT_EQ(frames.size(), 4u);
  for (const Frame& f : frames) EXPECT_TRUE(f.length_crc_ok && f.payload_crc_ok);
  EXPECT_EQ(DecodeEvent(frames[0].payload).file_version, "brain.Event:2");

  Scalars s1 = DecodeEvent(frames[1].payload);
  EXPECT_EQ(s1.step, 1);
  EXPECT_DOUBLE_EQ(s1.wall_time, 1.7e9 + 1);
  ASSERT_EQ(s1.values.size(), 2u);
  EXPECT_EQ(s1.values[0].first, "step/loss");
  EXPECT_FLOAT_EQ(s1.values[0].second, 2.5f);
  EXPECT_EQ(s1.values[1].first, "step/lr");
  EXPECT_FLOAT_EQ(s1.values[1].second, 0.1f);
  EXPECT_TRUE(std::isnan(DecodeEvent(frames[2].payload).values[0].second));
  Scalars e1 = DecodeEvent(frames[3].payload);
  EXPECT_EQ(e1.step, 1);  // an epoch record's x is its epoch
  EXPECT_EQ(e1.values[0].first, "epoch/eval_accuracy");
  EXPECT_FLOAT_EQ(e1.values[0].second, 0.75f);
}

TEST(MetricsLog, JsonLinesAppendsOneObjectPerRecordAfterARunLine) {
  TempDir dir;
  const std::string path = dir / "logs/metrics.jsonl";
  for (int run = 0; run < 2; ++run) {  // the second run (a resume) appends
    auto sink = OpenJsonLinesLog(path, RunBy("flowfeed train c.yaml", "h"));
    ASSERT_TRUE(sink.ok()) << sink.status().ToString();
    ASSERT_TRUE(sink.value()->Write(StepRecordAt(1 + run, run == 0 ? 2.5 : INFINITY)).ok());
    ASSERT_TRUE(sink.value()->Write(EpochRecordAt(1 + run, 0.5)).ok());
    ASSERT_TRUE(sink.value()->Close().ok());
  }
  std::istringstream lines(test::ReadText(path));
  std::vector<nlohmann::json> recs;
  for (std::string line; std::getline(lines, line);) recs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(recs.size(), 6u);
  EXPECT_EQ(recs[0]["kind"], "run");
  EXPECT_EQ(recs[0]["command_line"], "flowfeed train c.yaml");
  EXPECT_EQ(recs[1]["kind"], "step");
  EXPECT_EQ(recs[1]["global_step"], 1);
  EXPECT_EQ(recs[1]["loss"], 2.5);
  EXPECT_EQ(recs[2]["kind"], "epoch");
  EXPECT_EQ(recs[2]["epoch"], 1);
  EXPECT_FALSE(recs[2].contains("step"));
  EXPECT_EQ(recs[2]["stage_decode, fused_seconds"], 1.5);
  EXPECT_EQ(recs[3]["kind"], "run");
  EXPECT_TRUE(recs[4]["loss"].is_null());  // infinity has no JSON spelling
  EXPECT_EQ(recs[5]["epoch"], 2);
}

TEST(MetricsLog, CsvWritesAHeaderOnceAndAppendsWhenTheColumnsAgree) {
  TempDir dir;
  for (int run = 0; run < 2; ++run) {
    auto sink = OpenCsvLog(dir / "csv");
    ASSERT_TRUE(sink.ok()) << sink.status().ToString();
    ASSERT_TRUE(sink.value()->Write(StepRecordAt(1 + run, 2.5)).ok());
    ASSERT_TRUE(sink.value()->Write(EpochRecordAt(1 + run, 0.5)).ok());
    ASSERT_TRUE(sink.value()->Close().ok());
  }
  EXPECT_EQ(test::ReadText(dir / "csv/steps.csv"),
            "epoch,step,global_step,wall_time,loss,lr\n"
            "1,1,1,1700000001.000,2.5,0.1\n"
            "1,2,2,1700000002.000,2.5,0.1\n");
  EXPECT_EQ(test::ReadText(dir / "csv/epochs.csv"),
            "epoch,global_step,wall_time,eval_accuracy,\"stage_decode, fused_seconds\"\n"
            "1,10,1700000100.000,0.5,1.5\n"
            "2,20,1700000200.000,0.5,1.5\n");
}

TEST(MetricsLog, CsvRefusesAFileWithOtherColumnsAndARecordThatChangesThem) {
  TempDir dir;
  test::WriteText(dir / "csv/steps.csv", "epoch,step,global_step,wall_time,loss\n1,1,1,0,3\n");
  auto sink = OpenCsvLog(dir / "csv");
  ASSERT_TRUE(sink.ok());
  Status st = sink.value()->Write(StepRecordAt(1, 2.5));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find(dir / "csv/steps.csv"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("loss,lr"), std::string::npos) << st.message();
  EXPECT_EQ(test::ReadText(dir / "csv/steps.csv"),
            "epoch,step,global_step,wall_time,loss\n1,1,1,0,3\n");  // left as it was

  // Epochs have a file of their own; a record with other names than the first is refused.
  ASSERT_TRUE(sink.value()->Write(EpochRecordAt(1, 0.5)).ok());
  MetricsRecord other = EpochRecordAt(2, 0.5);
  other.values.pop_back();
  EXPECT_EQ(sink.value()->Write(other).code(), StatusCode::kInvalidArgument);
}

TEST(MetricsLog, AFolderThatCannotBeMadeIsNamed) {
  TempDir dir;
  test::WriteText(dir / "file", "x");
  auto tb = OpenTensorBoardLog(dir / "file/tb", {});
  ASSERT_FALSE(tb.ok());
  EXPECT_EQ(tb.status().code(), StatusCode::kIoError);
  EXPECT_NE(tb.status().message().find(dir / "file/tb"), std::string::npos);
  auto jsonl = OpenJsonLinesLog(dir / "file/m.jsonl", {});
  ASSERT_FALSE(jsonl.ok());
  EXPECT_NE(jsonl.status().message().find("file"), std::string::npos);
  EXPECT_FALSE(OpenCsvLog(dir / "file/csv").ok());
}

TEST(MetricsLog, AFullDiskIsAnErrorNamingTheFile) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  auto sink = OpenJsonLinesLog("/dev/full", {});
  // The run line is flushed at once, so /dev/full's ENOSPC shows at open.
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.status().code(), StatusCode::kIoError);
  EXPECT_NE(sink.status().message().find("/dev/full"), std::string::npos);
  EXPECT_NE(sink.status().message().find("No space"), std::string::npos) << sink.status().message();
}

}  // namespace
}  // namespace flowfeed
