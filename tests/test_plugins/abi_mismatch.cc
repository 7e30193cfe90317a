// Claims a plugin ABI version this flowfeed does not have.
#include <flowfeed/plugin.h>

FLOWFEED_PLUGIN_EXPORT const FlowfeedPluginInfo* flowfeed_plugin_info() {
  static const FlowfeedPluginInfo info = {sizeof(FlowfeedPluginInfo), 999, "from_the_future",
                                          "9.9.9", "9.9.9", FLOWFEED_CXX_ABI};
  return &info;
}
FLOWFEED_PLUGIN_EXPORT int flowfeed_plugin_register(flowfeed::PluginRegistrar*, char*, size_t) {
  __builtin_trap();  // must never be called: the version check comes first
}
