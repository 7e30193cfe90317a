// pipeline/pipeline.cc: Pipeline::Open, the pipeline's front door: checks the options, builds
// the stages, plans the cache and the fusions, opens the source and the cache, and starts a
// PipelineImpl (pipeline_impl.h). Runs on the caller's thread; nothing here outlives Open().
#include "flowfeed/pipeline.h"

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "flowfeed/cache.h"
#include "flowfeed/source.h"
#include "flowfeed/source_registry.h"
#include "flowfeed/util/clock.h"
#include "isolate/isolated_stage.h"
#include "pipeline/graph.h"
#include "pipeline/pipeline_impl.h"
#include "pipeline/plan.h"
#include "pipeline/step.h"

namespace flowfeed {
namespace {

// Fills parameters the caller left out from the schema's defaults (the config parser already
// does this; options built in code may not have).
Status CompleteParams(const StageInfo& info, StageSpec* spec, int position) {
  for (const ParamSpec& p : info.params) {
    if (spec->params.Has(p.name)) continue;
    if (!p.default_value)
      return Status::InvalidArgument("pipeline[" + std::to_string(position) + "] (" + info.name +
                                     "): missing required parameter '" + p.name + "'");
    spec->params.Set(p.name, *p.default_value);
  }
  for (const auto& [name, value] : spec->params.values())
    if (!info.FindParam(name))
      return Status::InvalidArgument("pipeline[" + std::to_string(position) + "] (" + info.name +
                                     "): unknown parameter '" + name + "'");
  return Status::Ok();
}

// The pipeline's steps: "read", then one per entry of options->pipeline, its parameters
// completed from the stage's schema (written back into *options). InvalidArgument for an
// unknown stage type, a bad parameter, or encoded files without a decode stage.
Result<std::vector<Step>> BuildSteps(PipelineOptions* options, const StageRegistry& registry,
                                     int threads) {
  std::vector<Step> steps;
  steps.push_back(Step{"read", "read", options->source.on_error, 0, nullptr});
  bool has_decode = false;
  const std::vector<std::string> names = StageNames(options->pipeline);
  for (size_t i = 0; i < options->pipeline.size(); ++i) {
    StageSpec& spec = options->pipeline[i];
    const StageInfo* info = registry.Find(spec.type);
    if (!info)
      return Status::InvalidArgument("pipeline[" + std::to_string(i) + "]: unknown stage type '" +
                                     spec.type + "'");
    FLOWFEED_RETURN_IF_ERROR(CompleteParams(*info, &spec, int(i)));
    const std::string where = "pipeline[" + std::to_string(i) + "] (" + spec.type + ")";
    if (spec.type == "decode") has_decode = true;
    if (spec.isolate == "process") {
      // One worker per sample the step may run at once; each worker runs one sample at a time,
      // so a stage that is not thread-safe may still have many.
      Result<std::unique_ptr<isolate::IsolatedStage>> isolated = isolate::IsolatedStage::Open(
          *info, spec, names[i], spec.concurrency > 0 ? spec.concurrency : threads);
      if (!isolated.ok()) return isolated.status().WithContext(where);
      isolate::IsolatedStage* raw = isolated.value().get();
      steps.push_back(Step{names[i], spec.type, spec.on_error, spec.concurrency,
                           std::move(isolated.value())});
      steps.back().isolated = raw;
      steps.back().origin = info->origin;
      continue;  // from_plugin stays false: the host never hands the plugin's code an image
    }
    Result<std::unique_ptr<Stage>> stage = info->factory(spec.params);
    if (!stage.ok()) return stage.status().WithContext(where);
    int concurrency = info->traits.thread_safe ? spec.concurrency : 1;
    steps.push_back(Step{names[i], spec.type, spec.on_error, concurrency, std::move(stage.value())});
    steps.back().origin = info->origin;
    steps.back().from_plugin = info->origin != "built-in";
  }
  if (!SourceGivesPixels(options->source.type) && !has_decode)
    return Status::InvalidArgument("pipeline: a " + options->source.type +
                                   " source gives encoded files; add {type: decode} to the pipeline");
  return steps;
}

// The cache of the planned prefix, keyed by what its contents depend on.
Result<std::unique_ptr<SampleCache>> OpenCache(const PipelineOptions& options,
                                               const Source& source, const CachePlacement& plan,
                                               const std::vector<Step>& steps,
                                               int region_in_cache) {
  Result<CacheFingerprint> fp = PrefixFingerprint(source, options, plan, steps);
  if (!fp.ok()) return fp.status();
  // A region-decoded, DCT-scaled resize is not bit-identical to the whole-image one.
  if (region_in_cache > 0)
    fp.value().parts.emplace_back("fused", "region decode into " + steps[size_t(region_in_cache)].name);
  Result<std::unique_ptr<SampleCache>> opened =
      SampleCache::Open(options.cache, source.size(), fp.value());
  if (!opened.ok()) return opened.status().WithContext("cache");
  return std::move(opened.value());
}

// Asks the OS to forget the file's cached pages, so the next read comes from storage.
void EvictFromPageCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

}  // namespace

Result<std::unique_ptr<Pipeline>> Pipeline::Open(const PipelineOptions& options_in,
                                                 const StageRegistry& registry) {
  uint64_t t0 = NowNs();
  PipelineOptions options = options_in;
  // The same checks the config reader made (options built in code have had none).
  FLOWFEED_RETURN_IF_ERROR(Validate(options));
  const DistributedOptions& dist = options.distributed;
  // Ranks on one host must not share a disk cache: each keeps what its own part computed.
  if (dist.world_size > 1 && !options.cache.path.empty())
    options.cache.path += "/rank" + std::to_string(dist.rank);
  int threads = options.threads > 0 ? options.threads : DefaultThreads();

  Result<std::vector<Step>> built = BuildSteps(&options, registry, threads);
  if (!built.ok()) return built.status();
  std::vector<Step>& steps = built.value();
  Result<CachePlacement> plan = PlanCache(options, registry);
  if (!plan.ok()) return plan.status();
  FLOWFEED_RETURN_IF_ERROR(KeepFilesUnderDctScaling(options, steps, &plan.value()));

  Result<std::unique_ptr<Source>> source = OpenSource(options.source);
  if (!source.ok()) return source.status();
  if (source.value()->size() == 0)
    return Status::NotFound("source has no samples: " + source.value()->Describe());
  FLOWFEED_RETURN_IF_ERROR(ChooseWhatToKeep(options, *source.value(), steps, &plan.value()));
  const int region_in_cache = PlanFusion(options, plan.value(), &steps);
  const int64_t length = EpochLength(options, source.value()->size());
  if (length == 0)
    return Status::InvalidArgument("distributed: " + std::to_string(source.value()->size()) +
                                   " samples leave nothing for " + std::to_string(dist.world_size) +
                                   " ranks with uneven: drop");
  if (options.start_position >= length)
    return Status::InvalidArgument("start_position " + std::to_string(options.start_position) +
                                   " is past the epoch's " + std::to_string(length) + " samples");

  std::vector<std::string> warnings;
  if (plan->frozen) warnings.push_back(plan->note);
  std::unique_ptr<SampleCache> cache;
  if (plan->enabled) {
    Result<std::unique_ptr<SampleCache>> opened =
        OpenCache(options, *source.value(), plan.value(), steps, region_in_cache);
    if (!opened.ok()) return opened.status();
    cache = std::move(opened.value());
  }
  if (options.cold) {
    for (const std::string& f : source.value()->Files()) EvictFromPageCache(f);
    if (cache) cache->EvictFromPageCache();
  }

  auto p = std::make_unique<PipelineImpl>(options, std::move(source.value()), std::move(steps),
                                          threads, std::move(cache), plan.value());
  p->Start(double(NowNs() - t0) * 1e-9, std::move(warnings));
  return std::unique_ptr<Pipeline>(std::move(p));
}

}  // namespace flowfeed
