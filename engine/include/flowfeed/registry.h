// flowfeed/registry.h: stage types by name, with their parameter schemas and factories.
//
// A StageRegistry maps the `type:` of a pipeline entry to a StageInfo: documentation, traits,
// the parameters it accepts (type, doc, default, range, choices) and a factory. The config
// parser checks every entry's parameters against the schema before anything runs, so a typo or
// an out-of-range value is reported with its line and column. The registry is an ordinary object
// (no process-wide singleton): a test makes a fresh one; RegisterBuiltinStages() fills one with
// flowfeed's own stages.
//
// Thread-safety: Register() needs exclusive access; Find()/List() may run concurrently once
// registration is over.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "flowfeed/stage.h"
#include "flowfeed/status.h"

namespace flowfeed {

enum class ParamType { kBool, kInt, kFloat, kString, kIntList, kFloatList };
const char* ParamTypeName(ParamType t);  // "bool", "int", "float", "string", "int list", ...

using ParamValue =
    std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;

// One parameter of a stage type.
struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kFloat;
  std::string doc;
  std::optional<ParamValue> default_value;  // none: the parameter is required
  std::optional<double> min, max;            // inclusive bounds for numbers and list elements
  std::vector<std::string> choices;          // allowed values of a string parameter
  int min_items = 0, max_items = -1;         // list length bounds (-1: unbounded)
  // A list parameter may also be written as one number, which stands for every item
  // (e.g. `size: 224` for [224, 224]); the parser then repeats it max_items times.
  bool scalar_broadcast = false;

  // Helpers that keep schema tables short.
  static ParamSpec Bool(std::string name, bool def, std::string doc);
  static ParamSpec Int(std::string name, std::optional<int64_t> def, std::string doc,
                       std::optional<double> min = std::nullopt,
                       std::optional<double> max = std::nullopt);
  static ParamSpec Float(std::string name, std::optional<double> def, std::string doc,
                         std::optional<double> min = std::nullopt,
                         std::optional<double> max = std::nullopt);
  static ParamSpec String(std::string name, std::optional<std::string> def, std::string doc,
                          std::vector<std::string> choices = {});
  static ParamSpec FloatList(std::string name, std::optional<std::vector<double>> def,
                             std::string doc, int min_items, int max_items,
                             std::optional<double> min = std::nullopt,
                             std::optional<double> max = std::nullopt);
  static ParamSpec IntList(std::string name, std::optional<std::vector<int64_t>> def,
                           std::string doc, int min_items, int max_items,
                           std::optional<double> min = std::nullopt,
                           std::optional<double> max = std::nullopt);

  // "224", "[0.08, 1]", "rgb" ...
  static std::string FormatValue(const ParamValue& v);
};

// Checked parameter values for one stage instance: every declared parameter is present (the
// parser fills in defaults). Accessors throw std::invalid_argument naming the parameter when the
// name or type is wrong, which is a bug in the stage, not in the user's config.
class StageParams {
 public:
  void Set(const std::string& name, ParamValue value) { values_[name] = std::move(value); }
  bool Has(const std::string& name) const { return values_.count(name) != 0; }

  bool Bool(const std::string& name) const;
  int64_t Int(const std::string& name) const;
  double Float(const std::string& name) const;  // also accepts an int value
  const std::string& String(const std::string& name) const;
  const std::vector<int64_t>& IntList(const std::string& name) const;
  std::vector<double> FloatList(const std::string& name) const;  // also accepts an int list

  const std::map<std::string, ParamValue>& values() const { return values_; }
  // "size=224 scale=[0.08, 1]" in name order, for reports and fingerprints.
  std::string ToString() const;

 private:
  const ParamValue& Get(const std::string& name) const;
  std::map<std::string, ParamValue> values_;
};

// Builds a stage from checked parameters. A non-OK Result is a config error (for relations
// between parameters that a schema cannot state, such as min <= max); its message names the
// parameter. The registry's caller owns the returned stage.
using StageFactory = std::function<Result<std::unique_ptr<Stage>>(const StageParams&)>;

struct StageInfo {
  std::string name;  // the `type:` in YAML
  std::string doc;   // one or two sentences
  StageTraits traits;
  std::vector<ParamSpec> params;
  StageFactory factory;
  std::string origin = "built-in";  // or the plugin file that registered it

  const ParamSpec* FindParam(std::string_view param) const;
};

class StageRegistry {
 public:
  // Fails (InvalidArgument) on an empty name, a missing factory, or a name already registered;
  // the message names both origins.
  Status Register(StageInfo info);
  const StageInfo* Find(std::string_view name) const;
  std::vector<const StageInfo*> List() const;  // sorted by name
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, StageInfo, std::less<>> stages_;
};

// Adds decode, resize, center_crop, random_resized_crop, random_horizontal_flip, normalize.
void RegisterBuiltinStages(StageRegistry* registry);

}  // namespace flowfeed
