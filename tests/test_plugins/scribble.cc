// A careless plugin stage: it writes into the image it is given without asking whether the
// storage is shared (Image::shared()), adding 1 to the first byte of every sample. On a memory
// cache hit that image is a view of the cache, so without the engine's guard every epoch would
// add 1 to the cached pixels of the next.
#include <flowfeed/plugin.h>

#include <memory>

namespace {

class Scribble : public flowfeed::Stage {
 public:
  flowfeed::Status Process(flowfeed::Sample& s, const flowfeed::StageContext&) override {
    if (!s.image.empty()) s.image.data()[0] = uint8_t(s.image.data()[0] + 1);
    return flowfeed::Status::Ok();
  }
};

}  // namespace

FLOWFEED_PLUGIN("scribble", "1.0.0", registrar) {
  flowfeed::StageInfo info;
  info.name = "test_scribble";
  info.doc = "adds 1 to the first byte, in place (test plugin)";
  info.traits.deterministic = false;  // after the cache point, where hits arrive as views
  info.factory = [](const flowfeed::StageParams&) -> flowfeed::Result<std::unique_ptr<flowfeed::Stage>> {
    return std::unique_ptr<flowfeed::Stage>(new Scribble());
  };
  registrar.AddStage(std::move(info));
}
