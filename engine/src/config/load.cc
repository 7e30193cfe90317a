// config/load.cc: the entry points of flowfeed/config.h. Reading a config is
//   1. the text to one YAML document (document.h; a syntax error is one problem and the end);
//   2. the `--set key.path=value` overrides applied to that tree (overrides.cc);
//   3. the plugins it lists loaded, when the caller asked for that;
//   4. the tree read into the typed structs (reader.h), collecting every problem: unknown keys
//      with "did you mean", wrong types, out-of-range values, missing required keys, stage
//      parameters checked against the registry's schemas, each stage's factory run once;
//   5. the result checked as a whole: Validate (options.h) and the cache's placement.
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "config/document.h"
#include "config/reader.h"
#include "flowfeed/config.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/plugin.h"

namespace flowfeed {

std::string ConfigError::ToString() const {
  std::string s = where.ToString();
  if (!path.empty()) s += ": " + path;
  s += ": " + message;
  return s;
}

namespace config {
namespace {

// What reading a config does with its `plugins:` list.
struct PluginLoading {
  // Where to load them; nullptr: nowhere (the caller's registry has them already, or the caller
  // asked for no loading), so only the entries' form is checked.
  StageRegistry* registry = nullptr;
  const std::vector<std::string>* last_dirs = nullptr;  // FindPlugin's last places; may be null
  std::vector<LoadedPlugin>* loaded = nullptr;          // receives each plugin loaded; may be null
};

// Loads the files of the config's `plugins:` list as `how` says; each failure is a problem at
// its entry's line.
void LoadPlugins(const YAML::Node& root, const std::string& display_name, const PluginLoading& how,
                 ConfigReader* reader) {
  const YAML::Node list = root["plugins"];
  if (!list) return;
  if (!list.IsSequence()) {
    reader->DocumentError(list.Mark(),
                          "plugins: expected a list of plugin files, got " + Got(list));
    return;
  }
  static const std::vector<std::string> kNoDirs;
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node entry = list[i];
    const std::string where = "plugins[" + std::to_string(i) + "]: ";
    if (!entry.IsScalar() || entry.Scalar().empty()) {
      reader->DocumentError(entry.Mark(), where + "expected a plugin file, got " + Got(entry));
      continue;
    }
    if (!how.registry) continue;
    const Result<std::string> file =
        FindPlugin(entry.Scalar(), std::filesystem::path(display_name).parent_path().string(),
                   how.last_dirs ? *how.last_dirs : kNoDirs);
    if (!file.ok()) {
      reader->DocumentError(entry.Mark(), where + file.status().message());
      continue;
    }
    Result<LoadedPlugin> loaded = LoadPlugin(file.value(), how.registry);
    if (!loaded.ok())
      reader->DocumentError(entry.Mark(), where + loaded.status().message());
    else if (how.loaded)
      how.loaded->push_back(loaded.value());
  }
}

// The checks of the options as a whole, once every key read cleanly. Validate repeats the
// rows' ranges, so for options read from a file it finds nothing new; it runs anyway so that a
// rule added to Validate alone still reaches `flowfeed validate`.
void CheckWhole(const PipelineOptions& options, const StageRegistry& registry,
                std::vector<ConfigError>* errors) {
  const Status valid = Validate(options);
  if (!valid.ok()) {
    std::istringstream lines(valid.message());
    for (std::string line; std::getline(lines, line);)
      errors->push_back({SourceLocation{options.config_path, 0, 0}, "", line});
    return;
  }
  // Where the cache goes depends on the stages' traits: checked here so that `validate`
  // refuses a cache point that would freeze augmentation.
  Result<CachePlacement> plan = PlanCache(options, registry);
  if (!plan.ok()) errors->push_back({options.cache.where, "cache.after", plan.status().message()});
}

Result<PipelineOptions> ParseConfigImpl(const std::string& yaml_text,
                                        const std::string& display_name,
                                        const std::vector<std::string>& overrides,
                                        const PluginLoading& plugins, const StageRegistry& registry,
                                        std::vector<ConfigError>* errors) {
  if (errors) errors->clear();
  ConfigReader reader(display_name, registry);
  PipelineOptions options;
  options.config_path = display_name;
  try {
    YAML::Node root;
    if (!LoadDocument(yaml_text, &reader, &root))
      return Fail(display_name, std::move(reader.errors()), errors);
    for (const std::string& o : overrides) reader.ApplyOverride(root, o);
    // Read through a const node: operator[] on a non-const one would add missing keys.
    const YAML::Node& const_root = root;
    LoadPlugins(const_root, display_name, plugins, &reader);
    reader.ReadTop(const_root, &options);
    YAML::Emitter resolved;
    resolved << const_root;
    options.resolved_config = std::string(resolved.c_str()) + "\n";
  } catch (const YAML::Exception& e) {
    // Not expected: every node is type-checked before it is read.
    reader.DocumentError(e.mark, std::string("internal error reading the config: ") + e.what());
  }
  if (reader.errors().empty()) CheckWhole(options, registry, &reader.errors());
  if (!reader.errors().empty()) return Fail(display_name, std::move(reader.errors()), errors);
  return options;
}

Result<std::string> ReadConfigText(const std::string& path, std::vector<ConfigError>* errors) {
  if (errors) errors->clear();
  const auto fail = [&](Status status, const std::string& message) -> Result<std::string> {
    if (errors) errors->push_back({SourceLocation{path, 0, 0}, "", message});
    return status;
  };
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st))
    return fail(Status::NotFound("config file not found: " + path), "file not found");
  if (std::filesystem::is_directory(st))
    return fail(Status::InvalidArgument("config path is a folder, not a file: " + path),
                "is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Status::IoError("cannot read config file: " + path), "cannot read");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail(Status::IoError("cannot read config file: " + path), "cannot read");
  return text.str();
}

}  // namespace
}  // namespace config

Result<PipelineOptions> ParseConfig(const std::string& yaml_text, const std::string& display_name,
                                    const std::vector<std::string>& overrides,
                                    const StageRegistry& registry,
                                    std::vector<ConfigError>* errors) {
  return config::ParseConfigImpl(yaml_text, display_name, overrides, {}, registry, errors);
}

Result<PipelineOptions> LoadConfigWithPlugins(const std::string& path,
                                              const std::vector<std::string>& overrides,
                                              StageRegistry* registry,
                                              std::vector<ConfigError>* errors,
                                              std::vector<LoadedPlugin>* plugins,
                                              const std::vector<std::string>& last_plugin_dirs) {
  Result<std::string> text = config::ReadConfigText(path, errors);
  if (!text.ok()) return text.status();
  return config::ParseConfigImpl(text.value(), path, overrides,
                                 {registry, &last_plugin_dirs, plugins}, *registry, errors);
}

Result<PipelineOptions> LoadConfig(const std::string& path,
                                   const std::vector<std::string>& overrides,
                                   const StageRegistry& registry,
                                   std::vector<ConfigError>* errors) {
  Result<std::string> text = config::ReadConfigText(path, errors);
  if (!text.ok()) return text.status();
  return config::ParseConfigImpl(text.value(), path, overrides, {}, registry, errors);
}

Status ApplyDistributedEnvironment(PipelineOptions* options) {
  DistributedOptions& d = options->distributed;
  auto read_int = [](const char* name, int64_t lo, int64_t hi, int* out) -> Status {
    const char* v = std::getenv(name);
    if (!v || !*v) return Status::Ok();
    char* end = nullptr;
    errno = 0;
    long long x = std::strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || x < lo || x > hi)
      return Status::InvalidArgument("environment variable " + std::string(name) + "=\"" + v +
                                     "\": expected an integer in [" + std::to_string(lo) + ", " +
                                     std::to_string(hi) + "]");
    *out = int(x);
    return Status::Ok();
  };
  FLOWFEED_RETURN_IF_ERROR(read_int("WORLD_SIZE", 1, 1 << 20, &d.world_size));
  FLOWFEED_RETURN_IF_ERROR(read_int("RANK", 0, 1 << 20, &d.rank));
  FLOWFEED_RETURN_IF_ERROR(read_int("LOCAL_RANK", 0, 1 << 20, &d.local_rank));
  FLOWFEED_RETURN_IF_ERROR(read_int("MASTER_PORT", 1, 65535, &d.master_port));
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) d.master_addr = a;
  if (d.rank >= d.world_size)
    return Status::InvalidArgument("environment: RANK=" + std::to_string(d.rank) +
                                   " is not below WORLD_SIZE=" + std::to_string(d.world_size));
  return Status::Ok();
}

}  // namespace flowfeed
