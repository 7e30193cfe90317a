#include "flowfeed/options.h"

#include <algorithm>
#include <cmath>
#include <limits>

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

int64_t SkipBudget::Limit(int64_t epoch_length) const {
  if (count >= 0) return count;
  if (!(fraction < 1.0)) return std::numeric_limits<int64_t>::max();
  // floor: "at most 50%" of 7 samples allows 3 skips, never 4.
  return int64_t(std::floor(std::max(0.0, fraction) * double(epoch_length)));
}

}  // namespace flowfeed
