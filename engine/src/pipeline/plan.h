// pipeline/plan.h (internal): the decisions Pipeline::Open makes before the graph runs: where
// the cache sits and what it keeps (PlanCache in flowfeed/pipeline.h, then the two refinements
// below), what a cache of that prefix depends on, and which steps are fused (fusion.h).
//
// Threads: the opening thread only, before the graph starts; nothing here keeps state.
#pragma once

#include <vector>

#include "flowfeed/cache.h"
#include "flowfeed/options.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/source.h"
#include "flowfeed/status.h"
#include "pipeline/step.h"

namespace flowfeed {

// What a cache of the pipeline's first `plan.stages` steps depends on: the source's listing
// (paths, sizes, mtimes, ctimes, inodes), those stages and their parameters, the code of those
// that come from plugins (each plugin file's size and XXH3 of its bytes, from `steps`' origins:
// a rebuilt plugin is new code even with the same name and parameters), the codecs' versions.
// NotFound when a source file cannot be stat'ed; IoError when a plugin file cannot be read.
Result<CacheFingerprint> PrefixFingerprint(const Source& source, const PipelineOptions& options,
                                           const CachePlacement& plan,
                                           const std::vector<Step>& steps);

// Marks the fusions of fusion.h on `steps` ([0] is read), when options.fuse is set. Returns the
// step index of a region-decode consumer whose output the cache keeps (its pixels depend on the
// fusion), else 0.
int PlanFusion(const PipelineOptions& options, const CachePlacement& placement,
               std::vector<Step>* steps);

// With fuse on, a decoder that scales in the DCT (decode.dct_scaling) decodes each crop of the
// region consumer after it at a scale that depends on the crop: the whole decoded image is not
// what an uncached sample gets. A cache there would change the batches, so the cache keeps the
// encoded file instead (the point moves to read); an explicit cache.after there is refused
// (InvalidArgument).
Status KeepFilesUnderDctScaling(const PipelineOptions& options, const std::vector<Step>& steps,
                                CachePlacement* plan);

// Without cache.after (which says what to keep), keep the encoded files or the prefix's
// output, whichever the cost model (cache_choice.h) says costs the run less, measured by
// running the steps on a few samples; a disk cache already filled with one of the two keeps it.
// Either gives the same batches. Sets plan->decision to the reason.
Status ChooseWhatToKeep(const PipelineOptions& options, const Source& source,
                        std::vector<Step>& steps, CachePlacement* plan);

}  // namespace flowfeed
