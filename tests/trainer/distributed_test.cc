// Data-parallel training over c10d Gloo with real processes on 127.0.0.1 (through `flowfeed
// launch`), and exact mid-epoch resume.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "flowfeed/config.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/trainer.h"
#include "test_util.h"
#include "distributed.h"

namespace flowfeed {
namespace {

using test::TempDir;

// A config file for `flowfeed train`: an MLP (no dropout, no batch norm, so one process with
// the global batch computes the same thing as the ranks together) on 240 samples.
std::string WriteConfig(const TempDir& dir, int epochs, int batch, const std::string& extra = "") {
  test::WriteBandIdx(dir / "train-images", dir / "train-labels", 240, 1);
  const std::string yaml =
      "seed: 5\n"
      "threads: 1\n"
      "epochs: " + std::to_string(epochs) + "\n"
      "source: {type: idx, root: " + dir.path() + ", images: train-images, labels: train-labels}\n"
      "pipeline:\n"
      "  - {type: random_horizontal_flip}\n"
      "  - {type: normalize, mean: [0.4], std: [0.3]}\n"
      "batch: {size: " + std::to_string(batch) + "}\n"
      "model: {type: mlp, hidden: [32]}\n"
      "optimizer: {type: sgd, lr: 0.05, momentum: 0.9}\n"
      "schedule: {type: constant}\n"
      "record_indices: true\n"
      "distributed: {rank_reports: true, timeout_seconds: 60}\n" + extra;
  std::ofstream(dir / "c.yaml") << yaml;
  return dir / "c.yaml";
}

// A TCP port nobody listens on right now (the kernel's pick for port 0).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

using Ran = test::ShellRun;
using test::Shell;

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::string Launch(int nproc, int port) {
  return std::string(FLOWFEED_BINARY) + " launch --grace 5 --nproc " + std::to_string(nproc) +
         " --master-port " + std::to_string(port) + " -- ";
}

TEST(Distributed, TwoRanksShareTheEpochAndAgreeOnTheWeights) {
  if (!HaveGloo()) GTEST_SKIP() << "this build has no c10d Gloo";
  TempDir dir;
  const std::string cfg = WriteConfig(dir, 2, 16);
  Ran two = Shell(Launch(2, FreePort()) + "train " + cfg + " --report " + dir / "r.json");
  ASSERT_EQ(two.code, 0) << two.output;
  nlohmann::json r0 = ReadJson(dir / "r.json"), r1 = ReadJson(dir / "r.rank1.json");
  EXPECT_EQ(r0["distributed"]["world_size"], 2);
  EXPECT_EQ(r1["distributed"]["rank"], 1);
  EXPECT_EQ(r0["distributed"]["backend"], "gloo");
  ASSERT_EQ(r0["epochs"].size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    // Disjoint shards that together are the epoch.
    std::vector<int64_t> a = r0["epochs"][e]["trainer"]["indices"], b = r1["epochs"][e]["trainer"]["indices"];
    EXPECT_EQ(a.size(), 120u);
    EXPECT_EQ(b.size(), 120u);
    std::set<int64_t> sa(a.begin(), a.end()), sb(b.begin(), b.end()), all;
    EXPECT_EQ(sa.size(), 120u);
    for (int64_t i : sa) EXPECT_EQ(sb.count(i), 0u) << "sample " << i << " on both ranks";
    all.insert(sa.begin(), sa.end());
    all.insert(sb.begin(), sb.end());
    EXPECT_EQ(all.size(), 240u);
    // The same weights on both ranks after every epoch.
    EXPECT_EQ(r0["epochs"][e]["trainer"]["model_digest"], r1["epochs"][e]["trainer"]["model_digest"]);
    EXPECT_EQ(r0["epochs"][e]["trainer"]["global_samples"], 240);
    EXPECT_EQ(r0["epochs"][e]["trainer"]["steps"], 8);
  }
  // Every rank's cache hit rate is reported (an IDX source has nothing to cache: zeros).
  EXPECT_EQ(r0["epochs"][1]["distributed"]["cache_hit_rate_per_rank"].size(), 2u);

  // One process with the same global batch (2 x 16) trains on the same batches: the loss
  // agrees up to floating-point summation order.
  Ran one = Shell(std::string(FLOWFEED_BINARY) + " train " + cfg + " --set batch.size=32 --report " +
                  dir / "single.json");
  ASSERT_EQ(one.code, 0) << one.output;
  nlohmann::json s = ReadJson(dir / "single.json");
  for (size_t e = 0; e < 2; ++e) {
    const double l2 = r0["epochs"][e]["trainer"]["loss"], l1 = s["epochs"][e]["trainer"]["loss"];
    EXPECT_NEAR(l2, l1, 1e-4 * std::max(1.0, std::fabs(l1))) << "epoch " << e + 1;
  }
}

TEST(Distributed, ADeadRankMakesTheOthersFailWithAClearError) {
  if (!HaveGloo()) GTEST_SKIP() << "this build has no c10d Gloo";
  TempDir dir;
  // Long enough that rank 1 is killed mid-training. The wait is long enough for both ranks to
  // have met and started (under ASan, on a busy 2-core machine, that took over 3 s).
  const std::string cfg = WriteConfig(dir, kMaxEpochs, 16);
  const std::string wait = test::kAddressSanitizer ? "10" : "3";
  const std::string script =
      "if [ \"$RANK\" = 1 ]; then \"$0\" train \"$1\" & child=$!; sleep " + wait +
      "; kill -9 $child; wait $child; exit 1; else exec \"$0\" train \"$1\"; fi";
  Ran r = Shell(Launch(2, FreePort()) + "sh -c '" + script + "' " + FLOWFEED_BINARY + " " + cfg);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("flowfeed [rank 0]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("failed on rank 0 of 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 0 exited with status 1"), std::string::npos) << r.output;
  // Rank 0 stopped by itself: the launcher did not have to terminate it.
  EXPECT_EQ(r.output.find("sending SIGTERM"), std::string::npos) << r.output;
}

TEST(Distributed, AMissingRankIsATimeoutNotAHang) {
  if (!HaveGloo()) GTEST_SKIP() << "this build has no c10d Gloo";
  TempDir dir;
  const std::string cfg = WriteConfig(dir, 1, 16, "");
  Ran r = Shell("RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(FreePort()) +
                " " + FLOWFEED_BINARY + " train " + cfg + " --set distributed.timeout_seconds=2");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("could not meet the other 1 ranks"), std::string::npos) << r.output;
}

TEST(Distributed, BadEnvironmentIsNamed) {
  TempDir dir;
  const std::string cfg = WriteConfig(dir, 1, 16);
  Ran r = Shell("RANK=2 WORLD_SIZE=2 " + std::string(FLOWFEED_BINARY) + " train " + cfg);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("RANK=2 is not below WORLD_SIZE=2"), std::string::npos) << r.output;
  r = Shell("WORLD_SIZE=two " + std::string(FLOWFEED_BINARY) + " train " + cfg);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("WORLD_SIZE=\"two\""), std::string::npos) << r.output;
}

// ---------------------------------------------------------------------- backends

TEST(Backend, NcclForGpuRanksWhereBuiltGlooOtherwise) {
  const torch::Device cpu(torch::kCPU), gpu(torch::kCUDA, 0);
  EXPECT_EQ(ChooseBackend("auto", cpu), "gloo");
  EXPECT_EQ(ChooseBackend("auto", gpu), HaveNccl() ? "nccl" : "gloo");
  EXPECT_EQ(ChooseBackend("gloo", gpu), "gloo");
  EXPECT_EQ(ChooseBackend("nccl", cpu), "nccl");
}

// NCCL asked for where it cannot run is refused before any rendezvous, saying why.
TEST(Backend, NcclWithoutAGpuOrWithoutTheBuildIsNamed) {
  DistributedOptions o;
  o.world_size = 2;
  o.master_port = FreePort();
  o.timeout_seconds = 2;
  o.backend = "nccl";
  auto c = Communicator::Create(o, torch::Device(torch::kCPU));
  ASSERT_FALSE(c.ok());
  if (HaveNccl()) {
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find("nccl carries CUDA tensors"), std::string::npos)
        << c.status().ToString();
  } else {
    EXPECT_EQ(c.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(c.status().message().find("nccl is not built into this flowfeed"),
              std::string::npos)
        << c.status().ToString();
  }
}

// One rank of NCCL on the GPU: the collectives give back what they were given (a sum over one
// rank), in place, for tensors on the CPU and on the GPU, and for the doubles of the metrics.
TEST(TrainerCuda, NcclCollectivesOfOneRank) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible to LibTorch";
  if (!HaveNccl()) GTEST_SKIP() << "this build has no c10d NCCL";
  DistributedOptions o;
  o.world_size = 1;
  o.master_port = FreePort();
  o.timeout_seconds = 30;
  o.backend = "nccl";
  auto c = Communicator::Create(o, torch::Device(torch::kCUDA, 0));
  ASSERT_OK(c);
  Communicator& comm = *c.value();
  EXPECT_EQ(comm.backend(), "nccl");
  torch::Tensor on_cpu = torch::arange(10, torch::kFloat32);
  torch::Tensor on_gpu = torch::arange(6, torch::kFloat32).view({2, 3}).cuda();
  std::vector<torch::Tensor> t{on_cpu, on_gpu};
  ASSERT_OK(comm.AllReduceSum(t, "test all-reduce", /*bucket_bytes=*/16));
  EXPECT_TRUE(t[0].device().is_cpu());
  EXPECT_TRUE(torch::equal(t[0], torch::arange(10, torch::kFloat32)));
  EXPECT_TRUE(t[1].device().is_cuda());
  EXPECT_TRUE(torch::equal(t[1].cpu(), torch::arange(6, torch::kFloat32).view({2, 3})));
  std::vector<double> v{1.5, -2};
  ASSERT_OK(comm.AllReduceSum(&v, "test metrics"));
  EXPECT_EQ(v, (std::vector<double>{1.5, -2}));
  ASSERT_OK(comm.Broadcast(t, "test broadcast"));
  EXPECT_TRUE(torch::equal(t[0], torch::arange(10, torch::kFloat32)));
}

// ---------------------------------------------------------------------- mid-epoch resume

PipelineOptions Options(const TempDir& dir, int epochs, const std::string& extra = "") {
  test::WriteBandIdx(dir / "train-images", dir / "train-labels", 240, 1);
  const std::string yaml =
      "seed: 9\nthreads: 2\nepochs: " + std::to_string(epochs) + "\n"
      "source: {type: idx, root: " + dir.path() + ", images: train-images, labels: train-labels}\n"
      "pipeline: [{type: random_horizontal_flip}, {type: normalize, mean: [0.4], std: [0.3]}]\n"
      "batch: {size: 16}\n"
      "model: {type: mlp, hidden: [32]}\n"
      "optimizer: {type: sgd, lr: 0.05, momentum: 0.9}\n"
      "record_indices: true\n"
      "checkpoint: " + dir / "ck.pt" + "\n" + extra;
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  auto r = ParseConfig(yaml, "t.yaml", {}, reg);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : PipelineOptions{};
}

TEST(Resume, AStopMidEpochResumesWithTheSameBatchesAndWeights) {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  TempDir a, b;
  // Uninterrupted, 2 epochs of 15 steps.
  auto ta = Trainer::Create(Options(a, 2), reg);
  ASSERT_OK(ta);
  ASSERT_OK(ta.value()->Run());
  TrainReport ra = ta.value()->report();

  // Stopped after step 6 of epoch 2 (as Ctrl-C does), then resumed with other thread counts.
  auto tb = Trainer::Create(Options(b, 2), reg);
  ASSERT_OK(tb);
  Trainer* t = tb.value().get();
  Status st = t->Run(nullptr, [&](const StepRecord& s) {
    if (s.epoch == 2 && s.step == 6) t->RequestStop();
  });
  EXPECT_EQ(st.code(), StatusCode::kCancelled) << st.ToString();
  EXPECT_NE(st.message().find("--resume"), std::string::npos) << st.message();
  TrainReport rb = t->report();
  PipelineOptions more = Options(b, 2);
  more.threads = 1;
  auto tc = Trainer::Create(more, reg, b / "ck.pt");
  ASSERT_OK(tc);
  ASSERT_OK(tc.value()->Run());
  TrainReport rc = tc.value()->report();
  EXPECT_EQ(rc.start_epoch, 1);
  EXPECT_EQ(rc.start_position, 6 * 16);
  ASSERT_EQ(rc.epochs.size(), 1u);
  EXPECT_EQ(rc.epochs[0].resumed_at, 96);

  // The interrupted epoch's batches, then the resumed ones, are the uninterrupted epoch's.
  std::vector<int64_t> joined = rb.epochs.back().indices;
  joined.insert(joined.end(), rc.epochs[0].indices.begin(), rc.epochs[0].indices.end());
  EXPECT_EQ(joined, ra.epochs[1].indices);
  // And the model ends bit-identical.
  EXPECT_EQ(rc.epochs[0].model_digest, ra.epochs[1].model_digest);
}

TEST(Resume, PeriodicCheckpointsLetACrashResumeMidEpoch) {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  TempDir a, b;
  auto ta = Trainer::Create(Options(a, 1), reg);
  ASSERT_OK(ta);
  ASSERT_OK(ta.value()->Run());
  const std::string want = ta.value()->report().epochs[0].model_digest;

  // checkpoint_every: 4 -> the last one written before "the crash" (a stop at step 10 with
  // the checkpoint taken away) is at step 8.
  auto tb = Trainer::Create(Options(b, 1, "checkpoint_every: 4\n"), reg);
  ASSERT_OK(tb);
  Trainer* t = tb.value().get();
  std::string saved;
  Status st = t->Run(nullptr, [&](const StepRecord& s) {
    // on_step comes before that step's checkpoint: at step 9 the file holds step 8's.
    const int64_t step = s.step;
    if (step == 9) saved = b / "ck8.pt", std::filesystem::copy_file(b / "ck.pt", saved);
    if (step == 10) t->RequestStop();
  });
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
  ASSERT_FALSE(saved.empty());
  auto tc = Trainer::Create(Options(b, 1), reg, saved);
  ASSERT_OK(tc);
  ASSERT_OK(tc.value()->Run());
  TrainReport rc = tc.value()->report();
  EXPECT_EQ(rc.start_position, 8 * 16);
  EXPECT_EQ(rc.epochs[0].steps, 7);
  EXPECT_EQ(rc.epochs[0].model_digest, want);
}

TEST(Resume, AnotherWorldSizeIsRefused) {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  TempDir a;
  auto ta = Trainer::Create(Options(a, 1), reg);
  ASSERT_OK(ta);
  ASSERT_OK(ta.value()->Run());
  PipelineOptions o = Options(a, 2);
  o.distributed.world_size = 2;
  auto tb = Trainer::Create(o, reg, a / "ck.pt");
  ASSERT_FALSE(tb.ok());
  EXPECT_NE(tb.status().message().find("same world size"), std::string::npos) << tb.status().message();
}

}  // namespace
}  // namespace flowfeed
