// RegisterBuiltinStages(): flowfeed's own stages, each registered from the file that implements
// it (its schema sits beside its code, stages/common.h).
#include <stdexcept>

#include "flowfeed/registry.h"
#include "stages/common.h"

namespace flowfeed {

void RegisterBuiltinStages(StageRegistry* registry) {
  for (auto* infos : {builtin::DecodeStageInfos, builtin::GeometryStageInfos,
                      builtin::PixelStageInfos}) {
    for (StageInfo& info : infos()) {
      Status s = registry->Register(std::move(info));
      // Only a programming error gets here (registering twice, or a plugin registered first).
      if (!s.ok()) throw std::logic_error("RegisterBuiltinStages: " + s.ToString());
    }
  }
}

}  // namespace flowfeed
