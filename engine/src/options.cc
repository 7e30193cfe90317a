#include "flowfeed/options.h"

namespace flowfeed {

std::string SourceLocation::ToString() const {
  std::string s = file.empty() ? "<config>" : file;
  if (line > 0) {
    s += ":" + std::to_string(line);
    if (column > 0) s += ":" + std::to_string(column);
  }
  return s;
}

const char* CacheModeName(CacheMode m) {
  switch (m) {
    case CacheMode::kOff: return "off";
    case CacheMode::kMemory: return "memory";
    case CacheMode::kDisk: return "disk";
    case CacheMode::kAuto: return "auto";
  }
  return "?";
}

const char* LayoutName(Layout l) { return l == Layout::kNCHW ? "nchw" : "nhwc"; }

const char* ShardPolicyName(ShardPolicy p) { return p == ShardPolicy::kGlobal ? "global" : "stable"; }

const char* UnevenPolicyName(UnevenPolicy p) {
  return p == UnevenPolicy::kPad ? "pad" : p == UnevenPolicy::kDrop ? "drop" : "all";
}

}  // namespace flowfeed
