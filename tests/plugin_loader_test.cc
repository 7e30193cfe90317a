// Loading plugins: each way a plugin can be wrong has a clear error naming the file; good
// plugins' stages behave like built-in ones (schemas, caching, reproducibility, on_error).
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "flowfeed/config.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/plugin.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

std::string TestPlugin(const std::string& name) {
  return std::string(FLOWFEED_TEST_PLUGIN_DIR) + "/" + name + ".so";
}

StageRegistry Builtins() {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  return reg;
}

TEST(PluginLoader, GoodPluginAddsItsStages) {
  StageRegistry reg = Builtins();
  auto p = LoadPlugin(TestPlugin("good"), &reg);
  ASSERT_OK(p);
  EXPECT_EQ(p->name, "good");
  EXPECT_EQ(p->version, "1.2.3");
  EXPECT_EQ(p->stages, (std::vector<std::string>{"test_invert", "test_noise"}));
  ASSERT_NE(reg.Find("test_noise"), nullptr);
  EXPECT_EQ(reg.Find("test_noise")->origin, TestPlugin("good"));
  EXPECT_FALSE(reg.Find("test_noise")->traits.deterministic);
  EXPECT_TRUE(reg.Find("test_invert")->traits.deterministic);
  // Loading it again: its names are taken now, by itself.
  auto again = LoadPlugin(TestPlugin("good"), &reg);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("already registered by " + TestPlugin("good")),
            std::string::npos) << again.status().message();
}

TEST(PluginLoader, MissingFile) {
  StageRegistry reg = Builtins();
  auto p = LoadPlugin("/nonexistent/libcutout.so", &reg);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kNotFound);
  EXPECT_NE(p.status().message().find("/nonexistent/libcutout.so"), std::string::npos);
}

TEST(PluginLoader, NotASharedLibrary) {
  TempDir dir;
  test::WriteText(dir / "fake.so", "this is a text file");
  StageRegistry reg = Builtins();
  auto p = LoadPlugin(dir / "fake.so", &reg);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find(dir / "fake.so"), std::string::npos);
  EXPECT_NE(p.status().message().find("shared library"), std::string::npos) << p.status().message();
}

TEST(PluginLoader, MissingEntryPoints) {
  StageRegistry reg = Builtins();
  auto p = LoadPlugin(TestPlugin("not_a_plugin"), &reg);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("not a flowfeed plugin"), std::string::npos);
  EXPECT_NE(p.status().message().find("flowfeed_plugin_info"), std::string::npos);
}

TEST(PluginLoader, AbiMismatchNamesBothVersionsAndCallsNothing) {
  StageRegistry reg = Builtins();
  auto p = LoadPlugin(TestPlugin("abi_mismatch"), &reg);  // its register function traps
  ASSERT_FALSE(p.ok());
  const std::string& m = p.status().message();
  EXPECT_NE(m.find("ABI version 999"), std::string::npos) << m;
  EXPECT_NE(m.find("ABI version " + std::to_string(FLOWFEED_PLUGIN_ABI_VERSION)), std::string::npos) << m;
  EXPECT_NE(m.find("from_the_future"), std::string::npos) << m;
}

TEST(PluginLoader, ThrowingRegisterFunction) {
  StageRegistry reg = Builtins();
  auto p = LoadPlugin(TestPlugin("throws"), &reg);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("boom: cannot find my lookup table"), std::string::npos);
  EXPECT_NE(p.status().message().find("thrower"), std::string::npos);
}

TEST(PluginLoader, NoStagesAndDuplicatesAddNothing) {
  StageRegistry reg = Builtins();
  auto empty = LoadPlugin(TestPlugin("no_stages"), &reg);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("registered no stages"), std::string::npos);
  auto dup = LoadPlugin(TestPlugin("dup_builtin"), &reg);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("'resize' is already registered by built-in"),
            std::string::npos) << dup.status().message();
  EXPECT_EQ(reg.Find("fine_stage"), nullptr);  // all or nothing
}

// A config lists the plugin; its stages are checked against their schema like built-ins, a
// random plugin stage is reproducible for any thread count, a deterministic one can hold the
// cache, and a throwing one is handled by on_error.
TEST(PluginLoader, PluginStagesInAConfigAndAPipeline) {
  TempDir dir;
  test::WriteIdx(dir / "i.idx", dir / "l.idx", 120, 6, 6);
  test::WriteText(dir / "c.yaml",
                  "plugins: [" + TestPlugin("good") + ", " + TestPlugin("flaky") + "]\n"
                  "epochs: 2\n"
                  "source: {type: idx, root: " + dir.path() + ", images: i.idx, labels: l.idx}\n"
                  "pipeline:\n"
                  "  - {type: test_invert}\n"
                  "  - {type: test_noise, amount: 16}\n"
                  "  - {type: test_flaky, on_error: skip}\n"
                  "batch: {size: 8, dtype: uint8}\n");
  std::vector<std::string> digests;
  for (int threads : {1, 2}) {
    StageRegistry reg = Builtins();
    std::vector<LoadedPlugin> plugins;
    auto o = LoadConfigWithPlugins(dir / "c.yaml", {"threads=" + std::to_string(threads)}, &reg,
                                   nullptr, &plugins);
    ASSERT_OK(o);
    EXPECT_EQ(plugins.size(), 2u);
    auto p = Pipeline::Open(o.value(), reg);
    ASSERT_OK(p);
    for (int e = 0; e < 2; ++e)
      for (BatchPtr b;;) {
        ASSERT_OK(p.value()->Next(&b));
        if (!b) break;
      }
    RunStats s = p.value()->stats();
    EXPECT_EQ(s.cache_placement, "test_invert");  // the deterministic plugin stage is cached
    ASSERT_EQ(s.epochs.size(), 2u);
    ASSERT_EQ(s.epochs[0].skipped_count, 24);       // every fifth sample threw
    EXPECT_NE(s.epochs[0].skipped[0].reason.find("flaky plugin exploded"), std::string::npos);
    EXPECT_EQ(s.epochs[0].skipped[0].stage, "test_flaky");
    digests.push_back(s.epochs[0].batch_digest + s.epochs[1].batch_digest);
  }
  EXPECT_EQ(digests[0], digests[1]);

  // A plugin parameter out of its schema's range is a config error naming the stage.
  StageRegistry reg = Builtins();
  std::vector<ConfigError> errors;
  auto bad = LoadConfigWithPlugins(dir / "c.yaml", {"pipeline.1.amount=500"}, &reg, &errors);
  ASSERT_FALSE(bad.ok());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].ToString().find("(test_noise).amount"), std::string::npos) << errors[0].ToString();

  // A plugin that fails to load is an error at its line in the config.
  test::WriteText(dir / "missing.yaml",
                  "plugins:\n  - nowhere.so\n"
                  "source: {type: idx, root: " + dir.path() + ", images: i.idx, labels: l.idx}\n");
  StageRegistry reg2 = Builtins();
  auto missing = LoadConfigWithPlugins(dir / "missing.yaml", {}, &reg2, &errors);
  ASSERT_FALSE(missing.ok());
  ASSERT_GE(errors.size(), 1u);
  EXPECT_EQ(errors[0].where.line, 2);
  EXPECT_NE(errors[0].ToString().find("nowhere.so"), std::string::npos) << errors[0].ToString();
}

}  // namespace
}  // namespace flowfeed

namespace flowfeed {
namespace {

// FLOWFEED_PLUGIN_PATH set (or unset, for nullptr) while it lives; the old value comes back.
class PluginPathSetTo {
 public:
  explicit PluginPathSetTo(const char* value) {
    if (const char* old = std::getenv("FLOWFEED_PLUGIN_PATH")) old_ = old;
    if (value)
      setenv("FLOWFEED_PLUGIN_PATH", value, 1);
    else
      unsetenv("FLOWFEED_PLUGIN_PATH");
  }
  ~PluginPathSetTo() {
    if (old_)
      setenv("FLOWFEED_PLUGIN_PATH", old_->c_str(), 1);
    else
      unsetenv("FLOWFEED_PLUGIN_PATH");
  }

 private:
  std::optional<std::string> old_;
};

// A bare plugin name is looked up beside the config, then in FLOWFEED_PLUGIN_PATH's folders.
TEST(PluginLoader, SearchPath) {
  TempDir dir;
  test::WriteIdx(dir / "i.idx", dir / "l.idx", 10, 4, 4);
  test::WriteText(dir / "c.yaml",
                  "plugins: [good.so]\n"
                  "source: {type: idx, root: " + dir.path() + ", images: i.idx, labels: l.idx}\n"
                  "pipeline: [{type: test_invert}]\n");
  {
    PluginPathSetTo path(("/nonexistent:" + std::string(FLOWFEED_TEST_PLUGIN_DIR)).c_str());
    StageRegistry reg = Builtins();
    auto o = LoadConfigWithPlugins(dir / "c.yaml", {}, &reg);
    EXPECT_OK(o);
  }
  PluginPathSetTo unset(nullptr);
  StageRegistry reg2 = Builtins();
  std::vector<ConfigError> errors;
  auto missing = LoadConfigWithPlugins(dir / "c.yaml", {}, &reg2, &errors);
  EXPECT_FALSE(missing.ok());
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].ToString().find(dir / "good.so"), std::string::npos) << errors[0].ToString();

  // The caller's last places (the flowfeed program passes its plugin folders) come after those.
  StageRegistry reg3 = Builtins();
  auto last = LoadConfigWithPlugins(dir / "c.yaml", {}, &reg3, nullptr, nullptr,
                                    {dir / "nowhere", FLOWFEED_TEST_PLUGIN_DIR});
  EXPECT_OK(last);
}

// The order of the places, and a name found nowhere naming each of them.
TEST(PluginLoader, FindPluginLooksBesideThenInThePathThenInTheLastPlaces) {
  TempDir dir;
  for (const char* folder : {"beside", "env", "last"})
    test::WriteText(dir / (std::string(folder) + "/p.so"), "");
  PluginPathSetTo path(("/nonexistent:" + dir / "env").c_str());
  auto beside = FindPlugin("p.so", dir / "beside", {dir / "last"});
  ASSERT_OK(beside);
  EXPECT_EQ(beside.value(), dir / "beside/p.so");
  auto env = FindPlugin("p.so", dir / "none", {dir / "last"});
  ASSERT_OK(env);
  EXPECT_EQ(env.value(), dir / "env/p.so");
  {
    PluginPathSetTo unset(nullptr);
    auto last = FindPlugin("p.so", dir / "none", {dir / "empty", dir / "last"});
    ASSERT_OK(last);
    EXPECT_EQ(last.value(), dir / "last/p.so");
  }
  auto absolute = FindPlugin("/nonexistent/p.so", dir / "beside", {dir / "last"});
  ASSERT_OK(absolute);
  EXPECT_EQ(absolute.value(), "/nonexistent/p.so");

  auto missing = FindPlugin("q.so", dir / "none", {dir / "last"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "plugin q.so: no such file (looked for " +
                                            dir / "none/q.so" + ", /nonexistent/q.so, " +
                                            dir / "env/q.so" + ", " + dir / "last/q.so" + ")");
}

}  // namespace
}  // namespace flowfeed
