// A stage that throws on every fifth sample: the stage's on_error policy must handle it.
#include <flowfeed/plugin.h>

#include <stdexcept>

namespace {
class Flaky : public flowfeed::Stage {
 public:
  flowfeed::Status Process(flowfeed::Sample& s, const flowfeed::StageContext&) override {
    if (s.index % 5 == 0) throw std::runtime_error("flaky plugin exploded");
    return {};
  }
};
}  // namespace

FLOWFEED_PLUGIN("flaky", "1.0.0", registrar) {
  flowfeed::StageInfo info;
  info.name = "test_flaky";
  info.doc = "throws on samples whose index is a multiple of 5";
  info.factory = [](const flowfeed::StageParams&) -> flowfeed::Result<std::unique_ptr<flowfeed::Stage>> {
    return std::unique_ptr<flowfeed::Stage>(new Flaky());
  };
  registrar.AddStage(std::move(info));
}
