// The trainer's set-up (TorchTrainer::Init, called by Trainer::Create): the checkpoint to resume
// from, the other ranks, LibTorch's threads, the device, the pipelines, the model and the
// optimiser, each timed as a set-up part of the report.
//
// Threads: the thread that calls Trainer::Create, before any other thread can see the trainer.
// Init's order is the order of the report's set-up parts and of the errors a bad config meets.

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "flowfeed/util/clock.h"
#include "trainer_impl.h"

namespace flowfeed {

Status TorchTrainer::Init(const PipelineOptions& options_in, const StageRegistry& registry,
                          const std::string& resume, double config_seconds) {
  created_ = Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(config_seconds));
  options_ = options_in;
  report_.setup.push_back({"config", config_seconds});

  // A checkpoint to resume from: read first, it decides the first epoch.
  torch::serialize::InputArchive resumed;
  std::string resumed_signature;
  if (!resume.empty()) FLOWFEED_RETURN_IF_ERROR(ReadResume(resume, &resumed, &resumed_signature));
  report_.start_epoch = start_epoch_;
  report_.start_position = options_.start_position;
  FLOWFEED_RETURN_IF_ERROR(JoinRanks());
  ChooseThreads();
  FLOWFEED_RETURN_IF_ERROR(ChooseDevice());
  FLOWFEED_RETURN_IF_ERROR(OpenPipelines(registry));
  FLOWFEED_RETURN_IF_ERROR(BuildModelForFirstBatch());
  FLOWFEED_RETURN_IF_ERROR(BuildOptimizer());
  if (!resume.empty()) FLOWFEED_RETURN_IF_ERROR(RestoreState(resume, resumed, resumed_signature));
  if (comm_) FLOWFEED_RETURN_IF_ERROR(BroadcastParameters());
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
    auto comm = Communicator::Create(dist);
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
  if (t.amp)
    return Status::Unsupported("amp: mixed precision is not implemented yet; remove `amp: true`");
  const bool cuda = t.device == "cuda" || (t.device == "auto" && have_cuda);
  device_ = cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  report_.device = device_.str();
  report_.synchronized_timing = cuda;
  if (cuda) {
    auto t0 = Clock::now();
    torch::empty({1}, torch::TensorOptions().device(device_));  // creates the context
    Sync();
    report_.setup.push_back({"cuda_context", SecondsSince(t0)});
  }
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
  }
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
  Sync();
  report_.setup.push_back({"model_to_device", SecondsSince(t0)});
  return Status::Ok();
}

Status TorchTrainer::BuildOptimizer() {
  auto t0 = Clock::now();
  const OptimizerOptions& o = options_.train.optimizer;
  if (o.type == "sgd") {
    optimizer_ = std::make_unique<torch::optim::SGD>(
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

}  // namespace flowfeed
