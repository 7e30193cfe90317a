// config/validate.cc: Validate (options.h) from the option tables' ranges, plus the rules that
// relate fields to each other.
#include <sstream>
#include <string>
#include <vector>

#include "config/option_table.h"
#include "flowfeed/options.h"
#include "flowfeed/source_registry.h"
#include "flowfeed/util/text_format.h"
#include "pipeline/graph.h"

namespace flowfeed {
namespace config {
namespace {

// A numeric field's value, for range checks; nothing for other fields.
std::optional<double> NumberOf(const FieldRef& f) {
  if (auto p = std::get_if<int*>(&f)) return double(**p);
  if (auto p = std::get_if<int64_t*>(&f)) return double(**p);
  if (auto p = std::get_if<double*>(&f)) return **p;
  return std::nullopt;
}

// What is wrong with one field ("must be >= 1"), or "". The default value always passes: some
// defaults are sentinels a config may not write (eval.batch_size 0: the training batch size).
std::string CheckField(const OptionInfo& row, const FieldRef& value, const FieldRef& def) {
  switch (row.kind) {
    case Kind::kInt:
    case Kind::kNumber:
    case Kind::kBytes: {
      const std::optional<double> v = NumberOf(value);
      if (!v || *v == NumberOf(def) || InInterval(*v, row.lo, row.hi)) return "";
      return "must be" + IntervalText(row.lo, row.hi, row.kind == Kind::kBytes);
    }
    case Kind::kChoice: {
      // Enum fields hold a valid value by construction; strings need checking.
      const std::string* const* s = std::get_if<std::string*>(&value);
      if (!s || **s == *std::get<std::string*>(def)) return "";
      const std::vector<std::string> names = row.ChoiceNames();
      for (const std::string& n : names)
        if (**s == n) return "";
      return "must be one of " + text::Join(names, ", ") + " (it is \"" + **s + "\")";
    }
    case Kind::kIntList: {
      for (int v : *std::get<std::vector<int>*>(value))
        if (!InInterval(v, row.lo, row.hi)) return "items must be" + IntervalText(row.lo, row.hi);
      return "";
    }
    case Kind::kSkipBudget: {
      const SkipBudget& b = *std::get<SkipBudget*>(value);
      if (b.count >= 0 || (b.count == -1 && b.fraction >= 0)) return "";
      return "must be a count >= 0, or count -1 with a fraction >= 0";
    }
    default:
      return "";
  }
}

// Checks every row of S's table against `value`, naming problems "<prefix><key> ...".
template <typename S>
void CheckTable(const S& value, const std::string& prefix, std::vector<std::string>* problems) {
  S copy = value;  // the rows reach their fields through non-const references
  S defaults;
  for (const OptionSpec<S>& row : Options<S>()) {
    const std::string problem = CheckField(row, row.ref(copy), row.ref(defaults));
    if (!problem.empty()) problems->push_back(prefix + row.key + " " + problem);
  }
}

// Pipeline::Open's own checks of what a run resumes from and which rank it is, in its words.
void CheckRun(const PipelineOptions& o, std::vector<std::string>* problems) {
  if (o.start_epoch < 0 || o.start_epoch >= o.epochs)
    problems->push_back("start_epoch must be in [0, epochs)");
  if (o.start_position < 0 || o.start_batch < 0)
    problems->push_back("start_position and start_batch must be >= 0");
  const DistributedOptions& d = o.distributed;
  if (d.world_size < 1 || d.rank < 0 || d.rank >= d.world_size)
    problems->push_back("distributed: rank " + std::to_string(d.rank) +
                        " is not in [0, world_size " + std::to_string(d.world_size) + ")");
}

// Each key alone is bounded by its row; their product is bounded here. The pipeline keeps a ring
// slot, with its image buffers, for every sample it may hold (PipelineImpl's tokens), so
// `prefetch: 1000` with `batch.size: 1000` would ask for a million slots before the first
// sample. The eval pipeline prefetches one batch of eval.batch_size.
void CheckSamplesInFlight(const PipelineOptions& o, std::vector<std::string>* problems) {
  const int threads = o.threads > 0 ? o.threads : DefaultThreads();
  const int64_t working =
      o.max_in_flight > 0 ? o.max_in_flight : 4 * int64_t(std::min(threads, kMaxThreads));
  const std::string working_text =
      o.max_in_flight > 0 ? "max_in_flight " + std::to_string(o.max_in_flight)
                          : "4 x threads (" + std::to_string(threads) + ")";
  const int64_t train = int64_t(o.prefetch) * int64_t(o.batch.size) + working;
  if (train > kMaxSamplesInFlight)
    problems->push_back("prefetch x batch.size + max_in_flight must be <= " +
                        std::to_string(kMaxSamplesInFlight) + " samples in flight (it is " +
                        std::to_string(o.prefetch) + " x " + std::to_string(o.batch.size) +
                        " + " + working_text + " = " + std::to_string(train) +
                        "); lower prefetch or batch.size");
  if (o.train.eval.enabled && o.train.eval.batch_size > 0) {
    const int64_t eval = int64_t(o.train.eval.batch_size) + working;
    if (eval > kMaxSamplesInFlight)
      problems->push_back("eval.batch_size + max_in_flight must be <= " +
                          std::to_string(kMaxSamplesInFlight) + " samples in flight (it is " +
                          std::to_string(o.train.eval.batch_size) + " + " + working_text +
                          " = " + std::to_string(eval) + ")");
  }
}

// Keys another key makes necessary, and keys that rule each other out.
void CheckRelations(const PipelineOptions& o, std::vector<std::string>* problems) {
  for (const SourceOptions* s : {&o.source, &o.train.eval.source}) {
    const std::string at = s == &o.source ? "source." : "eval.source.";
    if (s == &o.train.eval.source && !o.train.eval.enabled) continue;
    const SourceInfo* info = FindSourceInfo(s->type);
    if (info == nullptr) continue;  // an unknown type: the table check named it
    SourceOptions copy = *s;  // the rows reach their fields through non-const references
    for (const OptionSpec<SourceOptions>& row : Options<SourceOptions>()) {
      // root may be empty (the current directory) when given; other required keys may not.
      if (row.key == "root" || !info->Requires(row.key)) continue;
      const FieldRef ref = row.ref(copy);
      const std::string* const* field = std::get_if<std::string*>(&ref);
      if (field != nullptr && (*field)->empty())
        problems->push_back(at + row.key + " is required when " + at + "type is " + s->type);
    }
  }
  if (o.cache.mode == CacheMode::kDisk && o.cache.path.empty())
    problems->push_back("cache.path is required when cache.mode is disk");
  const OptimizerOptions& opt = o.train.optimizer;
  if (opt.type == "sgd" && opt.momentum == 0 && opt.nesterov)
    problems->push_back("optimizer.nesterov needs momentum > 0");
  const StageSpec stage_defaults;
  for (size_t i = 0; i < o.pipeline.size(); ++i)
    if (o.pipeline[i].isolate != "process" && o.pipeline[i].timeout_ms != stage_defaults.timeout_ms)
      problems->push_back("pipeline[" + std::to_string(i) + "].timeout_ms needs isolate: process");
  CheckSamplesInFlight(o, problems);
}

}  // namespace
}  // namespace config

Status Validate(const PipelineOptions& options) {
  using config::CheckTable;
  std::vector<std::string> problems;
  CheckTable(options.batch, "batch.", &problems);  // first, as Pipeline::Open checks it first
  CheckTable(options, "", &problems);
  config::CheckRun(options, &problems);
  CheckTable(options.source, "source.", &problems);
  for (size_t i = 0; i < options.pipeline.size(); ++i)
    CheckTable(options.pipeline[i], "pipeline[" + std::to_string(i) + "].", &problems);
  CheckTable(options.cache, "cache.", &problems);
  CheckTable(options.distributed, "distributed.", &problems);
  const TrainOptions& train = options.train;
  CheckTable(train.model, "model.", &problems);
  CheckTable(train.optimizer, "optimizer.", &problems);
  CheckTable(train.schedule, "schedule.", &problems);
  CheckTable(train, "loss.", &problems);
  if (train.eval.enabled) {
    CheckTable(train.eval, "eval.", &problems);
    CheckTable(train.eval.source, "eval.source.", &problems);
    for (size_t i = 0; i < train.eval.pipeline.size(); ++i)
      CheckTable(train.eval.pipeline[i], "eval.pipeline[" + std::to_string(i) + "].", &problems);
  }
  config::CheckRelations(options, &problems);
  if (problems.empty()) return Status::Ok();
  return Status::InvalidArgument(text::Join(problems, "\n"));
}

}  // namespace flowfeed
