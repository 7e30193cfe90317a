// fuzz/fuzz_config.cc: the YAML config loader (ParseConfig) on arbitrary text, training
// sections (model, optimizer, schedule, loss, eval, checkpoint) included.
//
// Leading lines "#set KEY.PATH=VALUE" are also passed as overrides (`--set`), so the fuzzer
// reaches ApplyOverride; to YAML they are comments.
//
// Invariants besides "no crash, no sanitizer report":
//   - a refused config has an InvalidArgument status and at least one error record, each with
//     a message;
//   - an accepted config builds every stage it names (through the registry's factories, as
//     Pipeline::Open does), and its cache plan and epoch length can be computed.
#include <cstdint>
#include <string>
#include <vector>

#include "flowfeed/config.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "fuzz_util.h"

namespace flowfeed {
namespace {

const StageRegistry& Registry() {
  static const StageRegistry* registry = [] {
    auto* r = new StageRegistry;
    RegisterBuiltinStages(r);
    return r;
  }();
  return *registry;
}

void BuildStages(const std::vector<StageSpec>& specs, const StageRegistry& registry) {
  for (const StageSpec& spec : specs) {
    const StageInfo* info = registry.Find(spec.type);
    FUZZ_CHECK(info, "accepted an unknown stage type '%s'", spec.type.c_str());
    Result<std::unique_ptr<Stage>> stage = info->factory(spec.params);
    // A refusal is not a crash, but the config should have caught it: report it loudly in
    // replay runs, where it is reproducible.
    FUZZ_CHECK(stage.ok(), "the config accepted %s, whose factory refuses it: %s",
               spec.type.c_str(), stage.status().ToString().c_str());
  }
}

}  // namespace
}  // namespace flowfeed

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flowfeed;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  for (size_t pos = 0; text.compare(pos, 5, "#set ") == 0;) {
    const size_t end = text.find('\n', pos);
    overrides.push_back(text.substr(pos + 5, end == std::string::npos ? std::string::npos
                                                                       : end - pos - 5));
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  const StageRegistry& registry = Registry();
  std::vector<ConfigError> errors;
  Result<PipelineOptions> r = ParseConfig(text, "fuzz.yaml", overrides, registry, &errors);
  FUZZ_LOG("%s", r.ok() ? "accepted" : r.status().ToString().c_str());
  if (!r.ok()) {
    FUZZ_CHECK(r.status().code() == StatusCode::kInvalidArgument, "refused with %s",
               r.status().ToString().c_str());
    FUZZ_CHECK(!errors.empty(), "refused without error records: %s",
               r.status().ToString().c_str());
    for (const ConfigError& e : errors) {
      FUZZ_CHECK(!e.message.empty(), "an error record without a message");
      (void)e.ToString();
    }
    return 0;
  }
  FUZZ_CHECK(errors.empty(), "accepted with %zu error records", errors.size());
  const PipelineOptions& o = r.value();
  BuildStages(o.pipeline, registry);
  if (o.train.eval.enabled) BuildStages(o.train.eval.pipeline, registry);
  Result<CachePlacement> plan = PlanCache(o, registry);
  FUZZ_CHECK(plan.ok(), "accepted a config whose cache cannot be placed: %s",
             plan.status().ToString().c_str());
  (void)StageNames(o.pipeline);
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(7), int64_t(1000003)}) {
    const int64_t len = EpochLength(o, n);
    FUZZ_CHECK(len >= 0 && len <= n + 1, "EpochLength(%lld) = %lld", static_cast<long long>(n),
               static_cast<long long>(len));
  }
  return 0;
}
