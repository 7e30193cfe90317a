// py_pipeline.h: the engine's Pipeline as the Python module sees it (flowfeed._Pipeline).
//
// It holds the options a config gave, opens the pipeline when the first batch is asked for (so
// that load_state_dict() can set the resume point first), and hands batches out as DLPack
// tensors (handout.h). While it waits for a batch it releases the GIL, in slices of 0.1 s,
// between which it checks for Ctrl-C (PyErr_CheckSignals): a KeyboardInterrupt leaves the
// pipeline as it was, and the next call goes on waiting.
//
// The Python side (python/flowfeed/__init__.py) turns the capsules into torch tensors and keeps
// the resume state; this class keeps no Python objects, except a batch memory's allocate
// function (py_batch_memory.h), which manages its own references.
//
// Failure: every error is a flowfeed::Status, raised by the binding as a Python exception
// (module.cc): a config problem before anything runs, a sample's failure under on_error: fail
// from next().
//
// Threads: the Python thread that uses it (one at a time, under the GIL); the pipeline's own
// threads run in the background.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "flowfeed/metrics_log.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/plugin.h"
#include "flowfeed/registry.h"
#include "handout.h"

namespace flowfeed::python {

class PyPipeline {
 public:
  // From a file (`path`), or from YAML text (`text`, named `display_name` in messages) when
  // `path` is empty; `overrides` as `--set`; `plugins` are loaded first (text configs: their
  // `plugins:` entries are passed here by the Python side). Throws StatusError.
  PyPipeline(const std::string& path, const std::string& text, const std::string& display_name,
             const std::vector<std::string>& overrides, const std::vector<std::string>& plugins);
  ~PyPipeline();

  const PipelineOptions& options() const { return options_; }
  void SetEpochs(int epochs);
  // Where batches are collated (flowfeed/batch_memory.h; py_batch_memory.h for memory from a
  // Python function); closes a running pipeline.
  void SetBatchMemory(std::shared_ptr<BatchAllocator> memory) {
    Close();
    options_.batch_memory = std::move(memory);
  }
  // How the run was started, for the report's provenance (Python: the interpreter's sys.argv).
  void SetCommandLine(const std::string& line) { options_.command_line = line; }
  // Where the next open starts (a state_dict()); closes a running pipeline.
  void SetStart(int epoch, int64_t position, int64_t batch);
  // Opens the metrics logs (flowfeed/metrics_log.h): each epoch's pipeline figures are written
  // when the epoch ends. Throws StatusError naming the argument and file; a log that fails
  // later is dropped with a RuntimeWarning.
  void SetMetrics(const MetricsDestinations& where);

  // The next batch of the epoch being delivered, or null at its end (once). Waits with the GIL
  // released (the caller holds it). Opens the pipeline on first use.
  std::shared_ptr<Handout> Next();

  bool opened() const { return pipeline_ != nullptr; }
  Pipeline& pipeline();  // opens it when needed
  // Stops and joins the pipeline (GIL released meanwhile); Next() reopens from the start point.
  void Close();

  const HandoutCounter& counter() const { return *counter_; }
  // Zero-copy batches a user may hold before the next is handed out as a copy.
  int64_t copy_threshold() const { return copy_threshold_; }

 private:
  void Open();
  // Writes the epochs that ended since the last call to the metrics logs.
  void LogEpochs();

  StageRegistry registry_;
  std::vector<LoadedPlugin> plugins_;
  PipelineOptions options_;
  std::unique_ptr<Pipeline> pipeline_;
  std::shared_ptr<HandoutCounter> counter_ = std::make_shared<HandoutCounter>();
  int64_t copy_threshold_ = 0;
  MetricsSinks metrics_;
  int last_logged_epoch_ = 0;
};

// A Status that is not OK, thrown to the binding, which raises the matching Python exception.
struct StatusError {
  Status status;
};
// A Python exception is already set (Ctrl-C's KeyboardInterrupt): the binding lets it propagate.
struct PythonErrorSet {};

}  // namespace flowfeed::python
