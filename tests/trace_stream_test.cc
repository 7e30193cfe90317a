// `--trace FILE` streams the spans to FILE.partial while the run goes (they do not pile up in
// memory, and a crash leaves what was recorded), and a run stopped by a signal still completes
// FILE: valid JSON holding the spans up to the stop.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "flowfeed/trace_file.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

TEST(TraceStream, ASignalledRunStreamsWhileRunningAndCompletesTheTrace) {
  TempDir dir;
  test::WriteIdx(dir / "i.idx", dir / "l.idx", 64, 8, 8);
  test::WriteText(dir / "c.yaml", "source: {type: idx, root: " + dir.path() +
                                      ", images: i.idx, labels: l.idx}\n"
                                      "pipeline: [{type: random_horizontal_flip}]\n"
                                      "batch: {size: 8}\ncache: {mode: off}\n");
  const std::string trace = dir / "t.json";
  // Far more epochs than the test waits for; SIGTERM once the partial file has spans in it.
  const std::string script =
      std::string(FLOWFEED_BINARY) + " bench " + (dir / "c.yaml") + " --epochs 10000 --trace " +
      trace + " > " + (dir / "log") + " 2>&1 & pid=$!; "
      "for i in $(seq 300); do "
      "  s=$(stat -c %s " + trace + ".partial 2>/dev/null || echo 0); "
      "  [ \"$s\" -gt 2000 ] && break; sleep 0.1; done; "
      "echo \"$s\" > " + (dir / "partial_size") + "; "
      "kill -TERM $pid; wait $pid; echo $? > " + (dir / "rc");
  test::Shell("bash -c '" + script + "'");
  const std::string log = test::ReadText(dir / "log");
  EXPECT_EQ(std::stoi(test::ReadText(dir / "rc")), 128 + 15) << log;
  EXPECT_GT(std::stoll(test::ReadText(dir / "partial_size")), 2000) << "nothing streamed\n" << log;
  ASSERT_TRUE(std::filesystem::exists(trace)) << log;
  EXPECT_FALSE(std::filesystem::exists(trace + ".partial"));
  std::ifstream in(trace);
  const nlohmann::json j = nlohmann::json::parse(in);  // whole
  int spans = 0, flips = 0;
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] != "X") continue;
    ++spans;
    flips += e["name"] == "random_horizontal_flip";
  }
  EXPECT_GT(spans, 0);
  EXPECT_GT(flips, 0);
  EXPECT_NE(log.find("trace: " + trace), std::string::npos) << log;
}

// The in-memory form and the streamed file hold the same events.
TEST(TraceStream, TheFileHoldsTheEventsAppendedInAnyNumberOfPieces) {
  TempDir dir;
  std::vector<TraceEvent> events;
  for (int i = 0; i < 50; ++i)
    events.push_back(TraceEvent{i % 2 ? "decode" : "read \"x\"\n", "worker " + std::to_string(i % 3),
                                uint64_t(1000000 + 1000 * i), uint64_t(500 + i), 1 + i / 25, i});
  TraceFile file(dir / "t.json", 1000000);
  ASSERT_OK(file.Open());
  for (size_t at = 0; at < events.size(); at += 7)
    ASSERT_OK(file.Append(std::vector<TraceEvent>(
        events.begin() + long(at), events.begin() + long(std::min(events.size(), at + 7)))));
  EXPECT_TRUE(std::filesystem::exists(dir / "t.json.partial"));
  EXPECT_FALSE(std::filesystem::exists(dir / "t.json"));
  ASSERT_OK(file.Finish());
  EXPECT_EQ(file.spans(), 50);
  const nlohmann::json streamed = nlohmann::json::parse(test::ReadText(dir / "t.json"));
  const nlohmann::json whole = nlohmann::json::parse(ChromeTraceJson(events));
  EXPECT_EQ(streamed, whole);
  int threads = 0;
  for (const auto& e : streamed["traceEvents"]) threads += e["ph"] == "M";
  EXPECT_EQ(threads, 3);
  EXPECT_EQ(streamed["traceEvents"][1]["name"], "read \"x\"\n");
  EXPECT_DOUBLE_EQ(streamed["traceEvents"][1]["dur"].get<double>(), 0.5);
}

}  // namespace
}  // namespace flowfeed
