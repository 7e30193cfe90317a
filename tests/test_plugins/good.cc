// A well-behaved test plugin: a deterministic stage (invert) and a random one (noise).
#include <flowfeed/plugin.h>

#include <memory>

// good_rebuilt.cc builds this file again with 254: a changed build behind the same names.
#ifndef FLOWFEED_TEST_INVERT_FROM
#define FLOWFEED_TEST_INVERT_FROM 255
#endif

namespace {

class Invert : public flowfeed::Stage {
 public:
  flowfeed::Status Process(flowfeed::Sample& s, const flowfeed::StageContext&) override {
    const flowfeed::Image& in = s.image;
    if (in.dtype() != flowfeed::DType::kUInt8)
      return flowfeed::Status::InvalidArgument(std::string(s.source) + ": test_invert needs uint8");
    s.scratch.Reshape(in.height(), in.width(), in.channels());
    for (size_t i = 0; i < in.size_bytes(); ++i) s.scratch.data()[i] = uint8_t(FLOWFEED_TEST_INVERT_FROM - in.data()[i]);
    s.SwapScratch();
    return flowfeed::Status::Ok();
  }
};

class Noise : public flowfeed::Stage {
 public:
  explicit Noise(int64_t amount) : amount_(amount) {}
  flowfeed::Status Process(flowfeed::Sample& s, const flowfeed::StageContext& ctx) override {
    flowfeed::Rng rng = ctx.rng();
    const flowfeed::Image& in = s.image;
    s.scratch.Reshape(in.height(), in.width(), in.channels());
    for (size_t i = 0; i < in.size_bytes(); ++i)
      s.scratch.data()[i] = uint8_t(in.data()[i] ^ uint8_t(rng.UniformInt(0, amount_)));
    s.SwapScratch();
    return flowfeed::Status::Ok();
  }

 private:
  int64_t amount_;
};

}  // namespace

FLOWFEED_PLUGIN("good", "1.2.3", registrar) {
  flowfeed::StageInfo invert;
  invert.name = "test_invert";
  invert.doc = "255 - pixel (test plugin)";
  invert.factory = [](const flowfeed::StageParams&) -> flowfeed::Result<std::unique_ptr<flowfeed::Stage>> {
    return std::unique_ptr<flowfeed::Stage>(new Invert());
  };
  registrar.AddStage(std::move(invert));
  flowfeed::StageInfo noise;
  noise.name = "test_noise";
  noise.doc = "xor with seeded noise (test plugin)";
  noise.traits.deterministic = false;
  noise.params = {flowfeed::ParamSpec::Int("amount", 8, "largest noise value", 0, 64)};
  noise.factory = [](const flowfeed::StageParams& p) -> flowfeed::Result<std::unique_ptr<flowfeed::Stage>> {
    return std::unique_ptr<flowfeed::Stage>(new Noise(p.Int("amount")));
  };
  registrar.AddStage(std::move(noise));
}
