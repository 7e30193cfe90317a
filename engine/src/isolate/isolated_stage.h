// isolate/isolated_stage.h (internal): the Stage the pipeline builds for an entry with
// `isolate: process` (options.h StageSpec). Each Process() runs the real stage in a worker
// process of a pool (worker_process.h), over shared memory, so that a crash, an exit() or a
// hang (timeout_ms) inside the stage is an error for that sample alone: the sample is skipped
// or the run stops, as the entry's on_error says, and the worker is replaced by the next sample
// that needs one. The output is byte-identical to the in-process stage's: the worker is given
// the same StageContext (seed, epoch, index, stage index).
//
// Thread-safety: Process() may run on many threads; each caller gets a worker of its own (the
// pool holds up to `workers`, started as needed; a caller waits while all are busy), so a stage
// that is not thread-safe runs on many samples at once here. Cancel() may run on any thread.
// It claims none of fusion.h's interfaces: an isolated stage is never fused.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "flowfeed/options.h"
#include "flowfeed/registry.h"
#include "flowfeed/stage.h"
#include "isolate/worker_process.h"

namespace flowfeed::isolate {

class IsolatedStage : public Stage {
 public:
  // Finds the worker program and starts one worker, so that a missing program or a plugin the
  // worker cannot load is an error now, at Pipeline::Open, naming the stage and the plugin.
  static Result<std::unique_ptr<IsolatedStage>> Open(const StageInfo& info, const StageSpec& spec,
                                                     const std::string& name, int workers);
  ~IsolatedStage() override;  // kills and reaps every worker

  Status Process(Sample& sample, const StageContext& ctx) override;

  // Ends waits and round trips in progress (they return Cancelled) and refuses new ones.
  void Cancel();
  // True once workers failed to start kStartFailures times in a row: every later sample would
  // fail the same way, so the run stops whatever on_error says.
  bool broken() const;

  static constexpr int kStartFailures = 3;

 private:
  IsolatedStage() = default;
  // A worker for the caller: an idle one, or nullptr with a slot to start one in; Cancelled.
  Status Take(std::unique_ptr<WorkerProcess>* worker);
  // Back to the pool; a dead or missing worker frees its slot.
  void Give(std::unique_ptr<WorkerProcess> worker);
  std::string Describe() const;  // "isolated stage 'x' (plugin /p/x.so)"

  std::string name_, origin_, program_, setup_;
  int64_t timeout_ms_ = 0;
  int cancel_pipe_[2] = {-1, -1};  // readable once cancelled

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<std::unique_ptr<WorkerProcess>> idle_;
  int free_slots_ = 0;  // workers that may still be started
  int start_failures_ = 0;
  bool cancelled_ = false;
};

}  // namespace flowfeed::isolate
