// flowfeed/config.h: YAML config files to PipelineOptions, with every problem reported.
//
// Errors name the file, line and column, the key path and what was expected, e.g.
//   configs/train.yaml:14:9: pipeline[2] (random_resized_crop).scale: expected a list of 2
//   numbers in [0, 1], got "0.8"
// All problems are collected, not only the first. An unknown key gets "did you mean ...?".
//
// Overrides (`--set key.path=value`) are applied to the YAML tree before it is read, so they are
// checked exactly like the file; list items are addressed by index (`pipeline.1.size=128`), and
// the value is parsed as YAML (`--set 'batch={size: 8}'` works). An override of a key the file
// lacks adds it.
#pragma once

#include <string>
#include <vector>

#include "flowfeed/options.h"
#include "flowfeed/plugin.h"
#include "flowfeed/registry.h"
#include "flowfeed/status.h"

namespace flowfeed {

struct ConfigError {
  SourceLocation where;
  std::string path;     // "pipeline[2].scale", "" for the whole document
  std::string message;  // "expected ..., got ..."
  std::string ToString() const;  // "file:line:col: path: message"
};

// Reads `path`, applies overrides, checks the result against `registry`. On failure the Status
// (InvalidArgument, or NotFound for a missing file) lists every problem, one per line, and
// `errors` (when given) receives them as records.
Result<PipelineOptions> LoadConfig(const std::string& path,
                                   const std::vector<std::string>& overrides,
                                   const StageRegistry& registry,
                                   std::vector<ConfigError>* errors = nullptr);

// The same from text; `display_name` stands in for the file name in messages.
Result<PipelineOptions> ParseConfig(const std::string& yaml_text, const std::string& display_name,
                                    const std::vector<std::string>& overrides,
                                    const StageRegistry& registry,
                                    std::vector<ConfigError>* errors = nullptr);

// Like LoadConfig, but first loads the plugins the config lists under `plugins:` into
// `registry`, so the pipeline can use their stages. Each entry is a file, found as FindPlugin
// (plugin.h) says: absolute; else beside the config file; else in FLOWFEED_PLUGIN_PATH
// (colon-separated folders); else in `last_plugin_dirs` (the flowfeed program passes its own
// plugin folders; none by default). An entry found nowhere, or a plugin that fails to load, is a
// config error at its line, naming the places looked at or with the loader's message (plugin.h).
// `plugins` (when given) receives each plugin loaded. LoadConfig and ParseConfig accept
// `plugins:` but load nothing.
Result<PipelineOptions> LoadConfigWithPlugins(
    const std::string& path, const std::vector<std::string>& overrides, StageRegistry* registry,
    std::vector<ConfigError>* errors = nullptr, std::vector<LoadedPlugin>* plugins = nullptr,
    const std::vector<std::string>& last_plugin_dirs = {});

// Fills options->distributed's rank, world_size, local_rank, master_addr and master_port from
// the variables torchrun-style launchers set (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT); unset ones keep their values. InvalidArgument naming the variable for a value
// that is not an integer in range, or RANK >= WORLD_SIZE.
Status ApplyDistributedEnvironment(PipelineOptions* options);

// The reference of every config key (type, default, allowed values, meaning), generated from
// the tables the reader reads keys with: the Markdown between the `<!-- options:begin -->` and
// `<!-- options:end -->` markers of docs/config.md. `flowfeed options` prints it;
// tools/gen_config_reference.sh rewrites the doc's block. Thread-safe.
std::string ConfigReference();

// The closest candidate within a small edit distance, or "" (for "did you mean").
std::string ClosestMatch(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace flowfeed
