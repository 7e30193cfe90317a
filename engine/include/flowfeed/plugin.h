// flowfeed/plugin.h: the plugin ABI. A plugin is a shared library that adds stage types.
//
// A plugin author writes one .cc file:
//
//   #include <flowfeed/plugin.h>
//   class Cutout : public flowfeed::Stage { ... };
//   FLOWFEED_PLUGIN("cutout", "1.0.0", registrar) {
//     flowfeed::StageInfo info;
//     info.name = "cutout";
//     ...
//     registrar.AddStage(std::move(info));
//   }
//
// The macro writes the two `extern "C"` entry points the host looks for:
//   flowfeed_plugin_info()      -> a FlowfeedPluginInfo: ABI version, plugin name and version,
//                                  the flowfeed version and C++ library ABI it was built with;
//   flowfeed_plugin_register()  -> calls the body above with a registrar; an exception thrown
//                                  there never crosses into the host: it comes back as an error
//                                  message naming the plugin.
//
// The host (LoadPlugin) opens the file with dlopen(RTLD_NOW | RTLD_LOCAL) so a missing symbol
// fails at load time, reads the info and refuses a different ABI version (naming both) before
// calling anything else, registers the stages into a staging registry and adds them to the real
// one only when all succeeded, refuses a stage name that is already taken (naming both files),
// and never unloads a plugin (stages it made may still be alive).
//
// Stages from plugins follow the same contract as built-in ones (stage.h): declared traits
// decide caching and threading, random stages draw from StageContext::rng(), failures return a
// Status (exceptions thrown from Process() are caught and handled by the stage's on_error).
// C++ types (std::string, std::function, Image) cross the boundary, so a plugin must be built
// with the same compiler family and C++ standard library as flowfeed; the info records the
// library ABI and the host checks it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "flowfeed/registry.h"
#include "flowfeed/stage.h"
#include "flowfeed/status.h"

// Bumped whenever a type a plugin sees changes layout or meaning (Stage, Sample, Image,
// StageInfo, ParamSpec, StageParams, PluginRegistrar).
#define FLOWFEED_PLUGIN_ABI_VERSION 1
#define FLOWFEED_SDK_VERSION "0.1.0"

#if defined(_GLIBCXX_USE_CXX11_ABI)
#define FLOWFEED_CXX_ABI (_GLIBCXX_USE_CXX11_ABI ? "libstdc++-cxx11" : "libstdc++-old")
#else
#define FLOWFEED_CXX_ABI "unknown"
#endif

extern "C" {
struct FlowfeedPluginInfo {
  uint32_t struct_size;  // sizeof(FlowfeedPluginInfo) in the plugin
  uint32_t abi_version;  // FLOWFEED_PLUGIN_ABI_VERSION the plugin was built with
  const char* name;      // the plugin's name, e.g. "cutout"
  const char* version;   // the plugin's own version
  const char* flowfeed_version;  // FLOWFEED_SDK_VERSION it was built against
  const char* cxx_abi;           // FLOWFEED_CXX_ABI it was built with
};
}

namespace flowfeed {

// What a plugin's register body adds stages through.
class PluginRegistrar {
 public:
  virtual ~PluginRegistrar() = default;
  // Adds a stage type. A failure (empty name, no factory, a name used twice within the plugin)
  // is remembered and fails the whole plugin, with the host's message naming the stage.
  virtual void AddStage(StageInfo info) = 0;
};

// A plugin the host has loaded.
struct LoadedPlugin {
  std::string path;
  std::string name;
  std::string version;
  std::vector<std::string> stages;  // the stage types it added
};

// The file a plugin name (a config's `plugins:` entry, `flowfeed stages --plugins`) stands for.
// An absolute `entry` is returned as it is. Otherwise the first of these that exists:
//   1. `base_dir`/entry (for a config: the config file's folder; "" is the current directory);
//   2. entry in each folder of FLOWFEED_PLUGIN_PATH (colon-separated), in order;
//   3. entry in each of `last_dirs`, in order (the flowfeed program passes its own plugin
//      folders; a library caller such as the Python module passes none by default).
// NotFound naming `entry` and every place looked at, in order, when none exists. Reads the
// environment: call it from one thread while nothing changes FLOWFEED_PLUGIN_PATH.
Result<std::string> FindPlugin(const std::string& entry, const std::string& base_dir,
                               const std::vector<std::string>& last_dirs = {});

// Loads the plugin at `path` and adds its stages to `registry`, all or nothing. Errors name the
// file (and the stage, where one is at fault): NotFound (no such file), InvalidArgument (not a
// shared library, missing entry points, ABI or C++ library mismatch, a stage name already
// registered, a failing or throwing register function). Thread-safety: call from one thread.
Result<LoadedPlugin> LoadPlugin(const std::string& path, StageRegistry* registry);

}  // namespace flowfeed

#define FLOWFEED_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

// Defines the plugin's entry points; the block that follows is its register body, with
// `registrar` (a flowfeed::PluginRegistrar&) in scope under the name given.
#define FLOWFEED_PLUGIN(plugin_name, plugin_version, registrar)                                \
  static void FlowfeedPluginRegisterBody(::flowfeed::PluginRegistrar& registrar);             \
  FLOWFEED_PLUGIN_EXPORT const FlowfeedPluginInfo* flowfeed_plugin_info() {                   \
    static const FlowfeedPluginInfo info = {sizeof(FlowfeedPluginInfo),                        \
                                            FLOWFEED_PLUGIN_ABI_VERSION, plugin_name,          \
                                            plugin_version, FLOWFEED_SDK_VERSION,              \
                                            FLOWFEED_CXX_ABI};                                 \
    return &info;                                                                             \
  }                                                                                           \
  FLOWFEED_PLUGIN_EXPORT int flowfeed_plugin_register(::flowfeed::PluginRegistrar* r,         \
                                                      char* error, size_t error_size) {       \
    try {                                                                                     \
      FlowfeedPluginRegisterBody(*r);                                                         \
      return 0;                                                                               \
    } catch (const std::exception& e) {                                                       \
      std::snprintf(error, error_size, "%s", e.what());                                       \
    } catch (...) {                                                                           \
      std::snprintf(error, error_size, "a non-standard exception");                           \
    }                                                                                         \
    return 1;                                                                                 \
  }                                                                                           \
  static void FlowfeedPluginRegisterBody(::flowfeed::PluginRegistrar& registrar)
