// pipeline/provenance.cc: MakeProvenance (flowfeed/pipeline.h), collected on the calling thread.
#include "flowfeed/pipeline.h"

#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include <ctime>

#include "codec/codec.h"
#include "flowfeed/git_commit.h"  // generated at every build (cmake/git_commit.cmake)
#include "flowfeed/version.h"
#include "pipeline/graph.h"

namespace flowfeed {

Provenance MakeProvenance(const PipelineOptions& options) {
  Provenance p;
  p.flowfeed_version = FLOWFEED_VERSION;
  p.git_commit = FLOWFEED_GIT_COMMIT;
  char when[32];
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
  p.started = when;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) p.host = host;
  p.command_line = options.command_line;
  p.config_path = options.config_path;
  p.resolved_config = options.resolved_config;
  p.libraries.emplace_back("oneTBB", TbbVersion());
  for (auto& lib : CodecLibraryVersions()) p.libraries.push_back(std::move(lib));
  p.libraries.emplace_back("zlib", zlibVersion());
  const unsigned xxh = XXH_versionNumber();
  p.libraries.emplace_back("xxHash", std::to_string(xxh / 10000) + "." +
                                         std::to_string(xxh / 100 % 100) + "." +
                                         std::to_string(xxh % 100));
  return p;
}

}  // namespace flowfeed
