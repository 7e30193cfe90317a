// config/option_table.h: every config key of every section, described once.
//
// A table per options struct (options.h) lists its keys in the order "did you mean" considers
// them: the key, its kind (integer, number, choice ...), its range or choices, the struct field
// it fills, and one line of documentation. From these rows come
//   - reading: the YAML reader (reader.h) dispatches each key through its row (type, range and
//     the wording of "expected ..." errors) and names the rows' keys for unknown ones;
//   - checking: Validate (options.h) checks built options against the same ranges;
//   - the reference: ConfigReference (config.h) prints the key tables of docs/config.md.
// Defaults are not repeated here: they stay in options.h's struct bodies, and the reference
// reads them from a default-constructed struct through the rows' field references.
//
// The tables are built once, on first use (function-local statics), and are immutable after:
// safe to read from any thread. No YAML here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "config/values.h"
#include "flowfeed/options.h"

namespace flowfeed::config {

enum class Kind {
  kInt,         // int or int64_t field; `lo` is the minimum (closed), `hi` the maximum if any
  kUInt64,      // uint64_t field, any value >= 0
  kBool,        // true | false
  kNumber,      // double within [lo, hi], either end optional or open
  kChoice,      // one of `choices`: a std::string field (the name) or an enum field (its value)
  kString,      // a non-empty scalar; `what` names it in errors ("a file path")
  kBytes,       // a size such as 8GiB, 512MiB or 25% (ParseByteSize) into an int64_t field
  kSkipBudget,  // a count (100), or a share of the epoch (5%, 0.05)
  kStringList,  // a non-empty list of non-empty strings (`item_what` names one)
  kIntList,     // a non-empty list of integers >= lo; a lone integer is a one-item list
  kSection,     // a nested map or list, read by its own section reader (no field here)
};

// One allowed value of a kChoice option; `value` is the enum value for enum fields.
struct Choice {
  const char* name;
  int value;
};

// A pointer to the field an option fills, inside one options struct.
using FieldRef =
    std::variant<std::monostate, int*, int64_t*, uint64_t*, bool*, double*, std::string*,
                 std::vector<std::string>*, std::vector<int>*, SkipBudget*, OnError*, Layout*,
                 DType*, CacheMode*, ShardPolicy*, UnevenPolicy*>;

// What a key is, independent of the struct it lives in.
struct OptionInfo {
  std::string key;
  Kind kind = Kind::kSection;
  std::string doc;  // one line for the reference; says what the default means when special
  std::optional<Bound> lo, hi;
  std::vector<Choice> choices;
  std::string what;       // kString, kNumber, lists: the noun of "expected ..." ("a file path")
  std::string item_what;  // kStringList: the noun for one item
  // The section's `type` values this key is valid for ("tar", "image_folder or tar"); "": all.
  std::string only_when;
  bool required = false;  // a config must give it

  std::vector<std::string> ChoiceNames() const;
};

// A key of the options struct S, with the way to reach its field.
template <typename S>
struct OptionSpec : OptionInfo {
  using Ref = FieldRef (*)(S&);
  Ref ref = nullptr;

  OptionSpec(const char* key_, Kind kind_, Ref ref_, const char* doc_) : ref(ref_) {
    key = key_;
    kind = kind_;
    doc = doc_;
  }
  // Builders for the tables; each returns *this so a row reads as one expression.
  OptionSpec& Min(double v) {
    lo = Bound{v, false};
    return *this;
  }
  OptionSpec& Above(double v) {
    lo = Bound{v, true};
    return *this;
  }
  OptionSpec& Max(double v) {
    hi = Bound{v, false};
    return *this;
  }
  OptionSpec& Below(double v) {
    hi = Bound{v, true};
    return *this;
  }
  OptionSpec& Choices(std::vector<Choice> c) {
    choices = std::move(c);
    return *this;
  }
  OptionSpec& What(const char* w) {
    what = w;
    return *this;
  }
  OptionSpec& ItemWhat(const char* w) {
    item_what = w;
    return *this;
  }
  OptionSpec& OnlyWhen(std::string t) {
    only_when = std::move(t);
    return *this;
  }
  OptionSpec& Required() {
    required = true;
    return *this;
  }
};

// The table of options struct S. Specialized for PipelineOptions (the top level of a config),
// SourceOptions (`source:` and `eval.source:`), BatchOptions, CacheOptions, DistributedOptions,
// ModelOptions, OptimizerOptions, ScheduleOptions, TrainOptions (`loss:`, whose only key lives
// in TrainOptions), EvalOptions and StageSpec (the keys every pipeline entry takes besides its
// stage's parameters).
template <typename S>
const std::vector<OptionSpec<S>>& Options();

// The row for `key`, or nullptr.
template <typename S>
const OptionSpec<S>* FindOption(const std::vector<OptionSpec<S>>& table, const std::string& key) {
  for (const OptionSpec<S>& row : table)
    if (row.key == key) return &row;
  return nullptr;
}

// The keys in table order (candidates for "did you mean").
template <typename S>
std::vector<std::string> OptionKeys(const std::vector<OptionSpec<S>>& table) {
  std::vector<std::string> keys;
  for (const OptionSpec<S>& row : table) keys.push_back(row.key);
  return keys;
}

// The defaults of the idx source's files, filled in by the reader when a config names neither.

}  // namespace flowfeed::config
