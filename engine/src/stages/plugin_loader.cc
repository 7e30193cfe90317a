// Finding and loading plugins: the only file that calls dlopen.
#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <system_error>

#include "flowfeed/plugin.h"

namespace flowfeed {
namespace {

// Collects a plugin's stages apart from the real registry, so that a plugin that fails half
// way adds nothing.
class StagingRegistrar final : public PluginRegistrar {
 public:
  explicit StagingRegistrar(std::string origin) : origin_(std::move(origin)) {}

  void AddStage(StageInfo info) override {
    info.origin = origin_;
    const std::string name = info.name;
    Status s = staging_.Register(std::move(info));
    if (s.ok()) {
      names_.push_back(name);
    } else if (first_error_.ok()) {
      first_error_ = s;
    }
  }

  const StageRegistry& staging() const { return staging_; }
  const std::vector<std::string>& names() const { return names_; }
  const Status& first_error() const { return first_error_; }

 private:
  std::string origin_;
  StageRegistry staging_;
  std::vector<std::string> names_;
  Status first_error_;
};

// Handles of loaded plugins. Never closed: stages a plugin made may outlive any owner we know.
std::mutex g_mu;
std::vector<void*>* g_handles = new std::vector<void*>;  // leaked on purpose, like the handles

}  // namespace

Result<std::string> FindPlugin(const std::string& entry, const std::string& base_dir,
                               const std::vector<std::string>& last_dirs) {
  namespace fs = std::filesystem;
  if (fs::path(entry).is_absolute()) return entry;
  std::vector<std::string> places = {(fs::path(base_dir) / entry).string()};
  if (const char* search = std::getenv("FLOWFEED_PLUGIN_PATH")) {
    const std::string dirs = search;
    for (size_t start = 0; start <= dirs.size();) {
      size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      if (end > start)
        places.push_back((fs::path(dirs.substr(start, end - start)) / entry).string());
      start = end + 1;
    }
  }
  for (const std::string& dir : last_dirs) places.push_back((fs::path(dir) / entry).string());
  std::error_code ec;
  for (const std::string& place : places)
    if (fs::exists(place, ec)) return place;
  std::string looked;
  for (const std::string& place : places) looked += (looked.empty() ? "" : ", ") + place;
  return Status::NotFound("plugin " + entry + ": no such file (looked for " + looked + ")");
}

Result<LoadedPlugin> LoadPlugin(const std::string& path, StageRegistry* registry) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return Status::NotFound("plugin " + path + ": no such file");
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument("plugin " + path + ": not a file");

  // RTLD_NOW: an unresolved symbol fails here, not in the middle of a run. RTLD_LOCAL: one
  // plugin's symbols never satisfy another's.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* err = ::dlerror();
    return Status::InvalidArgument("plugin " + path + ": cannot load it as a shared library: " +
                                   (err ? err : "unknown error"));
  }
  using InfoFn = const FlowfeedPluginInfo* (*)();
  using RegisterFn = int (*)(PluginRegistrar*, char*, size_t);
  auto info_fn = reinterpret_cast<InfoFn>(::dlsym(handle, "flowfeed_plugin_info"));
  auto register_fn = reinterpret_cast<RegisterFn>(::dlsym(handle, "flowfeed_plugin_register"));
  if (!info_fn || !register_fn) {
    ::dlclose(handle);  // nothing of it ran
    return Status::InvalidArgument(
        "plugin " + path + ": not a flowfeed plugin: it lacks the entry point " +
        (!info_fn ? "flowfeed_plugin_info" : "flowfeed_plugin_register") +
        " (write the plugin with the FLOWFEED_PLUGIN macro from <flowfeed/plugin.h>)");
  }
  // The version check comes before anything else of the plugin runs.
  const FlowfeedPluginInfo* info = info_fn();
  if (!info || info->struct_size < sizeof(uint32_t) * 2)
    return Status::InvalidArgument("plugin " + path + ": flowfeed_plugin_info returned nothing usable");
  const std::string name = info->struct_size >= sizeof(FlowfeedPluginInfo) && info->name ? info->name : "?";
  if (info->abi_version != FLOWFEED_PLUGIN_ABI_VERSION) {
    std::string built = info->struct_size >= sizeof(FlowfeedPluginInfo) && info->flowfeed_version
                            ? info->flowfeed_version
                            : "?";
    return Status::InvalidArgument(
        "plugin " + path + " (" + name + "): built for plugin ABI version " +
        std::to_string(info->abi_version) + " (flowfeed " + built +
        "), but this flowfeed uses ABI version " + std::to_string(FLOWFEED_PLUGIN_ABI_VERSION) +
        " (flowfeed " FLOWFEED_SDK_VERSION "); rebuild the plugin against this flowfeed");
  }
  if (info->struct_size < sizeof(FlowfeedPluginInfo))
    return Status::InvalidArgument("plugin " + path + ": its plugin info is too short");
  if (!info->cxx_abi || std::strcmp(info->cxx_abi, FLOWFEED_CXX_ABI) != 0)
    return Status::InvalidArgument("plugin " + path + " (" + name + "): built with the C++ library ABI '" +
                                   (info->cxx_abi ? info->cxx_abi : "?") + "', flowfeed uses '" +
                                   FLOWFEED_CXX_ABI + "'; build both with the same toolchain");

  StagingRegistrar staging(path);
  char error[1024] = {0};
  if (register_fn(&staging, error, sizeof error) != 0)
    return Status::InvalidArgument("plugin " + path + " (" + name +
                                   "): its register function failed: " + error);
  if (!staging.first_error().ok())
    return staging.first_error().WithContext("plugin " + path + " (" + name + ")");
  if (staging.names().empty())
    return Status::InvalidArgument("plugin " + path + " (" + name + "): registered no stages");

  // All or nothing: every name must be free before any is added.
  for (const std::string& stage : staging.names())
    if (const StageInfo* taken = registry->Find(stage))
      return Status::InvalidArgument("plugin " + path + " (" + name + "): stage type '" + stage +
                                     "' is already registered by " + taken->origin);
  LoadedPlugin loaded;
  loaded.path = path;
  loaded.name = name;
  loaded.version = info->version ? info->version : "";
  for (const std::string& stage : staging.names()) {
    FLOWFEED_RETURN_IF_ERROR(registry->Register(*staging.staging().Find(stage)));
    loaded.stages.push_back(stage);
  }
  std::lock_guard<std::mutex> lock(g_mu);
  g_handles->push_back(handle);
  return loaded;
}

}  // namespace flowfeed
