// inspect.cc: the commands that run nothing: `validate` (a config checked, its datasets opened
// as a run opens them), `config` (the same checks, then the config as a run reads it), `stages` (the stage
// and source types with their parameters and keys), `report` (JSON reports drawn as one page).
// Run on the command's main thread.
#include <iostream>
#include <memory>
#include <optional>
#include <vector>

#include "cli.h"
#include "flowfeed/report_html.h"
#include "flowfeed/source.h"
#include "flowfeed/source_registry.h"

namespace flowfeed::cli {
namespace {

// Every stage type in `registry` with its traits, origin and parameters.
void PrintStageTypes(const StageRegistry& registry) {
  for (const StageInfo* info : registry.List()) {
    std::cout << info->name << "  ("
              << (info->traits.deterministic ? "deterministic" : "random")
              << (info->traits.thread_safe ? ", thread-safe" : ", serial") << "; " << info->origin
              << ")\n    " << info->doc << "\n";
    for (const auto& p : info->params) {
      std::cout << "    " << p.name << ": " << ParamTypeName(p.type);
      if (p.default_value)
        std::cout << " = " << ParamSpec::FormatValue(*p.default_value);
      else
        std::cout << " (required)";
      if (p.min || p.max) {
        std::cout << " in [" << (p.min ? std::to_string(*p.min) : "-inf") << ", "
                  << (p.max ? std::to_string(*p.max) : "inf") << "]";
      }
      if (!p.choices.empty()) {
        std::cout << " one of";
        for (const auto& c : p.choices) std::cout << " " << c;
      }
      std::cout << "\n        " << p.doc << "\n";
    }
    std::cout << "\n";
  }
}

// Every built-in source type with its traits and keys.
void PrintSourceTypes() {
  std::cout << "source types (source.type):\n\n";
  for (const SourceInfo* info : BuiltinSources().List()) {
    std::cout << info->name << "  (" << (info->traits.gives_pixels ? "pixels" : "encoded files")
              << (info->traits.sequential ? ", read in shard order" : "") << ")\n    "
              << info->doc << "\n";
    for (const SourceKeySpec& k : info->keys) {
      std::cout << "    " << k.name;
      if (k.required)
        std::cout << " (required)";
      else if (!k.default_value.empty())
        std::cout << " = " << k.default_value;
      std::cout << "\n        " << k.doc << "\n";
    }
    std::cout << "\n";
  }
}

// What a run does first beyond reading the config: open its datasets (OpenSource: the folder
// listed, the IDX headers read, the tar shards scanned, the file list read), so that a missing
// root, images file, list or shard is found here and not an hour into a queue. Prints each
// problem at the config's `source:` (or `eval: source:`) section; the sample counts, or nothing
// when there was a problem.
std::optional<std::vector<int64_t>> OpenSources(const PipelineOptions& options) {
  std::vector<int64_t> sizes;
  bool ok = true;
  const auto open = [&](const SourceOptions& source, const std::string& key) {
    Status s = CheckSourceRoot(source, key);
    if (s.ok()) {
      Result<std::unique_ptr<Source>> opened = OpenSource(source);
      if (opened.ok()) {
        sizes.push_back(opened.value()->size());
        return;
      }
      s = opened.status();
    }
    const std::string at = source.where.file.empty() ? "" : source.where.ToString() + ": ";
    // The source's own messages name the file; the section says which source it was.
    std::cerr << "flowfeed: " << at << s.message() << "\n";
    ok = false;
  };
  open(options.source, "source.root");
  if (options.train.eval.enabled) open(options.train.eval.source, "eval.source.root");
  if (!ok) return std::nullopt;
  return sizes;
}

// The checks of `validate` and `config`: the config read (plugins loaded), then, unless
// `schema_only`, its datasets opened. The sample counts in `sizes` (empty for schema_only).
bool LoadChecked(const std::string& config, const std::vector<std::string>& sets, bool schema_only,
                 PipelineOptions* options, std::vector<int64_t>* sizes) {
  StageRegistry registry;
  RegisterBuiltinStages(&registry);
  if (!Load(config, sets, &registry, options)) return false;
  if (schema_only) return true;
  std::optional<std::vector<int64_t>> opened = OpenSources(*options);
  if (!opened) return false;
  *sizes = std::move(*opened);
  return true;
}

}  // namespace

int Validate(const std::string& config, const std::vector<std::string>& sets, bool schema_only) {
  PipelineOptions options;
  std::vector<int64_t> sizes;
  if (!LoadChecked(config, sets, schema_only, &options, &sizes)) return kExitUsage;
  std::cout << config << ": ok (" << options.source.type << " source";
  if (!sizes.empty()) std::cout << " of " << sizes[0] << " samples";
  if (sizes.size() > 1) std::cout << ", eval source of " << sizes[1] << " samples";
  std::cout << ", " << options.pipeline.size() << " stages, batch " << options.batch.size << ", "
            << options.epochs << " epochs" << (schema_only ? "; datasets not opened" : "")
            << ")\n";
  return kExitOk;
}

// `flowfeed config FILE --set ...`: the config as a run would read it, overrides applied, after
// the same checks as `validate`.
int PrintConfig(const std::string& config, const std::vector<std::string>& sets,
                bool schema_only) {
  PipelineOptions options;
  std::vector<int64_t> sizes;
  if (!LoadChecked(config, sets, schema_only, &options, &sizes)) return kExitUsage;
  std::cout << options.resolved_config;
  return kExitOk;
}

int Stages(const std::vector<std::string>& plugins) {
  StageRegistry registry;
  RegisterBuiltinStages(&registry);
  for (const std::string& name : plugins) {
    // Found as a config's `plugins:` entry is, with the current directory for the config's.
    const Result<std::string> path = FindPlugin(name, "", ProgramPluginDirs());
    if (!path.ok()) {
      std::cerr << "flowfeed: " << path.status().message() << "\n";
      return kExitUsage;
    }
    auto loaded = LoadPlugin(path.value(), &registry);
    if (!loaded.ok()) {
      std::cerr << "flowfeed: " << loaded.status().message() << "\n";
      return kExitUsage;
    }
  }
  PrintStageTypes(registry);
  PrintSourceTypes();
  return kExitOk;
}

// `flowfeed report A.json [B.json ...] -o page.html`: one report drawn, or several overlaid.
int Report(const std::vector<std::string>& paths, std::string output,
           const std::vector<std::string>& labels, const std::string& title) {
  if (labels.size() > paths.size()) {
    std::cerr << "flowfeed: " << labels.size() << " --label values for " << paths.size()
              << " reports\n";
    return kExitUsage;
  }
  std::vector<HtmlReportRun> runs;
  for (size_t i = 0; i < paths.size(); ++i) {
    std::vector<uint8_t> bytes;
    Status read = ReadFileBytes(paths[i], &bytes);
    if (!read.ok()) {
      std::cerr << "flowfeed: cannot read report " << read.message() << "\n";  // names the file
      return kExitUsage;
    }
    runs.push_back({i < labels.size() ? labels[i] : "", paths[i],
                    std::string(bytes.begin(), bytes.end())});
  }
  auto page = RenderHtmlReport(runs, title);
  if (!page.ok()) {
    std::cerr << "flowfeed: " << page.status().message() << "\n";
    return kExitUsage;
  }
  if (output.empty()) {
    // report.json -> report.html, next to the (first) report.
    output = paths[0];
    size_t slash = output.find_last_of('/');
    size_t dot = output.find_last_of('.');
    if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) output.resize(dot);
    output += paths.size() > 1 ? ".compare.html" : ".html";
  }
  return WriteOutput("html report", output, page.value());
}

}  // namespace flowfeed::cli
