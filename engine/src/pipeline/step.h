// pipeline/step.h (internal): one entry of the running pipeline.
//
// Threads: built by Pipeline::Open (fusion marked by PlanFusion) and constant from the graph's
// start; the stage objects are then called from any worker, as their traits allow.
#pragma once

#include <memory>
#include <string>

#include "flowfeed/options.h"
#include "flowfeed/stage.h"
#include "stages/fusion.h"

namespace flowfeed {

namespace isolate {
class IsolatedStage;
}

struct Step {
  std::string name;
  std::string type;
  OnError on_error = OnError::kSkip;
  int concurrency = 0;  // 0: unlimited
  std::unique_ptr<Stage> stage;  // null for "read"
  // Where the stage's code comes from: StageInfo::origin, "built-in" or the plugin file.
  std::string origin = "built-in";
  bool from_plugin = false;  // origin is a plugin file: its code may ignore Image::shared()
  // Fusion (see fusion.h), planned by PlanFusion: a decoder that region-decodes for the next
  // step, that next step, and a step of the fused tail.
  const RegionDecoder* region_decoder = nullptr;
  const RegionConsumer* region_consumer = nullptr;
  const OutputFusable* fused_output = nullptr;
  // `stage` itself when the entry has isolate: process (it runs in worker processes).
  isolate::IsolatedStage* isolated = nullptr;
};

}  // namespace flowfeed
