// The LibTorch trainer: pipeline batches -> device -> forward/backward/step, timed part by part.

#include "flowfeed/trainer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "flowfeed/pipeline.h"
#include "trainer/models.h"

namespace flowfeed {

// Fills report->gap (defined below, after the trainer).
void ComputeGap(TrainReport* report);

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

constexpr const char* kCheckpointFormat = "flowfeed-checkpoint-1";

// Removes a leftover temporary file; never throws (a failure here must not hide the real one).
void RemoveQuietly(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
}

// fsync a file or folder by path; errors are returned as errno (0: fine).
int SyncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return errno;
  int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

class TorchTrainer final : public Trainer {
 public:
  Status Init(const PipelineOptions& options_in, const StageRegistry& registry,
              const std::string& resume, double config_seconds) {
    created_ = Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(config_seconds));
    options_ = options_in;
    report_.setup.push_back({"config", config_seconds});
    const TrainOptions& t = options_.train;

    // A checkpoint to resume from: read first, it decides the first epoch.
    torch::serialize::InputArchive resumed;
    std::string resumed_signature;
    if (!resume.empty()) {
      auto t0 = Clock::now();
      FLOWFEED_RETURN_IF_ERROR(ReadCheckpoint(resume, &resumed, &resumed_signature));
      if (start_epoch_ >= options_.epochs)
        return Status::InvalidArgument("checkpoint " + resume + " finished epoch " +
                                       std::to_string(start_epoch_) + "; the config trains " +
                                       std::to_string(options_.epochs) +
                                       " epochs, so there is nothing left (raise epochs)");
      options_.start_epoch = start_epoch_;
      report_.setup.push_back({"read_checkpoint", Since(t0)});
    }
    report_.start_epoch = start_epoch_;

    // LibTorch's own thread pool: Debian's build starts with one OpenMP thread here; use every
    // core unless the user chose with OMP_NUM_THREADS.
    auto tp = Clock::now();
    if (!std::getenv("OMP_NUM_THREADS"))
      torch::set_num_threads(int(std::max(1u, std::thread::hardware_concurrency())));
    report_.torch_threads = torch::get_num_threads();
    report_.setup.push_back({"torch_threads", Since(tp)});

    // Device and CUDA context.
    tp = Clock::now();
    const bool have_cuda = torch::cuda::is_available();
    report_.setup.push_back({"device_probe", Since(tp)});
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
      report_.setup.push_back({"cuda_context", Since(t0)});
    }

    // Pipelines: training, and evaluation (deterministic, dataset order, shallow prefetch).
    auto t0 = Clock::now();
    auto train = Pipeline::Open(options_, registry);
    if (!train.ok()) return train.status();
    pipeline_ = std::move(train.value());
    report_.setup.push_back({"pipeline_open", Since(t0)});
    if (t.eval.enabled) {
      t0 = Clock::now();
      PipelineOptions e = options_;
      e.source = t.eval.source;
      e.pipeline = t.eval.pipeline;
      e.shuffle = false;
      e.batch.size = t.eval.batch_size > 0 ? t.eval.batch_size : options_.batch.size;
      e.batch.drop_last = false;
      e.prefetch = 1;
      e.max_in_flight = 0;
      e.cold = false;
      e.cache.mode = options_.cache.mode == CacheMode::kOff ? CacheMode::kOff : CacheMode::kMemory;
      e.cache.path.clear();
      e.cache.after.clear();
      auto ep = Pipeline::Open(e, registry);
      if (!ep.ok()) return ep.status().WithContext("eval");
      eval_ = std::move(ep.value());
      report_.setup.push_back({"eval_pipeline_open", Since(t0)});
    }

    // The first batch gives the input shape the model is built for; it is trained on as the
    // first step of the first epoch.
    t0 = Clock::now();
    FLOWFEED_RETURN_IF_ERROR(pipeline_->Next(&first_));
    if (!first_) return Status::Internal("the training pipeline produced no batch");
    report_.setup.push_back({"first_batch", Since(t0)});

    t0 = Clock::now();
    // The model's initial weights (and dropout) come from LibTorch's generator: seeded, so the
    // same config gives the same model.
    torch::manual_seed(options_.seed);
    int classes = t.model.num_classes > 0 ? t.model.num_classes : int(pipeline_->num_classes());
    auto built = BuildModel(t.model, first_->channels, first_->height, first_->width, classes);
    if (!built.ok()) return built.status();
    model_ = built.value();
    report_.model = t.model.type + " (" + std::to_string(model_->parameter_count()) + " parameters)";
    report_.setup.push_back({"model_build", Since(t0)});

    t0 = Clock::now();
    model_->to(device_);
    Sync();
    report_.setup.push_back({"model_to_device", Since(t0)});

    t0 = Clock::now();
    const OptimizerOptions& o = t.optimizer;
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
    report_.setup.push_back({"optimizer", Since(t0)});

    if (!resume.empty()) {
      if (resumed_signature != model_->signature())
        return Status::InvalidArgument("checkpoint " + resume + " was written for the model '" +
                                       resumed_signature + "', but this config builds '" +
                                       model_->signature() + "'");
      t0 = Clock::now();
      try {
        torch::serialize::InputArchive m, opt;
        resumed.read("model", m);
        model_->load(m);
        resumed.read("optimizer", opt);
        optimizer_->load(opt);
        model_->to(device_);
        torch::Tensor rng;
        resumed.read("cpu_rng_state", rng);
        at::Generator gen = at::detail::getDefaultCPUGenerator();
        gen.set_state(rng);
      } catch (const std::exception& e) {
        return Status::Corrupt("checkpoint " + resume + ": cannot restore the model or optimiser: " +
                               FirstLine(e.what()));
      }
      report_.setup.push_back({"restore_state", Since(t0)});
    }
    steps_per_epoch_ = pipeline_->batches_per_epoch();
    return Status::Ok();
  }

  Status Run(const std::function<void(const TrainEpochStats&)>& on_epoch,
             const std::function<void(int, int64_t, int64_t, double)>& on_step) override {
    for (int epoch = start_epoch_; epoch < options_.epochs; ++epoch) {
      TrainEpochStats es;
      es.epoch = epoch + 1;
      FLOWFEED_RETURN_IF_ERROR(TrainEpoch(epoch, &es, on_step));
      if (eval_) FLOWFEED_RETURN_IF_ERROR(Evaluate(&es));
      if (!options_.train.checkpoint.empty()) {
        auto t0 = Clock::now();
        FLOWFEED_RETURN_IF_ERROR(WriteCheckpoint(epoch + 1));
        es.checkpoint_seconds = Since(t0);
        Span("checkpoint", t0, Clock::now(), epoch + 1);
      }
      report_.epochs.push_back(es);
      if (on_epoch) on_epoch(es);
    }
    report_.wall_seconds = Since(created_);  // report() adds the pipeline's stats
    finished_ = true;
    return Status::Ok();
  }

  std::vector<TraceEvent> trace() const override {
    std::vector<TraceEvent> out;
    if (!options_.trace) return out;
    out = pipeline_->trace();
    out.insert(out.end(), trace_.begin(), trace_.end());
    return out;
  }

  TrainReport report() const override {
    TrainReport r = report_;
    if (pipeline_) r.pipeline = pipeline_->stats();
    if (!finished_) r.wall_seconds = Since(created_);
    double parts = 0;
    for (const auto& p : r.setup) parts += p.seconds;
    for (const auto& e : r.epochs) parts += e.seconds + e.eval_seconds + e.checkpoint_seconds;
    r.unexplained_seconds = r.wall_seconds - parts;
    ComputeGap(&r);
    return r;
  }

 private:
  static uint64_t Ns(Clock::time_point t) {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
  }
  void Span(const char* name, Clock::time_point a, Clock::time_point b, int epoch) {
    if (options_.trace) trace_.push_back(TraceEvent{name, "trainer", Ns(a), Ns(b) - Ns(a), epoch, -1});
  }

  void Sync() {
    if (device_.is_cuda()) torch::cuda::synchronize();
  }

  static std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

  // The learning rate at `step` (0-based, counting from the start of training).
  double LearningRate(int64_t step) const {
    const ScheduleOptions& s = options_.train.schedule;
    const double base = options_.train.optimizer.lr;
    const double per_epoch = double(std::max<int64_t>(1, steps_per_epoch_));
    const double warmup = s.warmup_epochs * per_epoch;
    const double x = double(step);
    if (x < warmup) return base * (x + 1) / warmup;
    const double epoch = x / per_epoch;
    if (s.type == "cosine") {
      const double total = double(options_.epochs) * per_epoch - warmup;
      const double progress = total > 0 ? std::min(1.0, (x - warmup) / total) : 1.0;
      return s.min_lr + (base - s.min_lr) * 0.5 * (1 + std::cos(M_PI * progress));
    }
    if (s.type == "step") return base * std::pow(s.gamma, std::floor(epoch / s.step_epochs));
    return base;
  }

  void SetLearningRate(double lr) {
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
  }

  // The batch as a device tensor: float pixels as they are; uint8 pixels scaled to [0, 1] on
  // the device (a quarter of the bytes over the bus). On CUDA the batch is staged in pinned
  // host memory (allocated once, grown when needed) and copied without blocking the host.
  torch::Tensor Input(const Batch& b) {
    std::vector<int64_t> shape = b.shape();
    if (b.layout == Layout::kNHWC) shape = {b.size, b.height, b.width, b.channels};
    auto dtype = b.dtype == DType::kUInt8 ? torch::kUInt8 : torch::kFloat32;
    torch::Tensor x = torch::from_blob(const_cast<uint8_t*>(b.data()), shape,
                                       torch::TensorOptions().dtype(dtype));
    if (device_.is_cuda()) {
      const int64_t bytes = int64_t(b.bytes());
      if (!pinned_.defined() || pinned_.numel() < bytes)
        pinned_ = torch::empty({bytes}, torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(true));
      // The previous step's copy out of this buffer finished: Run() synchronises every step.
      std::memcpy(pinned_.data_ptr(), b.data(), size_t(bytes));
      x = pinned_.narrow(0, 0, bytes).view(dtype).view(shape).to(device_, /*non_blocking=*/true);
    }
    if (b.layout == Layout::kNHWC) x = x.permute({0, 3, 1, 2});
    if (b.dtype == DType::kUInt8) x = x.to(torch::kFloat32).div_(255.0);
    return x.contiguous();
  }

  Status TrainEpoch(int epoch, TrainEpochStats* es,
                    const std::function<void(int, int64_t, int64_t, double)>& on_step) {
    model_->train();
    auto epoch_start = Clock::now();
    std::vector<double> step_seconds;
    double loss_sum = 0;
    int64_t correct = 0;
    const double smoothing = options_.train.label_smoothing;
    while (true) {
      auto t0 = Clock::now();
      BatchPtr b;
      if (first_) {
        b = std::move(first_);  // taken during set-up; its wait is a set-up part
      } else {
        FLOWFEED_RETURN_IF_ERROR(pipeline_->Next(&b));
      }
      if (!b) break;
      const double wait = Since(t0);
      auto t1 = Clock::now();
      torch::Tensor x = Input(*b);
      torch::Tensor y = torch::from_blob(const_cast<int64_t*>(b->labels.data()), {b->size},
                                         torch::TensorOptions().dtype(torch::kInt64))
                            .to(device_);
      Sync();
      auto t2 = Clock::now();
      SetLearningRate(LearningRate(global_step_));
      torch::Tensor logits = model_->forward(x);
      torch::Tensor loss = torch::nn::functional::cross_entropy(
          logits, y, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(smoothing));
      Sync();
      auto t3 = Clock::now();
      optimizer_->zero_grad();
      loss.backward();
      Sync();
      auto t4 = Clock::now();
      optimizer_->step();
      Sync();
      auto t5 = Clock::now();
      const double l = loss.item<double>();
      correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      b.reset();  // the batch's buffer goes back to the pipeline

      auto secs = [](Clock::time_point a, Clock::time_point c) {
        return std::chrono::duration<double>(c - a).count();
      };
      Span("wait for batch", t0, t1, epoch + 1);
      Span("to device", t1, t2, epoch + 1);
      Span("forward", t2, t3, epoch + 1);
      Span("backward", t3, t4, epoch + 1);
      Span("optimizer", t4, t5, epoch + 1);
      es->data_wait_seconds += wait;
      es->h2d_seconds += secs(t1, t2);
      es->forward_seconds += secs(t2, t3);
      es->backward_seconds += secs(t3, t4);
      es->optimizer_seconds += secs(t4, t5);
      step_seconds.push_back(secs(t1, t5));
      loss_sum += l * double(y.size(0));
      es->samples += y.size(0);
      ++es->steps;
      ++global_step_;
      if (on_step) on_step(epoch, es->steps, steps_per_epoch_, l);
    }
    es->seconds = Since(epoch_start);
    es->samples_per_second = es->seconds > 0 ? double(es->samples) / es->seconds : 0;
    es->loss = es->samples ? loss_sum / double(es->samples) : 0;
    es->accuracy = es->samples ? double(correct) / double(es->samples) : 0;
    es->lr = LearningRate(std::max<int64_t>(0, global_step_ - 1));
    if (!step_seconds.empty()) {
      es->first_step_seconds = step_seconds.front();
      std::vector<double> sorted = step_seconds;
      std::nth_element(sorted.begin(), sorted.begin() + long(sorted.size() / 2), sorted.end());
      es->median_step_seconds = sorted[sorted.size() / 2];
    }
    return Status::Ok();
  }

  Status Evaluate(TrainEpochStats* es) {
    torch::NoGradGuard no_grad;
    model_->eval();
    auto t0 = Clock::now();
    double loss_sum = 0;
    int64_t correct = 0, n = 0;
    while (true) {
      BatchPtr b;
      FLOWFEED_RETURN_IF_ERROR(eval_->Next(&b).WithContext("eval"));
      if (!b) break;
      torch::Tensor x = Input(*b);
      torch::Tensor y = torch::from_blob(const_cast<int64_t*>(b->labels.data()), {b->size},
                                         torch::TensorOptions().dtype(torch::kInt64))
                            .to(device_);
      torch::Tensor logits = model_->forward(x);
      loss_sum += torch::nn::functional::cross_entropy(
                      logits, y,
                      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                      .item<double>();
      correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      n += b->size;
    }
    Span("evaluate", t0, Clock::now(), es->epoch);
    es->has_eval = true;
    es->eval_samples = n;
    es->eval_loss = n ? loss_sum / double(n) : 0;
    es->eval_accuracy = n ? double(correct) / double(n) : 0;
    es->eval_seconds = Since(t0);
    return Status::Ok();
  }

  // Model, optimiser, the epoch finished and what the checkpoint is for, written to a temporary
  // file, made durable, then renamed over the old one: a crash leaves the old checkpoint or
  // the new one, never a torn one.
  Status WriteCheckpoint(int epochs_done) {
    const std::string& path = options_.train.checkpoint;
    const std::string tmp = path + ".tmp";
    try {
      std::filesystem::path parent = std::filesystem::path(path).parent_path();
      if (!parent.empty()) std::filesystem::create_directories(parent);
      torch::serialize::OutputArchive archive, model, opt;
      model_->save(model);
      optimizer_->save(opt);
      archive.write("format", c10::IValue(std::string(kCheckpointFormat)));
      archive.write("signature", c10::IValue(model_->signature()));
      archive.write("epochs_done", c10::IValue(int64_t(epochs_done)));
      archive.write("global_step", c10::IValue(global_step_));
      archive.write("model", model);
      archive.write("optimizer", opt);
      // Dropout draws from LibTorch's generator: its state makes a resumed run continue exactly.
      archive.write("cpu_rng_state", at::detail::getDefaultCPUGenerator().get_state());
      archive.save_to(tmp);
    } catch (const std::exception& e) {
      RemoveQuietly(tmp);
      return Status::IoError("checkpoint " + path + ": cannot write: " + FirstLine(e.what()));
    }
    if (int err = SyncPath(tmp, false)) {
      RemoveQuietly(tmp);
      return Status::IoError("checkpoint " + path + ": fsync failed: " + std::strerror(err));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      RemoveQuietly(tmp);
      return Status::IoError("checkpoint " + path + ": rename failed: " + std::strerror(err));
    }
    std::string dir = std::filesystem::path(path).parent_path().string();
    SyncPath(dir.empty() ? "." : dir, true);
    return Status::Ok();
  }

  Status ReadCheckpoint(const std::string& path, torch::serialize::InputArchive* archive,
                        std::string* signature) {
    if (!std::filesystem::exists(path)) return Status::NotFound("checkpoint " + path + " does not exist");
    try {
      archive->load_from(path);
      c10::IValue format, sig, epochs, step;
      archive->read("format", format);
      if (!format.isString() || format.toStringRef() != kCheckpointFormat)
        return Status::Corrupt("checkpoint " + path + " is not a flowfeed checkpoint (format " +
                               (format.isString() ? format.toStringRef() : std::string("?")) + ")");
      archive->read("signature", sig);
      archive->read("epochs_done", epochs);
      archive->read("global_step", step);
      *signature = sig.toStringRef();
      start_epoch_ = int(epochs.toInt());
      global_step_ = step.toInt();
    } catch (const std::exception& e) {
      return Status::Corrupt("checkpoint " + path + " is unreadable (truncated or not a checkpoint): " +
                             FirstLine(e.what()));
    }
    return Status::Ok();
  }

  PipelineOptions options_;
  Clock::time_point created_;
  torch::Device device_{torch::kCPU};
  std::unique_ptr<Pipeline> pipeline_, eval_;
  BatchPtr first_;
  std::shared_ptr<ClassifierImpl> model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  int start_epoch_ = 0;
  bool finished_ = false;  // Run() completed: wall_seconds is final
  int64_t global_step_ = 0;
  int64_t steps_per_epoch_ = 0;
  TrainReport report_;
  std::vector<TraceEvent> trace_;  // the trainer's own spans (options_.trace)
  torch::Tensor pinned_;           // CUDA: the pinned staging buffer for batches
};

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

void ComputeGap(TrainReport* r) {
  r->gap.clear();
  r->gap_seconds = 0;
  if (r->epochs.size() < 2) return;
  const TrainEpochStats& first = r->epochs.front();
  const double n = double(r->epochs.size() - 1);
  auto later_mean = [&](auto field) {
    double sum = 0;
    for (size_t i = 1; i < r->epochs.size(); ++i) sum += field(r->epochs[i]);
    return sum / n;
  };
  auto whole = [](const TrainEpochStats& e) { return e.seconds + e.eval_seconds + e.checkpoint_seconds; };
  auto compute = [](const TrainEpochStats& e) {
    return e.h2d_seconds + e.forward_seconds + e.backward_seconds + e.optimizer_seconds;
  };
  auto first_extra = [](const TrainEpochStats& e) { return e.first_step_seconds - e.median_step_seconds; };
  double setup = 0;
  for (const auto& p : r->setup) setup += p.seconds;
  r->gap_seconds = setup + whole(first) - later_mean(whole);

  std::vector<SetupPart> parts;
  parts.push_back({"set-up", setup});
  // The extra wait for data, shared among the stages that worked more in the first epoch.
  const double wait = first.data_wait_seconds - later_mean([](const TrainEpochStats& e) { return e.data_wait_seconds; });
  const RunStats& ps = r->pipeline;
  const EpochStats* p1 = nullptr;
  std::vector<const EpochStats*> pl;
  for (const auto& e : ps.epochs) {
    if (e.epoch == first.epoch) p1 = &e;
    else if (e.epoch > first.epoch) pl.push_back(&e);
  }
  std::vector<std::pair<std::string, double>> extra;
  double extra_total = 0;
  if (p1 && !pl.empty()) {
    for (const StageStats& s : p1->stages) {
      double later = 0;
      for (const EpochStats* e : pl)
        for (const StageStats& t : e->stages)
          if (t.name == s.name) later += t.busy_seconds;
      double d = s.busy_seconds - later / double(pl.size());
      if (d > 0) {
        extra.emplace_back(s.name, d);
        extra_total += d;
      }
    }
  }
  if (wait > 0 && extra_total > 0) {
    std::sort(extra.begin(), extra.end(), [](auto& a, auto& b) { return a.second > b.second; });
    for (const auto& [name, d] : extra) parts.push_back({"data wait: " + name, wait * d / extra_total});
  } else {
    parts.push_back({"data wait", wait});
  }
  const double first_step = first_extra(first) - later_mean(first_extra);
  parts.push_back({"first step", first_step});
  parts.push_back({"other step compute", compute(first) - later_mean(compute) - first_step});
  parts.push_back({"evaluation", first.eval_seconds - later_mean([](const TrainEpochStats& e) { return e.eval_seconds; })});
  parts.push_back({"checkpoint", first.checkpoint_seconds - later_mean([](const TrainEpochStats& e) { return e.checkpoint_seconds; })});
  double sum = 0;
  for (const auto& p : parts) sum += p.seconds;
  parts.push_back({"unexplained", r->gap_seconds - sum});
  r->gap = std::move(parts);
}

std::string FormatGap(const TrainReport& r) {
  if (r.gap.empty()) return "";
  std::string out = "first epoch against the rest: " + Fmt("%+.2f", r.gap_seconds) +
                    " s (set-up + epoch " + std::to_string(r.epochs.front().epoch) +
                    " - mean of the later epochs)\n";
  for (const auto& p : r.gap)
    out += "  " + p.name + std::string(p.name.size() < 34 ? 34 - p.name.size() : 1, ' ') +
           Fmt("%+8.3f s", p.seconds) +
           Fmt("  %5.1f%%", r.gap_seconds != 0 ? 100 * p.seconds / r.gap_seconds : 0) + "\n";
  return out;
}

Result<std::unique_ptr<Trainer>> Trainer::Create(const PipelineOptions& options,
                                                 const StageRegistry& registry,
                                                 const std::string& resume, double config_seconds) {
  auto t = std::make_unique<TorchTrainer>();
  try {
    FLOWFEED_RETURN_IF_ERROR(t->Init(options, registry, resume, config_seconds));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("trainer set-up: ") + e.what());
  }
  return std::unique_ptr<Trainer>(std::move(t));
}

std::string FormatSetup(const TrainReport& r) {
  double total = 0;
  for (const auto& p : r.setup) total += p.seconds;
  std::string out = "set-up " + Fmt("%.2f", total) + " s on " + r.device + " (" +
                    std::to_string(r.torch_threads) + " LibTorch threads), model " + r.model + ":";
  for (const auto& p : r.setup) out += " " + p.name + " " + Fmt("%.3f", p.seconds);
  return out + "\n";
}

std::string FormatTrainEpoch(const TrainEpochStats& e) {
  const double step = e.h2d_seconds + e.forward_seconds + e.backward_seconds + e.optimizer_seconds;
  const double wait_share = e.seconds > 0 ? e.data_wait_seconds / e.seconds : 0;
  std::string out = "train epoch " + std::to_string(e.epoch) + ": loss " + Fmt("%.4f", e.loss) +
                    ", accuracy " + Fmt("%.2f%%", 100 * e.accuracy) + ", " +
                    Fmt("%.0f", e.samples_per_second) + " samples/s, lr " + Fmt("%.4g", e.lr);
  if (e.has_eval)
    out += "; eval loss " + Fmt("%.4f", e.eval_loss) + ", accuracy " +
           Fmt("%.2f%%", 100 * e.eval_accuracy) + " (" + std::to_string(e.eval_samples) +
           " samples, " + Fmt("%.2f", e.eval_seconds) + " s)";
  out += "\n  steps " + std::to_string(e.steps) + ": data wait " + Fmt("%.2f", e.data_wait_seconds) +
         " s, to device " + Fmt("%.2f", e.h2d_seconds) + " s, forward " +
         Fmt("%.2f", e.forward_seconds) + " s, backward " + Fmt("%.2f", e.backward_seconds) +
         " s, optimiser " + Fmt("%.2f", e.optimizer_seconds) + " s; first step " +
         Fmt("%.1f", 1e3 * e.first_step_seconds) + " ms, median " +
         Fmt("%.1f", 1e3 * e.median_step_seconds) + " ms";
  out += "\n  verdict: " +
         std::string(wait_share > 0.2 ? "input-bound" : "compute-bound") + ": waited for data " +
         Fmt("%.0f%%", 100 * wait_share) + " of the epoch, computed " +
         Fmt("%.0f%%", e.seconds > 0 ? 100 * step / e.seconds : 0) + "\n";
  return out;
}

std::string TrainReportJson(const TrainReport& r) {
  nlohmann::json j = nlohmann::json::parse(ReportJson(r.pipeline));
  nlohmann::json parts = nlohmann::json::object();
  double total = 0;
  for (const auto& p : r.setup) {
    parts[p.name] = {{"seconds", p.seconds}};
    total += p.seconds;
  }
  j["setup"] = {{"parts", parts}, {"seconds", total}};
  double epochs = 0;
  for (const auto& e : r.epochs) epochs += e.seconds + e.eval_seconds + e.checkpoint_seconds;
  // The whole run accounted for: set-up parts, then each epoch's training, evaluation and
  // checkpoint; what no part measured is shown, not hidden.
  nlohmann::json gap = nlohmann::json::object();
  for (const auto& p : r.gap) gap[p.name] = p.seconds;
  j["first_epoch_gap"] = {{"seconds", r.gap_seconds}, {"parts", gap}};
  j["ledger"] = {{"wall_seconds", r.wall_seconds},
                 {"setup_seconds", total},
                 {"epochs_seconds", epochs},
                 {"unexplained_seconds", r.unexplained_seconds}};
  j["trainer"] = {{"device", r.device},
                  {"torch_threads", r.torch_threads},
                  {"model", r.model},
                  {"synchronized_timing", r.synchronized_timing},
                  {"start_epoch", r.start_epoch},
                  {"wall_seconds", r.wall_seconds}};
  for (auto& je : j["epochs"]) {
    for (const auto& e : r.epochs) {
      if (je["epoch"].get<int>() != e.epoch) continue;
      je["trainer"] = {{"steps", e.steps},
                       {"samples", e.samples},
                       {"seconds", e.seconds},
                       {"samples_per_second", e.samples_per_second},
                       {"data_wait_seconds", e.data_wait_seconds},
                       {"h2d_seconds", e.h2d_seconds},
                       {"forward_seconds", e.forward_seconds},
                       {"backward_seconds", e.backward_seconds},
                       {"optimizer_seconds", e.optimizer_seconds},
                       {"first_step_seconds", e.first_step_seconds},
                       {"median_step_seconds", e.median_step_seconds},
                       {"loss", e.loss},
                       {"accuracy", e.accuracy},
                       {"lr", e.lr},
                       {"checkpoint_seconds", e.checkpoint_seconds}};
      if (e.has_eval)
        je["eval"] = {{"loss", e.eval_loss},
                      {"accuracy", e.eval_accuracy},
                      {"samples", e.eval_samples},
                      {"seconds", e.eval_seconds}};
    }
  }
  return j.dump(2) + "\n";
}

}  // namespace flowfeed
