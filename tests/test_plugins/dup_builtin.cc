// Tries to take the name of a built-in stage, and also adds a fine one (which must not be
// added either: all or nothing).
#include <flowfeed/plugin.h>

namespace {
class Nop : public flowfeed::Stage {
 public:
  flowfeed::Status Process(flowfeed::Sample&, const flowfeed::StageContext&) override { return {}; }
};
flowfeed::StageInfo Info(const char* name) {
  flowfeed::StageInfo info;
  info.name = name;
  info.doc = "does nothing";
  info.factory = [](const flowfeed::StageParams&) -> flowfeed::Result<std::unique_ptr<flowfeed::Stage>> {
    return std::unique_ptr<flowfeed::Stage>(new Nop());
  };
  return info;
}
}  // namespace

FLOWFEED_PLUGIN("dup", "1.0.0", registrar) {
  registrar.AddStage(Info("fine_stage"));
  registrar.AddStage(Info("resize"));
}
