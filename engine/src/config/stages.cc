// config/stages.cc: the `pipeline:` list (see reader.h). Each entry is a stage type from the
// registry, the keys every stage takes (Options<StageSpec>()), and the type's parameters,
// checked against its schema; the stage's factory then runs once as a final check.
#include <algorithm>
#include <exception>
#include <memory>
#include <optional>
#include <set>

#include "config/reader.h"
#include "flowfeed/util/text_format.h"

namespace flowfeed::config {

void ConfigReader::ReadPipeline(const Item& item, std::vector<StageSpec>* pipeline) {
  if (item.node.IsNull()) return;  // `pipeline:` with nothing under it: no stages
  if (!item.node.IsSequence()) {
    Error(item, "expected a list of stages (- type: ...), got " + Got(item.node));
    return;
  }
  for (size_t i = 0; i < item.node.size(); ++i) {
    const YAML::Node entry = item.node[i];
    StageSpec spec;
    ReadStage(Item{entry, entry.Mark(), item.path.Index(i)}, &spec);
    pipeline->push_back(std::move(spec));
  }
  // Unique names: the second "resize" is "resize#2", the third "resize#3".
  std::set<std::string> used;
  for (StageSpec& spec : *pipeline) {
    if (used.count(spec.name)) {
      for (int k = 2;; ++k) {
        std::string candidate = spec.name + "#" + std::to_string(k);
        if (!used.count(candidate)) {
          spec.name = std::move(candidate);
          break;
        }
      }
    }
    used.insert(spec.name);
  }
}

// The type first: it decides which other keys are valid. nullptr (with the problem reported)
// when the entry has no type or one the registry lacks.
const StageInfo* ConfigReader::ReadStageType(const Item& item, StageSpec* spec) {
  YAML::Node type_node;
  YAML::Node type_key;
  bool has_type = false;
  for (auto it = item.node.begin(); it != item.node.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == "type") {
      type_key = it->first;
      type_node = it->second;
      has_type = true;
      break;
    }
  }
  const KeyPath type_path = item.path.Key("type");
  if (!has_type) {
    Error(item.mark, type_path, "missing required key");
    return nullptr;
  }
  if (!type_node.IsScalar() || type_node.Scalar().empty()) {
    Error(type_node.IsNull() ? type_key.Mark() : type_node.Mark(), type_path,
          "expected a stage type name, got " + Got(type_node));
    return nullptr;
  }
  spec->type = type_node.Scalar();
  const StageInfo* info = registry_.Find(spec->type);
  if (!info) {
    const std::vector<std::string> names = registry_.Names();
    std::string message = "unknown stage type \"" + spec->type + "\"";
    const std::string match = ClosestMatch(spec->type, names);
    if (!match.empty())
      message += "; did you mean \"" + match + "\"?";
    else
      message += " (known types: " + text::Join(names, ", ") + ")";
    Error(type_node.Mark(), type_path, message);
  }
  return info;
}

bool ConfigReader::ReadStage(const Item& item, StageSpec* spec) {
  spec->where = Locate(item.mark, item.path);
  if (!item.node.IsMap()) {
    Error(item, "expected a map with a \"type\" key, got " + Got(item.node));
    return false;
  }
  const StageInfo* info = ReadStageType(item, spec);
  spec->name = spec->type;

  KeyPath path = item.path;
  if (info) path.display += " (" + spec->type + ")";
  const std::vector<OptionSpec<StageSpec>>& table = Options<StageSpec>();
  std::vector<std::string> candidates = OptionKeys(table);
  if (info)
    for (const ParamSpec& p : info->params) candidates.push_back(p.name);

  bool params_ok = info != nullptr;
  std::set<std::string> given;
  std::optional<Item> timeout;  // where timeout_ms was given, checked against isolate below
  ForEachEntry(item.node, path,
               [&](const std::string& key, const YAML::Node& kn, const Item& value) {
                 if (key == "type") return;
                 if (const OptionSpec<StageSpec>* row = FindOption(table, key)) {
                   if (key == "timeout_ms") timeout = value;
                   ReadOption(*row, value, row->ref(*spec));
                 } else if (!info) {
                   // Unknown stage type: its parameters cannot be checked (the type error says
                   // enough).
                 } else if (const ParamSpec* ps = info->FindParam(key)) {
                   given.insert(key);
                   ParamValue v;
                   if (ReadParam(*ps, value, &v))
                     spec->params.Set(key, std::move(v));
                   else
                     params_ok = false;
                 } else {
                   UnknownKey(kn, value.path, key, candidates);
                 }
               });
  // Only a worker process can be stopped when its time is up; a limit the engine would ignore
  // is refused rather than trusted.
  if (timeout && spec->isolate != "process")
    Error(*timeout, "timeout_ms needs isolate: process (a stage in this process cannot be "
                    "stopped; add isolate: process or remove timeout_ms)");
  if (!info) return false;
  return CompleteStage(*info, item, path, given, params_ok, spec);
}

// Fills in the defaults of parameters not given, then builds the stage once: relations between
// parameters (min <= max ...) are the factory's to check. The stage built here is thrown away.
bool ConfigReader::CompleteStage(const StageInfo& info, const Item& item, const KeyPath& path,
                                 const std::set<std::string>& given, bool params_ok,
                                 StageSpec* spec) {
  for (const ParamSpec& ps : info.params) {
    if (given.count(ps.name)) continue;
    if (ps.default_value) {
      spec->params.Set(ps.name, *ps.default_value);
    } else {
      Error(item.mark, path.Key(ps.name),
            std::string("missing required parameter (") + ParamTypeName(ps.type) + ")");
      params_ok = false;
    }
  }
  if (!params_ok) return false;
  try {
    Result<std::unique_ptr<Stage>> built = info.factory(spec->params);
    if (!built.ok()) {
      Error(item.mark, path, built.status().message());
      return false;
    }
  } catch (const std::exception& e) {
    Error(item.mark, path, std::string("stage could not be built: ") + e.what());
    return false;
  }
  return true;
}

// ------------------------------------------------------------------------------------------------
// Stage parameters

namespace {

std::string NumberNoun(bool integer, bool plural) {
  if (integer) return plural ? "integers" : "an integer";
  return plural ? "numbers" : "a number";
}

// A list parameter also takes one plain number: repeated max_items times with scalar_broadcast,
// else (when one item is a valid length) as a one-item list, so `size: 256` means [256].
bool AcceptsScalar(const ParamSpec& p) { return p.scalar_broadcast || p.min_items <= 1; }

// "a list of 2 numbers in [0, 1]", "an integer or a list of 2 integers >= 0".
std::string ListText(const ParamSpec& p, bool integer) {
  std::string count;
  if (p.max_items >= 0 && p.min_items == p.max_items)
    count = std::to_string(p.min_items) + " ";
  else if (p.max_items >= 0 && p.min_items > 0)
    count = std::to_string(p.min_items) + " to " + std::to_string(p.max_items) + " ";
  else if (p.max_items >= 0)
    count = "at most " + std::to_string(p.max_items) + " ";
  else if (p.min_items > 0)
    count = "at least " + std::to_string(p.min_items) + " ";
  std::string s = "a list of " + count + NumberNoun(integer, true) + RangeText(p.min, p.max);
  if (AcceptsScalar(p)) s = NumberNoun(integer, false) + " or " + s;
  return s;
}

}  // namespace

// One number (an element of a list, or a lone int/float parameter), range-checked.
bool ConfigReader::ReadNumber(const ParamSpec& spec, bool integer, const Item& item,
                              double* as_double, int64_t* as_int) {
  const std::string want = NumberNoun(integer, false) + RangeText(spec.min, spec.max);
  bool ok = item.node.IsScalar() && !IsQuoted(item.node);
  if (ok) {
    if (integer) {
      ok = ParseInt64(item.node.Scalar(), as_int);
      *as_double = double(*as_int);
    } else {
      ok = ParseDouble(item.node.Scalar(), as_double);
    }
  }
  if (ok && spec.min && *as_double < *spec.min) ok = false;
  if (ok && spec.max && *as_double > *spec.max) ok = false;
  if (!ok) Error(item, "expected " + want + ", got " + GotValue(item.node));
  return ok;
}

bool ConfigReader::ReadParam(const ParamSpec& spec, const Item& item, ParamValue* out) {
  switch (spec.type) {
    case ParamType::kBool: {
      bool b = false;
      if (!ReadBool(item, &b)) return false;
      *out = b;
      return true;
    }
    case ParamType::kInt:
    case ParamType::kFloat: {
      const bool integer = spec.type == ParamType::kInt;
      double d = 0;
      int64_t i = 0;
      if (!ReadNumber(spec, integer, item, &d, &i)) return false;
      if (integer)
        *out = i;
      else
        *out = d;
      return true;
    }
    case ParamType::kString: {
      if (!spec.choices.empty()) {
        std::string s;
        if (!ReadChoice(item, spec.choices, &s)) return false;
        *out = s;
        return true;
      }
      if (!item.node.IsScalar()) {
        Error(item, "expected a string, got " + Got(item.node));
        return false;
      }
      *out = item.node.Scalar();
      return true;
    }
    case ParamType::kIntList:
    case ParamType::kFloatList:
      return ReadParamList(spec, item, out);
  }
  Error(item, "parameter of an unknown type");
  return false;
}

// A list parameter: a list within the item count, or one number where AcceptsScalar allows.
bool ConfigReader::ReadParamList(const ParamSpec& spec, const Item& item, ParamValue* out) {
  const bool integer = spec.type == ParamType::kIntList;
  std::vector<int64_t> ints;
  std::vector<double> doubles;
  const auto store = [&]() {
    if (integer)
      *out = ints;
    else
      *out = doubles;
  };
  if (item.node.IsScalar() && AcceptsScalar(spec)) {
    double d = 0;
    int64_t i = 0;
    if (!ReadNumber(spec, integer, item, &d, &i)) return false;
    int n = 1;
    if (spec.scalar_broadcast)
      n = spec.max_items >= 0 ? spec.max_items : std::max(1, spec.min_items);
    ints.assign(size_t(n), i);
    doubles.assign(size_t(n), d);
    store();
    return true;
  }
  if (!item.node.IsSequence()) {
    Error(item, "expected " + ListText(spec, integer) + ", got " + Got(item.node));
    return false;
  }
  const size_t n = item.node.size();
  bool ok = true;
  if (n < size_t(std::max(0, spec.min_items)) ||
      (spec.max_items >= 0 && n > size_t(spec.max_items))) {
    Error(item, "expected " + ListText(spec, integer) + ", got a list of " + std::to_string(n) +
                    (n == 1 ? " item" : " items"));
    ok = false;
  }
  for (size_t k = 0; k < n; ++k) {
    const YAML::Node e = item.node[k];
    double d = 0;
    int64_t i = 0;
    if (!ReadNumber(spec, integer, Item{e, e.Mark(), item.path.Index(k)}, &d, &i)) {
      ok = false;
      continue;
    }
    ints.push_back(i);
    doubles.push_back(d);
  }
  if (!ok) return false;
  store();
  return true;
}

}  // namespace flowfeed::config
