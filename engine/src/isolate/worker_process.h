// isolate/worker_process.h (internal): the host's handle on one stage worker process
// (protocol.h): spawning it, one sample's round trip with a time limit, and its end.
//
// Thread-safety: none; the pool (isolated_stage.h) hands each handle to one thread at a time.
// Ownership: the handle owns the process (killed and reaped when the handle goes), its socket
// and its shared memory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "flowfeed/sample.h"
#include "flowfeed/stage.h"
#include "flowfeed/status.h"
#include "isolate/protocol.h"

namespace flowfeed::isolate {

// The worker program: $FLOWFEED_STAGE_WORKER when set, else flowfeed-stage-worker beside the
// running program, beside the library the engine was loaded from (the Python module's
// folder), in the build folder, in the install's bin folder. NotFound naming every
// place looked at.
Result<std::string> FindStageWorker();

class WorkerProcess {
 public:
  // Spawns `program` (posix_spawn: the host has threads; a bare fork of it could inherit a
  // lock held by one of them) in its own process group (a Ctrl-C reaches the host, which
  // stops its workers), sends `setup` (EncodeSetup) and waits up to `timeout_ms` for the worker
  // to build the stage. An error says why: the stage's own error (a plugin that will not load),
  // or how the worker ended. `cancel_fd` readable means "give up now" (PipelineImpl::Cancel).
  static Result<std::unique_ptr<WorkerProcess>> Start(const std::string& program,
                                                      const std::string& setup,
                                                      int64_t timeout_ms, int cancel_fd);
  ~WorkerProcess();

  // Runs the stage on `s` in the worker: copies it in, waits up to `timeout_ms` for the answer,
  // copies the result back (into scratch, then swapped in). The stage's own error comes back as
  // it is; a crash, an exit, a timeout (the worker is then killed) or a cancel comes back as an
  // error saying so, and the worker is gone (alive() false).
  Status Run(Sample& s, const StageContext& ctx, int64_t timeout_ms);

  bool alive() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

 private:
  WorkerProcess() = default;
  // Waits for a reply; on anything else the worker is ended (killed if need be) and reaped.
  Status Receive(Reply* reply, int64_t timeout_ms);
  // Kills (when `kill`) and reaps the worker; returns how it ended ("killed by SIGSEGV").
  std::string End(bool kill);

  pid_t pid_ = -1;
  int socket_ = -1;
  int memfd_ = -1;
  int cancel_fd_ = -1;
  std::unique_ptr<SharedMemory> memory_;
};

}  // namespace flowfeed::isolate
