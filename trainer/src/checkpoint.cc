// The trainer's checkpoints: written at an epoch's end, every train.checkpoint_every steps and
// on a stop; read, checked against this run's settings and restored by --resume. Every key of
// the archive is named here, the writer and the readers side by side. The file goes through
// the file layer (flowfeed/util/file.h) and ends with a checksum (checkpoint_seal.h).
//
// Threads: the thread that drives the trainer. Every rank calls the writers (the positions and
// generator states are gathered from all ranks); only rank 0 writes the file.

#include <filesystem>
#include <sstream>
#include <system_error>

#include "checkpoint_seal.h"
#include "flowfeed/util/clock.h"
#include "flowfeed/util/file.h"
#include "trainer_impl.h"

namespace flowfeed {

namespace {

// 3 added the checksum (always there) and the resume fingerprint; 2 added mid-epoch positions
// and the world size. 2 and 1 (epoch ends only) are still read, with a warning: nothing in them
// shows damage or a changed config.
constexpr const char* kCheckpointFormat = "flowfeed-checkpoint-3";
constexpr const char* kCheckpointFormatV2 = "flowfeed-checkpoint-2";
constexpr const char* kCheckpointFormatV1 = "flowfeed-checkpoint-1";

// Removes a leftover temporary file; never throws (a failure here must not hide the real one).
void RemoveQuietly(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
}

}  // namespace

// Every rank's position and batch count go into one checkpoint, written by rank 0.
Status TorchTrainer::MidEpochCheckpoint(int epoch) {
  const int w = comm_ ? comm_->world_size() : 1, r = comm_ ? comm_->rank() : 0;
  // The last slot: ranks whose loss was not finite (their weights must not be saved).
  std::vector<double> v(size_t(2 * w + 1), 0.0);
  v[size_t(2 * r)] = double(position_);
  v[size_t(2 * r + 1)] = double(batches_done_);
  v.back() = diverged_.empty() ? 0.0 : 1.0;
  if (comm_) FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "gathering the checkpoint positions"));
  if (v.back() > 0) return Diverged(!diverged_.empty());
  std::vector<int64_t> positions, batches;
  const int64_t length = pipeline_->epoch_length();
  bool at_end = false;
  for (int i = 0; i < w; ++i) {
    positions.push_back(int64_t(v[size_t(2 * i)]));
    batches.push_back(int64_t(v[size_t(2 * i + 1)]));
    at_end = at_end || positions.back() >= length;
  }
  // A rank at its order's end has nothing left to resume from; the epoch-end checkpoint
  // (or the previous one) stands instead. All ranks see the same positions, so they agree.
  if (at_end) return Status::Ok();
  return WriteCheckpoint(epoch, positions, batches);
}

// Model, optimiser, the epoch finished and what the checkpoint is for, written to a temporary
// file, made durable, then renamed over the old one: a crash leaves the old checkpoint or
// the new one, never a torn one.
// `positions` / `batches` (one per rank, empty at an epoch's end): how far into epoch
// `epochs_done` (0-based) each rank got. Only rank 0 writes; the others return at once.
Status TorchTrainer::WriteCheckpoint(int epochs_done, const std::vector<int64_t>& positions,
                                     const std::vector<int64_t>& batches) {
  // A step whose loss (computed before its update) was finite can still leave weights that are
  // not. Every rank holds the same parameters, so every rank reaches the same answer here.
  if (diverged_.empty() && !ParametersFinite())
    diverged_ = "epoch " + std::to_string(live_epoch_ + 1) + ", step " +
                std::to_string(batches_done_) + ": the weights after the step are not finite";
  if (!diverged_.empty()) return Diverged(true);
  std::vector<torch::Tensor> rng_states;
  FLOWFEED_RETURN_IF_ERROR(GatherRngStates(&rng_states));
  if (comm_ && comm_->rank() != 0) return Status::Ok();
  const std::string& path = options_.train.checkpoint;
  const std::string tmp = path + ".tmp";  // AtomicFile's temporary name
  std::string bytes;
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
    archive.write("world_size", c10::IValue(int64_t(options_.distributed.world_size)));
    archive.write("positions", c10::IValue(positions));
    archive.write("batches", c10::IValue(batches));
    archive.write("fingerprint", c10::IValue(fingerprint_.ToText()));
    archive.write("model", model);
    archive.write("optimizer", opt);
    // Dropout draws from LibTorch's generator: its state makes a resumed run continue exactly.
    archive.write("cpu_rng_state", at::detail::getDefaultCPUGenerator().get_state());
    archive.write("cpu_rng_states", c10::IValue(c10::List<at::Tensor>(rng_states)));
    // Serialised in memory, written by us: LibTorch's file writer throws from its destructor
    // when the disk fills up (which ends the process), and it never fsyncs.
    std::ostringstream out;
    archive.save_to(out);
    bytes = out.str();
  } catch (const std::exception& e) {
    RemoveQuietly(tmp);
    return Status::IoError("checkpoint " + path + ": cannot write: " + FirstLine(e.what()));
  }
  Status sealed = SealCheckpoint(&bytes);
  if (!sealed.ok()) return sealed.WithContext("checkpoint " + path);
  // kFileAndDir: a resumed run relies on it. The folder's sync used to be best effort (its
  // failure ignored), which let a crash lose a checkpoint the run had reported as written.
  // On any failure the previous checkpoint is left as it was and the temporary one removed.
  Status s = WriteFileAtomically(nullptr, path, bytes, Durability::kFileAndDir);
  if (!s.ok()) return Status::IoError("checkpoint " + path + ": cannot write " + s.message());
  return Status::Ok();
}

bool TorchTrainer::ParametersFinite() {
  torch::NoGradGuard no_grad;
  for (const torch::Tensor& p : model_->parameters())
    if (!torch::isfinite(p).all().item<bool>()) return false;
  return true;
}

// Every rank's CPU generator state (dropout draws from it), for an exact resume of each.
Status TorchTrainer::GatherRngStates(std::vector<torch::Tensor>* out) {
  torch::Tensor mine = at::detail::getDefaultCPUGenerator().get_state();
  const int w = comm_ ? comm_->world_size() : 1, r = comm_ ? comm_->rank() : 0;
  const int64_t n = mine.numel();
  std::vector<double> v(size_t(w * n), 0.0);
  const uint8_t* p = mine.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) v[size_t(r * n + i)] = double(p[i]);
  if (comm_) FLOWFEED_RETURN_IF_ERROR(comm_->AllReduceSum(&v, "gathering the generator states"));
  out->clear();
  for (int k = 0; k < w; ++k) {
    torch::Tensor t = torch::empty({n}, torch::kUInt8);
    for (int64_t i = 0; i < n; ++i) t.data_ptr<uint8_t>()[i] = uint8_t(v[size_t(k * n + i)]);
    out->push_back(t);
  }
  return Status::Ok();
}

// The checkpoint's header (format, signature, epoch, step; world size and per-rank positions
// from format 2 on; the resume fingerprint from 3 on) into the trainer, once its checksum
// holds; the model and optimiser stay in *archive, to be restored once they are built.
Status TorchTrainer::ReadCheckpoint(const std::string& path, torch::serialize::InputArchive* archive,
                                    std::string* signature) {
  if (!std::filesystem::exists(path)) return Status::NotFound("checkpoint " + path + " does not exist");
  std::string bytes;
  FLOWFEED_RETURN_IF_ERROR(ReadFile(path, &bytes).WithContext("checkpoint"));
  bool sealed = false;
  FLOWFEED_RETURN_IF_ERROR(CheckSeal(bytes, path, &sealed));
  if (sealed) bytes.resize(bytes.size() - kSealSize);
  try {
    std::istringstream in(bytes);
    archive->load_from(in);
    c10::IValue format, sig, epochs, step;
    archive->read("format", format);
    const std::string name = format.isString() ? format.toStringRef() : std::string("?");
    const bool v1 = name == kCheckpointFormatV1, old = v1 || name == kCheckpointFormatV2;
    if (name != kCheckpointFormat && !old)
      return Status::Corrupt("checkpoint " + path + " is not a flowfeed checkpoint (format " +
                             name + ")");
    // From format 3 on the checksum is always written: without it the file was altered.
    if (!old && !sealed)
      return Status::Corrupt("checkpoint " + path + " is damaged: its checksum is missing");
    if (old)
      report_.warnings.push_back(
          "checkpoint " + path + " was written by an older flowfeed (" + name +
          "): it has no checksum and no record of the run's settings, so neither damage nor a "
          "changed config can be detected; resuming from it as it is");
    archive->read("signature", sig);
    archive->read("epochs_done", epochs);
    archive->read("global_step", step);
    *signature = sig.toStringRef();
    start_epoch_ = int(epochs.toInt());
    global_step_ = step.toInt();
    resumed_world_ = 1;
    if (!v1) {
      c10::IValue world, positions, batches;
      archive->read("world_size", world);
      archive->read("positions", positions);
      archive->read("batches", batches);
      resumed_world_ = int(world.toInt());
      resumed_positions_ = positions.toIntVector();
      resumed_batches_ = batches.toIntVector();
      if (!resumed_positions_.empty() &&
          (int(resumed_positions_.size()) != resumed_world_ ||
           resumed_batches_.size() != resumed_positions_.size()))
        return Status::Corrupt("checkpoint " + path + " has " +
                               std::to_string(resumed_positions_.size()) +
                               " positions for a world of " + std::to_string(resumed_world_));
    }
    if (!old) {
      c10::IValue fp;
      archive->read("fingerprint", fp);
      auto parsed = ResumeFingerprint::FromText(fp.toStringRef(), "checkpoint " + path);
      if (!parsed.ok()) return parsed.status();
      resumed_fingerprint_ = std::make_unique<ResumeFingerprint>(std::move(parsed.value()));
    }
  } catch (const std::exception& e) {
    return Status::Corrupt("checkpoint " + path + " is unreadable (truncated or not a checkpoint): " +
                           FirstLine(e.what()));
  }
  return Status::Ok();
}

// The model, the optimiser and this rank's generator from the checkpoint ReadCheckpoint() read,
// once the model is built: refused when the checkpoint was written for another model, or when
// the run's settings changed (CheckResumedSettings).
Status TorchTrainer::RestoreState(const std::string& resume, torch::serialize::InputArchive& resumed,
                                  const std::string& resumed_signature) {
  if (resumed_signature != model_->signature())
    return Status::InvalidArgument("checkpoint " + resume + " was written for the model '" +
                                   resumed_signature + "', but this config builds '" +
                                   model_->signature() + "'");
  bool fresh_optimizer = false;
  FLOWFEED_RETURN_IF_ERROR(CheckResumedSettings(resume, &fresh_optimizer));
  auto t0 = Clock::now();
  try {
    torch::serialize::InputArchive m, opt;
    resumed.read("model", m);
    model_->load(m);
    // Only the optimiser's state (momentum buffers, moments) is taken: its hyper-parameters
    // stay the config's. LibTorch 1.13's load leaves them; 2.x's restores the saved ones, so
    // the config's are put back (for an unchanged config they are the same; the learning rate
    // is set by the schedule before every step either way).
    if (!fresh_optimizer) {
      std::vector<std::unique_ptr<torch::optim::OptimizerOptions>> configured;
      for (auto& group : optimizer_->param_groups()) configured.push_back(group.options().clone());
      resumed.read("optimizer", opt);
      optimizer_->load(opt);
      auto& groups = optimizer_->param_groups();
      for (size_t i = 0; i < groups.size() && i < configured.size(); ++i)
        groups[i].set_options(std::move(configured[i]));
    }
    model_->to(device_);
    torch::Tensor rng;
    resumed.read("cpu_rng_state", rng);
    c10::IValue states;
    if (resumed.try_read("cpu_rng_states", states) && states.isTensorList()) {
      auto list = states.toTensorVector();
      if (size_t(options_.distributed.rank) < list.size()) rng = list[size_t(options_.distributed.rank)];
    }
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(rng);
  } catch (const std::exception& e) {
    return Status::Corrupt("checkpoint " + resume + ": cannot restore the model or optimiser: " +
                           FirstLine(e.what()));
  }
  report_.setup.push_back({"restore_state", SecondsSince(t0)});
  return Status::Ok();
}

// This run's settings against the checkpoint's record of its own (none in a checkpoint from an
// older flowfeed: warned about when read). A change is refused, naming each, unless the run
// accepts changes: then it is a warning, and a new optimiser type starts fresh
// (*fresh_optimizer), since the checkpoint's state belongs to the other type.
Status TorchTrainer::CheckResumedSettings(const std::string& resume, bool* fresh_optimizer) {
  *fresh_optimizer = false;
  if (!resumed_fingerprint_) return Status::Ok();
  const std::vector<FingerprintChange> changes = ChangesSince(*resumed_fingerprint_, fingerprint_);
  if (changes.empty()) return Status::Ok();
  std::string list;
  bool order_changed = false;
  for (const FingerprintChange& c : changes) {
    list += "\n  " + c.ToString();
    *fresh_optimizer = *fresh_optimizer || c.name == "optimizer.type";
    order_changed = order_changed || c.name.rfind("data.", 0) == 0 ||
                    c.name.rfind("sampler.", 0) == 0 || c.name == "pipeline.batch.size";
  }
  if (!accept_changes_)
    return Status::InvalidArgument(
        "checkpoint " + resume + " was written by a run with other settings (" +
        std::to_string(changes.size()) + " changed):" + list +
        "\nput them back to continue that run, or pass --resume-changed to continue with the "
        "new ones");
  std::string warning = "resuming " + resume + " with changed settings (--resume-changed):" + list;
  if (*fresh_optimizer)
    warning += "\nthe optimizer type changed, so the new optimizer starts fresh: the "
               "checkpoint's optimizer state (momentum, moments) is not used";
  if (order_changed && options_.start_position > 0)
    warning += "\nthe checkpoint is mid-epoch (sample " + std::to_string(options_.start_position) +
               " of epoch " + std::to_string(start_epoch_ + 1) +
               "'s order) and the order changed: the rest of that epoch may repeat or miss samples";
  report_.warnings.push_back(warning);
  return Status::Ok();
}

}  // namespace flowfeed
