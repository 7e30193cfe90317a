// The trainer's set-up (TorchTrainer::Init, called by Trainer::Create): the checkpoint to resume
// from, the other ranks, LibTorch's threads, the device, the pipelines, the model and the
// optimiser, each timed as a set-up part of the report.
//
// Threads: the thread that calls Trainer::Create, before any other thread can see the trainer.
// Init's order is the order of the report's set-up parts and of the errors a bad config meets.

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "autocast.h"
#include "flowfeed/util/clock.h"
#include "foreach_sgd.h"
#include "trainer_impl.h"

namespace flowfeed {

Status TorchTrainer::Init(const PipelineOptions& options_in, const StageRegistry& registry,
                          const std::string& resume, double config_seconds,
                          bool accept_changes) {
  created_ = Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(config_seconds));
  options_ = options_in;
  configured_ = options_in;
  accept_changes_ = accept_changes;
  report_.setup.push_back({"config", config_seconds});

  // A checkpoint to resume from: read first, it decides the first epoch.
  torch::serialize::InputArchive resumed;
  std::string resumed_signature;
  if (!resume.empty()) FLOWFEED_RETURN_IF_ERROR(ReadResume(resume, &resumed, &resumed_signature));
  report_.start_epoch = start_epoch_;
  report_.start_position = options_.start_position;
  ChooseThreads();
  // The device first: it decides the ranks' backend (NCCL on GPUs) and NCCL's GPU.
  FLOWFEED_RETURN_IF_ERROR(ChooseDevice());
  FLOWFEED_RETURN_IF_ERROR(JoinRanks());
  FLOWFEED_RETURN_IF_ERROR(PlanDeviceNormalize(registry));
  FLOWFEED_RETURN_IF_ERROR(OpenPipelines(registry));
  FLOWFEED_RETURN_IF_ERROR(BuildModelForFirstBatch());
  FLOWFEED_RETURN_IF_ERROR(BuildOptimizer());
  // What the run depends on, for the checkpoints it writes and the one it resumes.
  if (!resume.empty() || !options_.train.checkpoint.empty())
    fingerprint_ = MakeResumeFingerprint(configured_, pipeline_->source(), model_->signature());
  if (!resume.empty()) FLOWFEED_RETURN_IF_ERROR(RestoreState(resume, resumed, resumed_signature));
  if (comm_) FLOWFEED_RETURN_IF_ERROR(BroadcastParameters());
  WarmUpDevice();
  steps_per_epoch_ = pipeline_->batches_per_epoch();
  return Status::Ok();
}

// Reads the checkpoint and checks it against this run: the same world size, and epochs left.
// A mid-epoch checkpoint gives this rank's position in its epoch.
Status TorchTrainer::ReadResume(const std::string& resume, torch::serialize::InputArchive* resumed,
                                std::string* resumed_signature) {
  auto t0 = Clock::now();
  FLOWFEED_RETURN_IF_ERROR(ReadCheckpoint(resume, resumed, resumed_signature));
  const int world = options_.distributed.world_size;
  if (resumed_world_ != world)
    return Status::InvalidArgument(
        "checkpoint " + resume + " was written by a run of " + std::to_string(resumed_world_) +
        " rank(s), this run has " + std::to_string(world) +
        " (WORLD_SIZE); a resume needs the same world size");
  if (!resumed_positions_.empty()) {
    options_.start_position = resumed_positions_[size_t(options_.distributed.rank)];
    options_.start_batch = resumed_batches_[size_t(options_.distributed.rank)];
  }
  if (start_epoch_ >= options_.epochs)
    return Status::InvalidArgument("checkpoint " + resume + " finished epoch " +
                                   std::to_string(start_epoch_) + "; the config trains " +
                                   std::to_string(options_.epochs) +
                                   " epochs, so there is nothing left (raise epochs)");
  options_.start_epoch = start_epoch_;
  report_.setup.push_back({"read_checkpoint", SecondsSince(t0)});
  return Status::Ok();
}

// The rendezvous with the other ranks (world_size > 1); the report names them either way.
Status TorchTrainer::JoinRanks() {
  const DistributedOptions& dist = options_.distributed;
  report_.rank = dist.rank;
  report_.world_size = dist.world_size;
  if (dist.world_size > 1) {
    auto t0 = Clock::now();
    auto comm = Communicator::Create(dist, device_);
    if (!comm.ok()) return comm.status();
    comm_ = std::move(comm.value());
    report_.backend = comm_->backend();
    report_.shard_policy = ShardPolicyName(dist.policy);
    report_.uneven = UnevenPolicyName(dist.uneven);
    report_.setup.push_back({"rendezvous", SecondsSince(t0)});
  }
  return Status::Ok();
}

// LibTorch's own thread pool: Debian's build starts with one OpenMP thread here; use every
// core unless the user chose with OMP_NUM_THREADS.
void TorchTrainer::ChooseThreads() {
  auto tp = Clock::now();
  // Processes of one host share its cores (LOCAL_WORLD_SIZE, as torchrun sets it).
  if (!std::getenv("OMP_NUM_THREADS")) {
    int local = 1;
    if (const char* lw = std::getenv("LOCAL_WORLD_SIZE")) local = std::max(1, std::atoi(lw));
    torch::set_num_threads(std::max(1, int(std::thread::hardware_concurrency()) / local));
  }
  report_.torch_threads = torch::get_num_threads();
  report_.setup.push_back({"torch_threads", SecondsSince(tp)});
}

// Device and CUDA context.
Status TorchTrainer::ChooseDevice() {
  const TrainOptions& t = options_.train;
  auto tp = Clock::now();
  const bool have_cuda = torch::cuda::is_available();
  report_.setup.push_back({"device_probe", SecondsSince(tp)});
  if (t.device == "cuda" && !have_cuda)
    return Status::InvalidArgument("device: cuda was asked for, but LibTorch sees no GPU");
  const bool cuda = t.device == "cuda" || (t.device == "auto" && have_cuda);
  // One GPU per rank of a host: its LOCAL_RANK (0 for a single process).
  const int local_rank = options_.distributed.world_size > 1 ? options_.distributed.local_rank : 0;
  if (cuda && local_rank >= int(torch::cuda::device_count()))
    return Status::InvalidArgument(
        "distributed: LOCAL_RANK is " + std::to_string(local_rank) + " but this host has " +
        std::to_string(torch::cuda::device_count()) +
        " GPU(s); start at most one rank per GPU on a host (or use device: cpu)");
  device_ = cuda ? torch::Device(torch::kCUDA, c10::DeviceIndex(local_rank))
                 : torch::Device(torch::kCPU);
  report_.device = device_.str();
  report_.precision = t.amp ? "bf16 autocast" : "float32";
  channels_last_ = t.channels_last == "true" || (t.channels_last == "auto" && cuda);
  if (cuda) {
    auto t0 = Clock::now();
    torch::empty({1}, torch::TensorOptions().device(device_));  // creates the context
    Sync();
    report_.setup.push_back({"cuda_context", SecondsSince(t0)});
    at::globalContext().setBenchmarkCuDNN(t.cudnn_benchmark);
    cuda_ = CudaSteps::Create(device_);
    report_.synchronized_timing = !cuda_;
    report_.timing = cuda_ ? "cuda events" : "synchronized";
    for (int i = 0; i < CudaSteps::kSlots && cuda_; ++i) {
      auto pinned = torch::TensorOptions().pinned_memory(true);
      loss_host_.push_back(torch::zeros({}, pinned.dtype(torch::kFloat32)));
      correct_host_.push_back(torch::zeros({}, pinned.dtype(torch::kInt64)));
    }
  }
  return Status::Ok();
}

// normalize_on_device: the training pipeline's trailing `normalize` (followed at most by
// random_horizontal_flip, which commutes with it) leaves the pipeline and runs on the device
// after the copy, and batches travel as uint8. Only where that gives the same numbers: every
// stage before it is a built-in one (they keep uint8 pixels uint8; a plugin may not), the batch
// is float32, the cache does not keep its output, and an evaluation pipeline ends with the same
// normalize (which leaves it too). `auto` does it on CUDA where allowed; `true` fails naming
// what prevents it.
Status TorchTrainer::PlanDeviceNormalize(const StageRegistry& registry) {
  const std::string& want = options_.train.normalize_on_device;
  if (want == "false" || (want == "auto" && !device_.is_cuda())) return Status::Ok();
  auto trailing_normalize = [&](const std::vector<StageSpec>& stages, std::string* why) -> int {
    int at = int(stages.size()) - 1;
    while (at >= 0 && stages[size_t(at)].type == "random_horizontal_flip") --at;
    if (at < 0 || stages[size_t(at)].type != "normalize") {
      *why = "the pipeline does not end with normalize (random_horizontal_flip may follow it)";
      return -1;
    }
    for (int i = 0; i < at; ++i) {
      const StageInfo* info = registry.Find(stages[size_t(i)].type);
      if (!info || info->origin != "built-in" || stages[size_t(i)].type == "normalize") {
        *why = "stage '" + stages[size_t(i)].name + "' before normalize is " +
               (info ? info->origin : std::string("unknown")) +
               ", and only built-in stages are known to keep pixels uint8";
        return -1;
      }
    }
    return at;
  };
  std::string why;
  const int at = trailing_normalize(options_.pipeline, &why);
  const StageSpec* spec = at >= 0 ? &options_.pipeline[size_t(at)] : nullptr;
  int eval_at = -1;
  if (spec && options_.batch.dtype != DType::kFloat32) {
    why = "the batch dtype is uint8 already";
    spec = nullptr;
  }
  if (spec && !options_.cache.after.empty() && options_.cache.after == spec->name) {
    why = "cache.after names '" + spec->name + "'";
    spec = nullptr;
  }
  if (spec && options_.train.eval.enabled) {
    std::string eval_why;
    eval_at = trailing_normalize(options_.train.eval.pipeline, &eval_why);
    if (eval_at < 0 ||
        options_.train.eval.pipeline[size_t(eval_at)].params.ToString() != spec->params.ToString()) {
      why = "the eval pipeline does not end with the same normalize";
      spec = nullptr;
    }
  }
  if (!spec) {
    if (want == "true")
      return Status::InvalidArgument("normalize_on_device: true, but " + why);
    return Status::Ok();
  }
  const StageParams& p = spec->params;
  std::vector<double> mean = p.FloatList("mean"), stdev = p.FloatList("std");
  const double scale = p.Float("scale");
  // The stage's own coefficients (builtin/pixel.cc): float(scale / std), float(-mean / std).
  std::vector<float> a, b;
  for (size_t c = 0; c < mean.size(); ++c) {
    a.push_back(float(scale / stdev[c]));
    b.push_back(float(-mean[c] / stdev[c]));
  }
  auto channel_view = [&](const std::vector<float>& v) {
    return torch::tensor(v).view({1, int64_t(v.size()), 1, 1}).to(device_);
  };
  scale_ = channel_view(a);
  shift_ = channel_view(b);
  options_.pipeline.erase(options_.pipeline.begin() + at);
  if (eval_at >= 0)
    options_.train.eval.pipeline.erase(options_.train.eval.pipeline.begin() + eval_at);
  options_.batch.dtype = DType::kUInt8;
  report_.normalize_on_device = true;
  return Status::Ok();
}

// Pipelines: training, and evaluation (deterministic, dataset order, shallow prefetch).
Status TorchTrainer::OpenPipelines(const StageRegistry& registry) {
  auto t0 = Clock::now();
  // On CUDA, batches are collated straight into pinned memory: the copy to the device reads
  // them by DMA, with no staging copy on the host.
  if (device_.is_cuda()) options_.batch_memory = CudaPinnedBatchMemory();
  auto train = Pipeline::Open(options_, registry);
  if (!train.ok()) return train.status();
  pipeline_ = std::move(train.value());
  report_.setup.push_back({"pipeline_open", SecondsSince(t0)});
  if (options_.train.eval.enabled) {
    t0 = Clock::now();
    auto ep = Pipeline::Open(EvalPipelineOptions(options_), registry);
    if (!ep.ok()) return ep.status().WithContext("eval");
    eval_ = std::move(ep.value());
    report_.setup.push_back({"eval_pipeline_open", SecondsSince(t0)});
    FLOWFEED_RETURN_IF_ERROR(MapEvalClasses());
  }
  return Status::Ok();
}

// The training data's class names define the labels; the evaluation data's labels are its own
// sources' numbers, mapped here by name. A class only the evaluation data has cannot be
// labelled (the model has no output for it): refused, before any training. Training classes
// the evaluation data lacks are fine, and said.
Status TorchTrainer::MapEvalClasses() {
  const std::vector<std::string>& train = pipeline_->source().classes();
  const std::vector<std::string>& eval = eval_->source().classes();
  auto place = [](const SourceOptions& s) {
    const std::string& file = !s.list.empty() ? s.list : !s.shards.empty() ? s.shards : s.images;
    return s.type + " " + (file.empty() ? s.root : s.root.empty() ? file : s.root + "/" + file);
  };
  auto names = [](const std::vector<std::string>& v) {
    std::string out;
    for (size_t i = 0; i < v.size() && i < 10; ++i) out += (i ? ", " : "") + v[i];
    return v.size() > 10 ? out + ", ... (" + std::to_string(v.size()) + " in all)" : out;
  };
  std::vector<int64_t> to_train;
  std::vector<std::string> unknown, missing;
  for (const std::string& name : eval) {
    auto it = std::find(train.begin(), train.end(), name);
    if (it == train.end()) unknown.push_back(name);
    to_train.push_back(int64_t(it - train.begin()));
  }
  for (const std::string& name : train)
    if (std::find(eval.begin(), eval.end(), name) == eval.end()) missing.push_back(name);
  if (!unknown.empty())
    return Status::InvalidArgument(
        "eval.source: " + place(options_.train.eval.source) + " has " +
        std::to_string(unknown.size()) + " class(es) that the training data (" +
        place(options_.source) + ", " + std::to_string(train.size()) +
        " classes) does not have: " + names(unknown) +
        "; the model has no output for them. Remove them from the evaluation data, or add them "
        "to the training data");
  if (!missing.empty())
    report_.warnings.push_back("eval.source: " + place(options_.train.eval.source) + " lacks " +
                               std::to_string(missing.size()) + " of the " +
                               std::to_string(train.size()) + " training classes (" +
                               names(missing) + "); the evaluation covers the other " +
                               std::to_string(train.size() - missing.size()));
  bool same = true;
  for (size_t i = 0; i < to_train.size(); ++i) same = same && to_train[i] == int64_t(i);
  if (!same) eval_labels_ = torch::tensor(to_train, torch::kInt64).to(device_);
  return Status::Ok();
}

// The first batch gives the input shape the model is built for; it is trained on as the
// first step of the first epoch.
Status TorchTrainer::BuildModelForFirstBatch() {
  const TrainOptions& t = options_.train;
  auto t0 = Clock::now();
  FLOWFEED_RETURN_IF_ERROR(pipeline_->Next(&first_));
  if (!first_) return Status::Internal("the training pipeline produced no batch");
  report_.setup.push_back({"first_batch", SecondsSince(t0)});

  t0 = Clock::now();
  // The model's initial weights (and dropout) come from LibTorch's generator: seeded, so the
  // same config gives the same model.
  torch::manual_seed(options_.seed);
  int classes = t.model.num_classes > 0 ? t.model.num_classes : int(pipeline_->num_classes());
  auto built = BuildModel(t.model, first_->channels, first_->height, first_->width, classes);
  if (!built.ok()) return built.status();
  model_ = built.value();
  // Rank 0's weights are broadcast below; dropout should still differ between ranks, as
  // their samples do. (Rank 0 keeps the single-process sequence.)
  if (options_.distributed.world_size > 1 && options_.distributed.rank > 0)
    torch::manual_seed(options_.seed + 0x9E3779B97F4A7C15ull * uint64_t(options_.distributed.rank));
  report_.model = t.model.type + " (" + std::to_string(model_->parameter_count()) + " parameters)";
  report_.setup.push_back({"model_build", SecondsSince(t0)});

  t0 = Clock::now();
  model_->to(device_);
  ToChannelsLast();
  Sync();
  report_.setup.push_back({"model_to_device", SecondsSince(t0)});
  return Status::Ok();
}

// channels_last: the 4-d weights (convolutions) in NHWC order, as `model.to(memory_format=
// torch.channels_last)` does in Python; LibTorch's Module::to has no memory format. A model
// without any (the MLP) stays as it is.
void TorchTrainer::ToChannelsLast() {
  bool any = false;
  if (channels_last_) {
    torch::NoGradGuard no_grad;
    for (auto& p : model_->parameters()) {
      if (p.dim() != 4) continue;
      p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
      any = true;
    }
  }
  channels_last_ = any;
  report_.memory_format = any ? "channels_last" : "contiguous";
}

Status TorchTrainer::BuildOptimizer() {
  auto t0 = Clock::now();
  const OptimizerOptions& o = options_.train.optimizer;
  if (o.type == "sgd") {
    optimizer_ = std::make_unique<ForeachSGD>(
        model_->parameters(), torch::optim::SGDOptions(o.lr)
                                  .momentum(o.momentum)
                                  .nesterov(o.nesterov)
                                  .weight_decay(o.weight_decay));
  } else if (o.type == "adamw") {
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        model_->parameters(), torch::optim::AdamWOptions(o.lr)
                                  .betas({o.beta1, o.beta2})
                                  .weight_decay(o.weight_decay));
  } else {
    return Status::InvalidArgument("optimizer.type: expected sgd or adamw, got '" + o.type + "'");
  }
  report_.setup.push_back({"optimizer", SecondsSince(t0)});
  return Status::Ok();
}

// On CUDA, the first step's one-time costs (cuDNN's algorithm search for every convolution
// shape, the caching allocator's growth to the step's working set, lazy kernel loading) are
// paid here, as the set-up part "cuda_warmup", instead of inside the first step: one forward and
// backward pass on the first batch in eval mode, which changes no weight, no batch-norm
// statistic and draws no random number; its gradients are dropped.
void TorchTrainer::WarmUpDevice() {
  if (!device_.is_cuda()) return;
  auto t0 = Clock::now();
  model_->eval();
  torch::Tensor x, y, loss;
  Inputs(*first_, /*slot=*/-1, &x, &y);
  {
    AutocastScope autocast(device_, options_.train.amp);
    loss = torch::nn::functional::cross_entropy(model_->forward(x), y);
  }
  loss.backward();
  for (auto& p : model_->parameters()) p.mutable_grad() = torch::Tensor();
  model_->train();
  Sync();
  report_.setup.push_back({"cuda_warmup", SecondsSince(t0)});
}

}  // namespace flowfeed
