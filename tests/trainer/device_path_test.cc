// The parts of the GPU training path that run on any device: bf16 autocast (amp), the foreach
// SGD update, channels_last, normalisation moved to the device with uint8 batches. On the CPU
// they are checked against the plain path; the CUDA-only parts (copy stream, events) run in the
// TrainerCuda tests where LibTorch sees a GPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "autocast.h"
#include "flowfeed/report.h"
#include "foreach_sgd.h"
#include "test_util.h"
#include "tiny_training.h"

namespace flowfeed {
namespace {

using test::TempDir;
using test::TinyOptions;
using test::Train;

// Five steps of ForeachSGD and of LibTorch's SGD from the same weights and gradients end with
// the same weights and momentum buffers, bit for bit, for each option the config can set.
TEST(ForeachSGD, StepsExactlyAsLibTorchsSGD) {
  struct Case {
    double momentum, dampening, weight_decay;
    bool nesterov;
  };
  for (const Case& k : {Case{0.9, 0, 0, false}, Case{0.9, 0, 5e-4, true}, Case{0.8, 0.1, 1e-3, false},
                        Case{0, 0, 1e-2, false}}) {
    torch::manual_seed(7);
    torch::nn::Sequential a(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3)),
                            torch::nn::Flatten(), torch::nn::Linear(4 * 6 * 6, 5));
    torch::nn::Sequential b = std::dynamic_pointer_cast<torch::nn::SequentialImpl>(a->clone());
    auto opts = torch::optim::SGDOptions(0.05)
                    .momentum(k.momentum)
                    .dampening(k.dampening)
                    .weight_decay(k.weight_decay)
                    .nesterov(k.nesterov);
    torch::optim::SGD plain(a->parameters(), opts);
    ForeachSGD fused(b->parameters(), opts);
    for (int step = 0; step < 5; ++step) {
      torch::Tensor x = torch::randn({6, 3, 8, 8});
      for (auto* pair : {&plain, static_cast<torch::optim::SGD*>(&fused)}) {
        pair->zero_grad();
        torch::nn::Sequential& m = pair == &plain ? a : b;
        m->forward(x).square().mean().backward();
        pair->step();
      }
    }
    auto pa = a->parameters(), pb = b->parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (size_t i = 0; i < pa.size(); ++i)
      EXPECT_TRUE(torch::equal(pa[i], pb[i])) << "parameter " << i << ", momentum " << k.momentum
                                              << ", nesterov " << k.nesterov;
    // The checkpointed state is SGD's: the momentum buffers are equal too.
    if (k.momentum != 0) {
      torch::serialize::OutputArchive sa, sb;
      plain.save(sa);
      fused.save(sb);
      std::ostringstream oa, ob;
      sa.save_to(oa);
      sb.save_to(ob);
      EXPECT_EQ(oa.str().size(), ob.str().size());
    }
  }
}

// Within the scope a linear layer computes in bf16 and the loss stays float32; the state before
// the scope comes back after it, nested scopes included.
TEST(Autocast, Bf16InsideTheScopeAndTheStateRestoredAfter) {
  torch::nn::Linear lin(8, 4);
  torch::Tensor x = torch::randn({2, 8});
  const torch::Device cpu(torch::kCPU);
  {
    AutocastScope outer(cpu, true);
    EXPECT_EQ(lin->forward(x).scalar_type(), torch::kBFloat16);
    {
      AutocastScope inner(cpu, true);
      EXPECT_EQ(lin->forward(x).scalar_type(), torch::kBFloat16);
    }
    EXPECT_EQ(lin->forward(x).scalar_type(), torch::kBFloat16) << "the inner scope ended autocast";
    torch::Tensor loss = torch::nn::functional::cross_entropy(lin->forward(x), torch::tensor({1, 2}));
    EXPECT_EQ(loss.scalar_type(), torch::kFloat32);
  }
  EXPECT_EQ(lin->forward(x).scalar_type(), torch::kFloat32);
  {
    AutocastScope off(cpu, false);
    EXPECT_EQ(lin->forward(x).scalar_type(), torch::kFloat32);
  }
}

// amp: true trains (on the CPU here, as on CUDA) and the report says so.
TEST(DevicePath, MixedPrecisionTrains) {
  TempDir dir;
  PipelineOptions o = TinyOptions(dir, 3);
  o.train.amp = true;
  auto r = Train(o);
  ASSERT_OK(r);
  EXPECT_EQ(r->precision, "bf16 autocast");
  EXPECT_LT(r->epochs[2].loss, r->epochs[0].loss * 0.8);
  EXPECT_GT(r->epochs[2].eval_accuracy, 0.8);
  // The report carries it, and reads it back.
  auto doc = ReadReportJson(TrainReportJson(r.value()), "amp report");
  ASSERT_OK(doc);
  ASSERT_TRUE(doc->trainer.has_value());
  EXPECT_EQ(doc->trainer->precision, "bf16 autocast");
  EXPECT_EQ(doc->trainer->timing, "host clock");
}

// normalize_on_device: the pipeline ships uint8 and the trainer normalises with the stage's own
// coefficients, in the same two roundings: every epoch's weights equal the normalising
// pipeline's, bit for bit (the model digest), for training and evaluation alike.
TEST(DevicePath, NormalizeOnTheDeviceTrainsTheSameModel) {
  TempDir dir;
  PipelineOptions o = TinyOptions(dir, 2);
  o.train.normalize_on_device = "false";
  auto host = Train(o);
  ASSERT_OK(host);
  EXPECT_FALSE(host->normalize_on_device);
  o.train.normalize_on_device = "true";
  auto device = Train(o);
  ASSERT_OK(device);
  EXPECT_TRUE(device->normalize_on_device);
  ASSERT_EQ(device->epochs.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(device->epochs[e].model_digest, host->epochs[e].model_digest) << "epoch " << e + 1;
    EXPECT_EQ(device->epochs[e].eval_accuracy, host->epochs[e].eval_accuracy);
  }
  // The batches did differ: uint8, a quarter of the bytes.
  EXPECT_NE(device->pipeline.epochs[0].batch_digest, host->pipeline.epochs[0].batch_digest);
  // auto on the CPU leaves the pipeline as it is.
  o.train.normalize_on_device = "auto";
  auto automatic = Train(o);
  ASSERT_OK(automatic);
  EXPECT_FALSE(automatic->normalize_on_device);
}

// Where moving normalize would change the numbers, `true` is refused with the reason and `auto`
// keeps it in the pipeline.
TEST(DevicePath, NormalizeOnTheDeviceRefusedWhereItWouldChangeResults) {
  TempDir dir;
  PipelineOptions base = TinyOptions(dir, 1);
  base.train.normalize_on_device = "true";
  {
    PipelineOptions o = base;
    o.pipeline.pop_back();  // no normalize
    auto r = Train(o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("does not end with normalize"), std::string::npos)
        << r.status().message();
  }
  {
    PipelineOptions o = base;
    o.train.eval.pipeline[0].params.Set("mean", std::vector<double>{0.5});
    auto r = Train(o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("eval pipeline"), std::string::npos)
        << r.status().message();
  }
  {
    PipelineOptions o = base;
    o.batch.dtype = DType::kUInt8;
    auto r = Train(o);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("uint8"), std::string::npos) << r.status().message();
  }
}

// channels_last: true puts a CNN's convolution weights in NHWC order; it trains like the
// contiguous model (the same math, other kernels: close, not bit-equal).
TEST(DevicePath, ChannelsLastTrainsAConvolutionalModel) {
  TempDir dir;
  PipelineOptions o = TinyOptions(dir, 2);
  o.train.model.type = "cnn";
  o.train.eval.enabled = false;
  o.train.channels_last = "false";
  auto plain = Train(o);
  ASSERT_OK(plain);
  EXPECT_EQ(plain->memory_format, "contiguous");
  o.train.channels_last = "true";
  auto nhwc = Train(o);
  ASSERT_OK(nhwc);
  EXPECT_EQ(nhwc->memory_format, "channels_last");
  for (size_t e = 0; e < 2; ++e)
    EXPECT_NEAR(nhwc->epochs[e].loss, plain->epochs[e].loss, 1e-3 * plain->epochs[0].loss);
  // An MLP has no convolution: nothing to convert, and the report says contiguous.
  o.train.model.type = "mlp";
  auto mlp = Train(o);
  ASSERT_OK(mlp);
  EXPECT_EQ(mlp->memory_format, "contiguous");
}

// On a GPU: the tiny run with its defaults there (normalize on the device, steps timed by CUDA
// events on the copy and compute streams, the warm-up as a set-up part) learns as on the CPU,
// each step's parts add up within its epoch, and the allocator's figures are reported. With
// amp and channels_last on a CNN it learns too. Skipped, and says so, without a GPU.
TEST(TrainerCuda, CopyAheadEventTimedStepsLearnAndAddUp) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible to LibTorch";
  TempDir dir;
  PipelineOptions o = TinyOptions(dir, 3);
  o.train.device = "cuda";
  auto r = Train(o);
  ASSERT_OK(r);
  EXPECT_EQ(r->timing, "cuda events");
  EXPECT_TRUE(r->normalize_on_device);
  EXPECT_GT(r->device_memory.at("peak_allocated_bytes"), 0);
  bool warmup = false;
  for (const auto& p : r->setup) warmup = warmup || p.name == "cuda_warmup";
  EXPECT_TRUE(warmup);
  EXPECT_LT(r->epochs[2].loss, r->epochs[0].loss * 0.8);
  EXPECT_GT(r->epochs[2].eval_accuracy, 0.8);
  for (const auto& e : r->epochs) {
    EXPECT_EQ(e.steps, 8);
    const double parts = e.data_wait_seconds + e.h2d_seconds + e.forward_seconds +
                         e.backward_seconds + e.optimizer_seconds + e.allreduce_seconds;
    EXPECT_GT(parts, 0);
    EXPECT_LE(parts, e.seconds * 1.05 + 1e-3) << "epoch " << e.epoch;
  }
  o.train.model.type = "cnn";
  o.train.amp = true;
  auto cnn = Train(o);
  ASSERT_OK(cnn);
  EXPECT_EQ(cnn->memory_format, "channels_last");
  EXPECT_EQ(cnn->precision, "bf16 autocast");
  EXPECT_LT(cnn->epochs[2].loss, cnn->epochs[0].loss);
}

}  // namespace
}  // namespace flowfeed
