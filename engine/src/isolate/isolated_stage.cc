// isolate/isolated_stage.cc: the pool of stage workers behind an `isolate: process` entry.
#include "isolate/isolated_stage.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

namespace flowfeed::isolate {
namespace {
// A worker's start includes loading the plugin: not held to a tight timeout_ms.
constexpr int64_t kStartTimeoutMs = 30000;
}  // namespace

Result<std::unique_ptr<IsolatedStage>> IsolatedStage::Open(const StageInfo& info,
                                                           const StageSpec& spec,
                                                           const std::string& name, int workers) {
  std::unique_ptr<IsolatedStage> stage(new IsolatedStage());
  stage->name_ = name;
  stage->origin_ = info.origin;
  stage->timeout_ms_ = spec.timeout_ms;
  stage->free_slots_ = std::max(1, workers);
  Result<std::string> program = FindStageWorker();
  if (!program.ok()) return program.status().WithContext(stage->Describe());
  stage->program_ = program.value();
  StageSetup setup{spec.type, info.origin == "built-in" ? "" : info.origin, spec.params};
  stage->setup_ = EncodeSetup(setup);
  if (::pipe2(stage->cancel_pipe_, O_CLOEXEC) != 0)
    return Status::IoError(stage->Describe() + ": cannot make a pipe");
  Result<std::unique_ptr<WorkerProcess>> first =
      WorkerProcess::Start(stage->program_, stage->setup_,
                           std::max(stage->timeout_ms_, kStartTimeoutMs), stage->cancel_pipe_[0]);
  if (!first.ok()) return first.status().WithContext(stage->Describe());
  stage->free_slots_ -= 1;
  stage->idle_.push_back(std::move(first.value()));
  return stage;
}

IsolatedStage::~IsolatedStage() {
  idle_.clear();  // ~WorkerProcess kills and reaps; busy ones are back by now (no caller left)
  for (int fd : cancel_pipe_)
    if (fd >= 0) ::close(fd);
}

std::string IsolatedStage::Describe() const {
  std::string s = "isolated stage '" + name_ + "'";
  if (origin_ != "built-in") s += " (plugin " + origin_ + ")";
  return s;
}

void IsolatedStage::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return;
  cancelled_ = true;
  const char byte = 1;
  (void)!::write(cancel_pipe_[1], &byte, 1);  // never read: stays readable for every poll
  changed_.notify_all();
}

bool IsolatedStage::broken() const {
  std::lock_guard<std::mutex> lock(mu_);
  return start_failures_ >= kStartFailures;
}

Status IsolatedStage::Take(std::unique_ptr<WorkerProcess>* worker) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return cancelled_ || !idle_.empty() || free_slots_ > 0; });
  if (cancelled_) return Status::Cancelled(Describe() + ": the run was cancelled");
  if (!idle_.empty()) {
    *worker = std::move(idle_.back());
    idle_.pop_back();
  } else {
    --free_slots_;
  }
  return Status::Ok();
}

void IsolatedStage::Give(std::unique_ptr<WorkerProcess> worker) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (worker && worker->alive())
      idle_.push_back(std::move(worker));
    else
      ++free_slots_;
  }
  changed_.notify_one();
  // A dead worker's handle ends here, outside the lock (it was reaped already).
}

Status IsolatedStage::Process(Sample& sample, const StageContext& ctx) {
  std::unique_ptr<WorkerProcess> worker;
  FLOWFEED_RETURN_IF_ERROR(Take(&worker));
  if (!worker) {
    Result<std::unique_ptr<WorkerProcess>> started = WorkerProcess::Start(
        program_, setup_, std::max(timeout_ms_, kStartTimeoutMs), cancel_pipe_[0]);
    {
      std::lock_guard<std::mutex> lock(mu_);
      start_failures_ = started.ok() ? 0 : start_failures_ + 1;
    }
    if (!started.ok()) {
      Give(nullptr);
      return started.status().WithContext(Describe() + ": cannot start a worker for sample " +
                                          std::to_string(sample.index));
    }
    worker = std::move(started.value());
  }
  const pid_t pid = worker->pid();
  Status st = worker->Run(sample, ctx, timeout_ms_);
  const bool died = !worker->alive();
  Give(std::move(worker));
  if (st.ok() || !died) return st;  // the stage's own error comes back as it is
  return st.WithContext(Describe() + ", worker process " + std::to_string(pid) + ", sample " +
                        std::to_string(sample.index) + " (" + std::string(sample.source) + ")");
}

}  // namespace flowfeed::isolate
