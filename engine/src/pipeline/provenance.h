// pipeline/provenance.h (internal): what produced a run (Provenance, flowfeed/stats.h), collected
// at Pipeline::Open on the opening thread.
#pragma once

#include "flowfeed/options.h"
#include "flowfeed/stats.h"

namespace flowfeed {

// The version and commit flowfeed was built from, the time and host, the options' config path,
// resolved config and command line, and the versions of the libraries the engine runs on.
Provenance MakeProvenance(const PipelineOptions& options);

}  // namespace flowfeed
