// config/reference.cc: ConfigReference (config.h), the key tables of docs/config.md, printed
// from the option tables so that the doc cannot drift from what the reader accepts
// (tests/options_doc_test.cc compares them).
#include <string>
#include <type_traits>
#include <vector>

#include "config/option_table.h"
#include "flowfeed/config.h"
#include "flowfeed/util/text_format.h"

namespace flowfeed {
namespace config {
namespace {

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kInt:
    case Kind::kUInt64:
      return "integer";
    case Kind::kBool:
      return "bool";
    case Kind::kNumber:
      return "number";
    case Kind::kChoice:
      return "choice";
    case Kind::kString:
      return "string";
    case Kind::kBytes:
      return "size";
    case Kind::kSkipBudget:
      return "count or share";
    case Kind::kStringList:
      return "list of strings";
    case Kind::kIntList:
      return "list of integers";
    case Kind::kSection:
      return "section";
  }
  return "?";
}

// The default as a config would write it.
std::string DefaultText(const OptionInfo& row, const FieldRef& def) {
  return std::visit(
      [&](auto p) -> std::string {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return "";
        } else if constexpr (std::is_same_v<T, bool>) {
          return *p ? "true" : "false";
        } else if constexpr (std::is_same_v<T, double>) {
          return FormatNumber(*p);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          return row.kind == Kind::kBytes ? FormatBytes(*p) : std::to_string(*p);
        } else if constexpr (std::is_integral_v<T>) {
          return std::to_string(*p);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return p->empty() ? "\"\"" : *p;
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          return "[" + text::Join(*p, ", ") + "]";
        } else if constexpr (std::is_same_v<T, std::vector<int>>) {
          std::vector<std::string> items;
          for (int v : *p) items.push_back(std::to_string(v));
          return "[" + text::Join(items, ", ") + "]";
        } else if constexpr (std::is_same_v<T, SkipBudget>) {
          return p->count >= 0 ? std::to_string(p->count) : FormatNumber(p->fraction * 100) + "%";
        } else {
          for (const Choice& c : row.choices)
            if (c.value == int(*p)) return c.name;
          return "?";
        }
      },
      def);
}

// What a value may be: "> 0", "`nchw`, `nhwc`", plus "required" or the types it needs.
std::string AllowedText(const OptionInfo& row) {
  std::string s;
  if (row.kind == Kind::kChoice) {
    std::vector<std::string> names;
    for (const std::string& n : row.ChoiceNames()) names.push_back("`" + n + "`");
    s = text::Join(names, ", ");
  } else if (row.kind == Kind::kUInt64) {
    s = ">= 0";
  } else if (row.kind == Kind::kIntList) {
    s = "items" + IntervalText(row.lo, row.hi);
  } else if (row.kind == Kind::kSkipBudget) {
    s = "a count >= 0, or 0% to 100%";
  } else {
    s = IntervalText(row.lo, row.hi, row.kind == Kind::kBytes);
    if (!s.empty()) s.erase(0, 1);  // the leading space
  }
  if (row.required) s += s.empty() ? "required" : "; required";
  if (!row.only_when.empty()) s += (s.empty() ? "" : "; ") + ("type " + row.only_when + " only");
  return s;
}

template <typename S>
void AppendTable(const std::string& title, std::string* out) {
  *out +=
      "### " + title + "\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
  S defaults;
  for (const OptionSpec<S>& row : Options<S>()) {
    const FieldRef def = row.ref(defaults);
    // A required key's struct default is never used by a config, so it is not shown.
    std::string d = row.required ? "" : DefaultText(row, def);
    if (!d.empty()) d = "`" + d + "`";
    std::string line = "| `" + row.key + "` | " + KindName(row.kind) + " | " + d + " | " +
                       AllowedText(row) + " | " + row.doc + " |\n";
    *out += line;
  }
  *out += "\n";
}

}  // namespace
}  // namespace config

std::string ConfigReference() {
  using config::AppendTable;
  std::string out =
      "<!-- Generated from engine/src/config/option_table.cc by `flowfeed options`; "
      "rewrite with tools/gen_config_reference.sh. -->\n\n";
  AppendTable<PipelineOptions>("Top level", &out);
  AppendTable<SourceOptions>("`source:` (and `eval.source:`)", &out);
  AppendTable<StageSpec>("`pipeline:` entries (besides the stage's parameters)", &out);
  AppendTable<BatchOptions>("`batch:`", &out);
  AppendTable<CacheOptions>("`cache:`", &out);
  AppendTable<DistributedOptions>("`distributed:`", &out);
  AppendTable<ModelOptions>("`model:` (train)", &out);
  AppendTable<OptimizerOptions>("`optimizer:` (train)", &out);
  AppendTable<ScheduleOptions>("`schedule:` (train)", &out);
  AppendTable<TrainOptions>("`loss:` (train)", &out);
  AppendTable<EvalOptions>("`eval:` (train)", &out);
  out.pop_back();  // one blank line before the end marker, not two
  return out;
}

}  // namespace flowfeed
