// py_pipeline.cc: PyPipeline (py_pipeline.h).
#include "py_pipeline.h"

#include <Python.h>

#include "flowfeed/config.h"

namespace flowfeed::python {
namespace {

// Batches the Python front itself keeps alive at the moment it asks for the next one: the
// loop's variables still name the previous batch's tensors, and a device copy may be in
// flight. The pipeline gets that many batches more than `prefetch`, so a loop that holds only
// these never stalls it and never needs a copy.
constexpr int kHeldByTheLoop = 2;

// Waits in slices so that Ctrl-C is noticed while the GIL is released.
constexpr double kWaitSlice = 0.1;

void ThrowIfError(const Status& s) {
  if (!s.ok()) throw StatusError{s};
}

// Releases the GIL for its lifetime.
class WithoutGil {
 public:
  WithoutGil() : state_(PyEval_SaveThread()) {}
  ~WithoutGil() { PyEval_RestoreThread(state_); }

 private:
  PyThreadState* state_;
};

// A metrics log that failed: a RuntimeWarning, from whichever call noticed (all hold the GIL).
void WarnMetricsFailure(const std::string& path, const Status& error) {
  const std::string text = "flowfeed: metrics log " + path + ": " + error.message() +
                           "; no more records go to it";
  if (PyErr_WarnEx(PyExc_RuntimeWarning, text.c_str(), 1) != 0) PyErr_Clear();
}

}  // namespace

PyPipeline::PyPipeline(const std::string& path, const std::string& text,
                       const std::string& display_name, const std::vector<std::string>& overrides,
                       const std::vector<std::string>& plugins)
    : metrics_(&WarnMetricsFailure) {
  RegisterBuiltinStages(&registry_);
  for (const std::string& p : plugins) {
    Result<LoadedPlugin> loaded = LoadPlugin(p, &registry_);
    ThrowIfError(loaded.status());
    plugins_.push_back(std::move(loaded.value()));
  }
  Result<PipelineOptions> r =
      path.empty() ? ParseConfig(text, display_name, overrides, registry_)
                   : LoadConfigWithPlugins(path, overrides, &registry_, nullptr, &plugins_);
  ThrowIfError(r.status());
  options_ = std::move(r.value());
  ThrowIfError(ApplyDistributedEnvironment(&options_));
}

PyPipeline::~PyPipeline() {
  Close();
  metrics_.Close();
}

void PyPipeline::SetMetrics(const MetricsDestinations& where) {
  ThrowIfError(metrics_.Open(where, MakeProvenance(options_)));
}

void PyPipeline::LogEpochs() {
  if (metrics_.empty() || !pipeline_) return;
  for (const EpochStats& e : pipeline_->stats().epochs) {
    if (e.epoch <= last_logged_epoch_) continue;
    metrics_.Write(PipelineEpochRecord(e, 0));
    last_logged_epoch_ = e.epoch;
  }
}

void PyPipeline::SetEpochs(int epochs) {
  Close();
  options_.epochs = epochs;
}

void PyPipeline::SetStart(int epoch, int64_t position, int64_t batch) {
  Close();
  options_.start_epoch = epoch;
  options_.start_position = position;
  options_.start_batch = batch;
}

void PyPipeline::Open() {
  PipelineOptions o = options_;
  o.prefetch += kHeldByTheLoop;
  copy_threshold_ = options_.prefetch + 1;
  Result<std::unique_ptr<Pipeline>> opened = [&] {
    WithoutGil unlocked;  // listing a large folder takes a while
    return Pipeline::Open(o, registry_);
  }();
  ThrowIfError(opened.status());
  pipeline_ = std::move(opened.value());
}

Pipeline& PyPipeline::pipeline() {
  if (!pipeline_) Open();
  return *pipeline_;
}

void PyPipeline::Close() {
  if (!pipeline_) return;
  if (PyGILState_Check()) {
    WithoutGil unlocked;  // joining the graph may wait for a stage in progress
    pipeline_.reset();
  } else {
    pipeline_.reset();
  }
}

std::shared_ptr<Handout> PyPipeline::Next() {
  Pipeline& p = pipeline();
  BatchPtr batch;
  while (true) {
    Status st;
    bool timed_out = false;
    {
      WithoutGil unlocked;
      st = p.NextFor(&batch, kWaitSlice, &timed_out);
    }
    ThrowIfError(st);
    if (!timed_out) break;
    // A KeyboardInterrupt (or another handler's exception) propagates; the wait is resumable.
    if (PyErr_CheckSignals() != 0) throw PythonErrorSet{};
  }
  if (!batch) {
    LogEpochs();
    return nullptr;
  }
  // The user holds this many zero-copy batches: one more could leave the pipeline too few
  // tokens for the batch after it.
  if (counter_->held.load(std::memory_order_relaxed) >= copy_threshold_)
    return Handout::Copy(*batch, counter_);
  return std::make_shared<Handout>(std::move(batch), counter_);
}

}  // namespace flowfeed::python
