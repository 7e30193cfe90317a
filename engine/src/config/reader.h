// config/reader.h: the YAML tree of a config to PipelineOptions, collecting every problem.
//
// Internal to the config loader (load.cc); with reader.cc, sections.cc, stages.cc and
// overrides.cc, the only files of the project that include yaml-cpp. A ConfigReader reads one
// document: it is not thread-safe, and it keeps references to the registry it was given, which
// must outlive it. Problems never throw: each is appended to errors() as a ConfigError naming the
// file, line and column (or the `--set` override that supplied the value), the key path and what
// was expected, and reading goes on so that all of them are reported at once.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/option_table.h"
#include "flowfeed/config.h"
#include "flowfeed/options.h"
#include "flowfeed/registry.h"

namespace flowfeed::config {

// A quoted scalar ("42", '42', !!str 42) is a string in YAML, never a number or a bool.
bool IsQuoted(const YAML::Node& n);
// What the user wrote, for "got ...": the scalar text in quotes, or "a list" / "a map".
std::string Got(const YAML::Node& n);
// Got() for places that want a number or a bool: a quoted scalar is called a string.
std::string GotValue(const YAML::Node& n);

// Key paths: what the user reads ("pipeline[2] (resize).size") and a canonical form that
// matches override keys ("pipeline.2.size").
struct KeyPath {
  std::string display;
  std::string canon;

  KeyPath Key(const std::string& k) const {
    return {display.empty() ? k : display + "." + k, canon.empty() ? k : canon + "." + k};
  }
  KeyPath Index(size_t i) const {
    const std::string s = std::to_string(i);
    return {display + "[" + s + "]", canon.empty() ? s : canon + "." + s};
  }
};

// A value to read: the node, where to report problems with it, and its path.
struct Item {
  YAML::Node node;
  YAML::Mark mark;
  KeyPath path;
};

// The keys a section gave, as ReadEntries saw them.
struct Given {
  struct Entry {
    YAML::Node key_node;
    Item value;
    bool ok;  // read without a problem
  };
  std::map<std::string, Entry> entries;
  // Keys whose row has `only_when`, in document order, for CheckTypeSpecific.
  std::vector<std::pair<YAML::Node, KeyPath>> type_specific;

  bool Has(const std::string& key) const { return entries.count(key) > 0; }
  bool Ok(const std::string& key) const {
    auto it = entries.find(key);
    return it != entries.end() && it->second.ok;
  }
};

class ConfigReader {
 public:
  ConfigReader(std::string file, const StageRegistry& registry)
      : file_(std::move(file)), registry_(registry) {}

  std::vector<ConfigError>& errors() { return errors_; }

  void OverrideError(const std::string& path, std::string message) {
    errors_.push_back({SourceLocation{"--set", 0, 0}, path, std::move(message)});
  }
  void DocumentError(const YAML::Mark& mark, std::string message) {
    errors_.push_back({LocateMark(mark), "", std::move(message)});
  }

  // Applies one `key.path=value` override to `root` (a map).
  void ApplyOverride(YAML::Node root, const std::string& text);

  void ReadTop(const YAML::Node& root, PipelineOptions* options);

 private:
  SourceLocation LocateMark(const YAML::Mark& mark) const;
  // Where a problem at `path` is reported: the override that supplied it, else the file.
  SourceLocation Locate(const YAML::Mark& mark, const KeyPath& path) const;

  void Error(const YAML::Mark& mark, const KeyPath& path, std::string message) {
    errors_.push_back({Locate(mark, path), path.display, std::move(message)});
  }
  void Error(const Item& item, std::string message) {
    Error(item.mark, item.path, std::move(message));
  }
  void UnknownKey(const YAML::Node& key_node, const KeyPath& path, const std::string& key,
                  const std::vector<std::string>& candidates);

  // Calls fn(key, key_node, item) for each entry of a map, in document order. Non-scalar and
  // duplicate keys are reported and skipped.
  template <typename Fn>
  void ForEachEntry(const YAML::Node& map, const KeyPath& path, Fn fn) {
    std::map<std::string, int> seen;  // key -> line of its first occurrence
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node key_node = it->first;
      const YAML::Node value = it->second;
      if (!key_node.IsScalar()) {
        Error(key_node.Mark(), path, "expected a key name, got " + Got(key_node));
        continue;
      }
      const std::string key = key_node.Scalar();
      const KeyPath kp = path.Key(key);
      const int line = key_node.Mark().is_null() ? 0 : key_node.Mark().line + 1;
      auto [pos, inserted] = seen.emplace(key, line);
      if (!inserted) {
        std::string message = "duplicate key";
        if (pos->second > 0)
          message += " (first given on line " + std::to_string(pos->second) + ")";
        Error(key_node.Mark(), kp, message);
        continue;
      }
      // An empty value's mark points past it (often to the next line): report at the key.
      const YAML::Mark mark = value.IsNull() ? key_node.Mark() : value.Mark();
      fn(key, key_node, Item{value, mark, kp});
    }
  }

  // Reads the entries of the map `item` through `table`: each key's row reads its value into
  // `out`; kSection rows are handed to on_section(key, key_node, item), which returns whether
  // they read cleanly; a key without a row is an unknown key.
  template <typename S, typename OnSection>
  Given ReadEntries(const Item& item, const std::vector<OptionSpec<S>>& table, S* out,
                    OnSection on_section) {
    Given given;
    ForEachEntry(
        item.node, item.path, [&](const std::string& key, const YAML::Node& kn, const Item& value) {
          const OptionSpec<S>* row = FindOption(table, key);
          if (!row) {
            UnknownKey(kn, value.path, key, OptionKeys(table));
            return;
          }
          if (!row->only_when.empty()) given.type_specific.emplace_back(kn, value.path);
          const bool ok = row->kind == Kind::kSection ? on_section(key, kn, value)
                                                      : ReadOption(*row, value, row->ref(*out));
          given.entries.emplace(key, Given::Entry{kn, value, ok});
        });
    return given;
  }
  template <typename S>
  Given ReadEntries(const Item& item, const std::vector<OptionSpec<S>>& table, S* out) {
    return ReadEntries(item, table, out,
                       [](const std::string&, const YAML::Node&, const Item&) { return true; });
  }

  // Reports each key of `given` that needs the section's `type` to be something else: "only
  // valid when model.type is resnet18 (it is cnn)".
  template <typename S>
  void CheckTypeSpecific(const Given& given, const std::vector<OptionSpec<S>>& table,
                         const KeyPath& type_path, const std::string& type) {
    for (const auto& [kn, kp] : given.type_specific)
      if (const OptionSpec<S>* row = FindOption(table, kn.Scalar()))
        CheckTypeSpecificKey(kn, kp, row->only_when, type_path, type);
  }
  void CheckTypeSpecificKey(const YAML::Node& key_node, const KeyPath& path,
                            const std::string& only_when, const KeyPath& type_path,
                            const std::string& type);

  // --- Values (reader.cc) ---
  // One value through its row: the row's kind picks the reader, its range and nouns the
  // wording. False (with the problem reported) when the value does not fit.
  bool ReadOption(const OptionInfo& row, const Item& item, FieldRef field);
  bool ReadInt(const Item& item, int64_t min, int64_t max, int64_t* out);
  bool ReadIntField(const Item& item, int min, int max, int* out);
  bool ReadUInt64(const Item& item, uint64_t* out);
  bool ReadBool(const Item& item, bool* out);
  bool ReadString(const Item& item, const std::string& what, std::string* out);
  bool ReadChoice(const Item& item, const std::vector<std::string>& choices, std::string* out);
  bool ReadSkipBudget(const Item& item, SkipBudget* out);
  bool ReadDouble(const Item& item, const std::string& what, std::optional<Bound> lo,
                  std::optional<Bound> hi, double* out);
  bool ReadBytes(const OptionInfo& row, const Item& item, int64_t* out);
  bool ReadStringList(const OptionInfo& row, const Item& item, std::vector<std::string>* out);
  bool ReadIntList(const OptionInfo& row, const Item& item, std::vector<int>* out);

  // --- Sections (sections.cc) ---
  // Whether `item` is a map of keys to read: false for an empty section (all defaults), and
  // false with "expected a map (<keys>)" reported for anything else.
  bool IsSectionMap(const Item& item, const std::string& keys);
  bool ReadTopSection(const std::string& key, const YAML::Node& key_node, const Item& item,
                      PipelineOptions* options);
  void ReadSource(const YAML::Node& key_node, const Item& item, SourceOptions* source);
  void ReadBatch(const Item& item, BatchOptions* batch);
  void ReadCache(const YAML::Node& key_node, const Item& item, CacheOptions* cache);
  void ReadDistributed(const YAML::Node& key_node, const Item& item, DistributedOptions* dist);
  void ReadModel(const Item& item, ModelOptions* model);
  void ReadOptimizer(const Item& item, OptimizerOptions* optimizer);
  void ReadSchedule(const Item& item, ScheduleOptions* schedule);
  void ReadLoss(const Item& item, TrainOptions* train);
  void ReadEval(const YAML::Node& key_node, const Item& item, EvalOptions* eval);
  void CheckEvalDeterministic(const Item& value, size_t first, const EvalOptions& eval);

  // --- Stages (stages.cc) ---
  void ReadPipeline(const Item& item, std::vector<StageSpec>* pipeline);
  bool ReadStage(const Item& item, StageSpec* spec);
  const StageInfo* ReadStageType(const Item& item, StageSpec* spec);
  bool CompleteStage(const StageInfo& info, const Item& item, const KeyPath& path,
                     const std::set<std::string>& given, bool params_ok, StageSpec* spec);
  bool ReadParam(const ParamSpec& spec, const Item& item, ParamValue* out);
  bool ReadParamList(const ParamSpec& spec, const Item& item, ParamValue* out);
  bool ReadNumber(const ParamSpec& spec, bool integer, const Item& item, double* as_double,
                  int64_t* as_int);

  std::string file_;
  const StageRegistry& registry_;
  std::vector<ConfigError> errors_;
  std::vector<std::string> overridden_;  // canonical keys replaced by overrides
};

}  // namespace flowfeed::config
