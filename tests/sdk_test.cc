// The plugin SDK as a user meets it: install flowfeed, build a plugin out of tree against the
// installed package with CMake, use it from a YAML config, check what it does to the batches.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "flowfeed/config.h"
#include "flowfeed/pipeline.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

int Shell(const std::string& cmd, std::string* output) {
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) output->append(buf, n);
  int status = pclose(f);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const char* kPluginSource = R"(// posterize.cc: keeps the top `bits` bits of every pixel.
#include <flowfeed/plugin.h>

namespace {
class Posterize : public flowfeed::Stage {
 public:
  explicit Posterize(int bits) : mask_(uint8_t(0xFF << (8 - bits))) {}
  flowfeed::Status Process(flowfeed::Sample& s, const flowfeed::StageContext&) override {
    const flowfeed::Image& in = s.image;
    s.scratch.Reshape(in.height(), in.width(), in.channels());
    for (size_t i = 0; i < in.size_bytes(); ++i) s.scratch.data()[i] = in.data()[i] & mask_;
    s.SwapScratch();
    return flowfeed::Status::Ok();
  }
 private:
  uint8_t mask_;
};
}  // namespace

FLOWFEED_PLUGIN("posterize", "0.1.0", registrar) {
  flowfeed::StageInfo info;
  info.name = "posterize";
  info.doc = "Keeps the top `bits` bits of each pixel.";
  info.params = {flowfeed::ParamSpec::Int("bits", 4, "bits kept", 1, 8)};
  info.factory = [](const flowfeed::StageParams& p)
      -> flowfeed::Result<std::unique_ptr<flowfeed::Stage>> {
    return std::unique_ptr<flowfeed::Stage>(new Posterize(int(p.Int("bits"))));
  };
  registrar.AddStage(std::move(info));
}
)";

const char* kPluginCMake = R"(cmake_minimum_required(VERSION 3.18)
project(posterize CXX)
find_package(flowfeed REQUIRED)
flowfeed_add_plugin(posterize SOURCES posterize.cc)
)";

TEST(Sdk, PluginBuiltOutOfTreeAgainstTheInstalledSdk) {
  TempDir dir;
  std::string out;
  const std::string prefix = dir / "prefix";
  ASSERT_EQ(Shell("cmake --install '" FLOWFEED_BUILD_DIR "' --prefix '" + prefix + "'", &out), 0) << out;

  test::WriteText(dir / "posterize/posterize.cc", kPluginSource);
  test::WriteText(dir / "posterize/CMakeLists.txt", kPluginCMake);
  out.clear();
  ASSERT_EQ(Shell("cmake -S '" + dir / "posterize" + "' -B '" + dir / "posterize/build" +
                      "' -DCMAKE_PREFIX_PATH='" + prefix + "' -DCMAKE_BUILD_TYPE=Release",
                  &out), 0) << out;
  out.clear();
  ASSERT_EQ(Shell("cmake --build '" + dir / "posterize/build" + "'", &out), 0) << out;

  test::WriteIdx(dir / "data/i.idx", dir / "data/l.idx", 40, 5, 5);
  test::WriteText(dir / "run.yaml",
                  "plugins: [posterize/build/posterize.so]\n"  // beside the config
                  "shuffle: false\n"
                  "source: {type: idx, root: " + dir / "data" + ", images: i.idx, labels: l.idx}\n"
                  "pipeline: [{type: posterize, bits: 2}]\n"
                  "batch: {size: 8, dtype: uint8, layout: nhwc}\n");
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  std::vector<LoadedPlugin> plugins;
  auto o = LoadConfigWithPlugins(dir / "run.yaml", {}, &reg, nullptr, &plugins);
  ASSERT_OK(o);
  ASSERT_EQ(plugins.size(), 1u);
  EXPECT_EQ(plugins[0].name, "posterize");
  auto p = Pipeline::Open(o.value(), reg);
  ASSERT_OK(p);
  int64_t checked = 0;
  for (BatchPtr b;;) {
    ASSERT_OK(p.value()->Next(&b));
    if (!b) break;
    for (int64_t k = 0; k < b->size; ++k)
      for (int y = 0; y < 5; ++y)
        for (int x = 0; x < 5; ++x) {
          const int64_t i = b->indices[size_t(k)];
          const uint8_t original = uint8_t((i * 7 + y * 5 + x) % 256);  // test::WriteIdx's pixels
          ASSERT_EQ(b->data()[size_t(k) * 25 + size_t(y) * 5 + size_t(x)], original & 0xC0);
          ++checked;
        }
  }
  EXPECT_EQ(checked, 40 * 25);

  // The installed program runs the same config.
  out.clear();
  EXPECT_EQ(Shell("'" + prefix + "/bin/flowfeed' bench '" + dir / "run.yaml" + "'", &out), 0) << out;
  EXPECT_NE(out.find("posterize"), std::string::npos) << out;
}

}  // namespace
}  // namespace flowfeed
