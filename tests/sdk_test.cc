// The plugin SDK as a user meets it: install flowfeed, build a plugin out of tree against the
// installed package with CMake, use it from a YAML config, check what it does to the batches.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "flowfeed/config.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "flowfeed/version.h"
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

  // ... and finds the installed example plugins by their bare names (in its plugin folder,
  // relative to itself), with nothing beside the config and no FLOWFEED_PLUGIN_PATH.
  test::WriteText(dir / "gray.yaml",
                  "plugins: [grayscale.so]\n"
                  "source: {type: idx, root: " +
                      dir / "data" +
                      ", images: i.idx, labels: l.idx}\n"
                      "pipeline: [{type: grayscale}]\n");
  out.clear();
  EXPECT_EQ(Shell("env -u FLOWFEED_PLUGIN_PATH '" + prefix +
                      "/bin/flowfeed' stages --plugins "
                      "grayscale.so",
                  &out),
            0)
      << out;
  // The installed file, named by its path.
  EXPECT_NE(out.find(prefix + "/"), std::string::npos) << out;
  EXPECT_NE(out.find("/flowfeed/plugins/grayscale.so"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(Shell("env -u FLOWFEED_PLUGIN_PATH '" + prefix + "/bin/flowfeed' validate '" +
                      dir / "gray.yaml" + "'",
                  &out),
            0)
      << out;
}

// A C++ program of a user's own that links the installed engine: it opens a pipeline from a
// config and prints one line per epoch (samples, batches, the epoch's batch_digest).
const char* kConsumerSource = R"(#include <cstdio>
#include <flowfeed/config.h>
#include <flowfeed/pipeline.h>
#include <flowfeed/registry.h>
#include <flowfeed/version.h>

int main(int argc, char** argv) {
  flowfeed::StageRegistry registry;
  flowfeed::RegisterBuiltinStages(&registry);
  auto options = flowfeed::LoadConfig(argv[1], {}, registry);
  if (!options.ok()) { std::fprintf(stderr, "%s\n", options.status().ToString().c_str()); return 1; }
  auto pipeline = flowfeed::Pipeline::Open(options.value(), registry);
  if (!pipeline.ok()) { std::fprintf(stderr, "%s\n", pipeline.status().ToString().c_str()); return 1; }
  std::printf("flowfeed %s\n", FLOWFEED_VERSION);
  for (int epoch = 0; epoch < options.value().epochs; ++epoch) {
    long long samples = 0, batches = 0;
    for (flowfeed::BatchPtr b;;) {
      flowfeed::Status s = pipeline.value()->Next(&b);
      if (!s.ok()) { std::fprintf(stderr, "%s\n", s.ToString().c_str()); return 1; }
      if (!b) break;
      samples += b->size;
      ++batches;
    }
    std::printf("epoch %d: %lld samples %lld batches %s\n", epoch + 1, samples, batches,
                pipeline.value()->stats().epochs.back().batch_digest.c_str());
  }
  return 0;
}
)";

// What the consumer prints, computed here in-process for the same config.
std::string ExpectedConsumerOutput(const std::string& config) {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  auto o = LoadConfig(config, {}, reg);
  if (!o.ok()) return "config: " + o.status().ToString();
  test::EpochsRun run = test::RunEpochs(o.value());
  if (!run.status.ok()) return "run: " + run.status.ToString();
  std::string out = std::string("flowfeed ") + FLOWFEED_VERSION + "\n";
  for (size_t e = 0; e < run.stats.epochs.size(); ++e) {
    const EpochStats& es = run.stats.epochs[e];
    out += "epoch " + std::to_string(e + 1) + ": " + std::to_string(es.samples) + " samples " +
           std::to_string(es.batches) + " batches " + run.digests[e] + "\n";
  }
  return out;
}

// The installed engine as a C++ user meets it: find_package(flowfeed) and flowfeed::engine in
// their own CMake project, or pkg-config's flags on a plain compiler line; both programs must
// deliver the batches the engine delivers in this process.
TEST(Sdk, EngineLinkedOutOfTreeThroughCMakeAndPkgConfig) {
  TempDir dir;
  std::string out;
  const std::string prefix = dir / "prefix";
  ASSERT_EQ(Shell("cmake --install '" FLOWFEED_BUILD_DIR "' --prefix '" + prefix + "'", &out), 0) << out;

  test::MakeImageFolder(dir / "photos", 3, 7);
  test::WriteText(dir / "run.yaml",
                  "epochs: 2\n"
                  "source: {type: image_folder, root: " + dir / "photos" + "}\n"
                  "pipeline: [{type: decode}, {type: resize, size: 32}, {type: center_crop, size: 32},\n"
                  "           {type: random_horizontal_flip}]\n"
                  "batch: {size: 4, dtype: uint8, layout: nhwc}\n"
                  "cache: {mode: memory}\n");
  const std::string expected = ExpectedConsumerOutput(dir / "run.yaml");
  ASSERT_EQ(expected.find("epoch 2: 21 samples 6 batches"), expected.find("epoch 2:")) << expected;

  test::WriteText(dir / "consumer/main.cc", kConsumerSource);
  test::WriteText(dir / "consumer/CMakeLists.txt",
                  "cmake_minimum_required(VERSION 3.18)\n"
                  "project(consumer CXX)\n"
                  "find_package(flowfeed 0.1 REQUIRED)\n"
                  "add_executable(consumer main.cc)\n"
                  "target_link_libraries(consumer PRIVATE flowfeed::engine)\n");
  out.clear();
  ASSERT_EQ(Shell("cmake -S '" + dir / "consumer" + "' -B '" + dir / "consumer/build" +
                      "' -DCMAKE_PREFIX_PATH='" + prefix + "' -DCMAKE_BUILD_TYPE=Release" +
                      " -DCMAKE_CXX_FLAGS='" FLOWFEED_SANITIZE_FLAGS "'" +
                      " && cmake --build '" + dir / "consumer/build" + "'", &out), 0) << out;
  out.clear();
  ASSERT_EQ(Shell("'" + dir / "consumer/build/consumer" + "' '" + dir / "run.yaml" + "'", &out), 0)
      << out;
  EXPECT_EQ(out, expected);

  out.clear();
  ASSERT_EQ(Shell("c++ -O1 " FLOWFEED_SANITIZE_FLAGS " -o '" + dir / "consumer-pc" + "' '" +
                      dir / "consumer/main.cc" +
                      "' $(PKG_CONFIG_PATH='" + prefix + "/lib/pkgconfig' pkg-config --cflags " +
                      "--libs --static flowfeed)", &out), 0) << out;
  out.clear();
  ASSERT_EQ(Shell("'" + dir / "consumer-pc" + "' '" + dir / "run.yaml" + "'", &out), 0) << out;
  EXPECT_EQ(out, expected);
}

}  // namespace
}  // namespace flowfeed
