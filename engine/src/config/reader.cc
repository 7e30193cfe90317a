// config/reader.cc: the reader's core (see reader.h): where problems are reported, and values
// read through their option rows.
//
// Numbers are parsed here (values.h), not with yaml-cpp's as<T>(), so that "1.5" is not an int,
// "0x10" or "1_000" are not silently accepted and a quoted "42" stays a string.
#include "config/reader.h"

#include <algorithm>
#include <climits>
#include <limits>
#include <type_traits>

#include "flowfeed/cache.h"
#include "flowfeed/util/text_format.h"

namespace flowfeed::config {

// A quoted scalar ("42", '42', !!str 42) is a string in YAML, never a number or a bool.
bool IsQuoted(const YAML::Node& n) { return n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str"; }

// What the user wrote, for "got ...": the scalar text in quotes, or "a list" / "a map".
std::string Got(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a map";
  std::string text = n.Scalar();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted += '\\';
    if (c == '\n') {
      quoted += "\\n";
      continue;
    }
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

// Got() for places that want a number or a bool: a quoted scalar is called a string.
std::string GotValue(const YAML::Node& n) {
  if (n.IsScalar() && IsQuoted(n)) return "the string " + Got(n);
  return Got(n);
}

// ------------------------------------------------------------------------------------------------
// Where problems are reported

SourceLocation ConfigReader::LocateMark(const YAML::Mark& mark) const {
  if (mark.is_null() || mark.line < 0) return SourceLocation{file_, 0, 0};
  return SourceLocation{file_, mark.line + 1, mark.column + 1};
}

// Where a problem at `path` is reported: the override that supplied it, else the file.
SourceLocation ConfigReader::Locate(const YAML::Mark& mark, const KeyPath& path) const {
  const std::string* best = nullptr;
  for (const std::string& key : overridden_) {
    if (path.canon == key ||
        (path.canon.size() > key.size() && path.canon.compare(0, key.size(), key) == 0 &&
         path.canon[key.size()] == '.')) {
      if (!best || key.size() >= best->size()) best = &key;
    }
  }
  if (best) return SourceLocation{"--set " + *best, 0, 0};
  if (mark.is_null() || mark.line < 0) {
    // No place in the file: a map that an override created on its way to a new key (e.g. the
    // `source` of `--set source.root=DIR`). Name the override sharing the longest leading
    // part of the path.
    const std::vector<std::string> segs = Split(path.canon, '.');
    size_t best_common = 0;
    for (const std::string& key : overridden_) {
      const std::vector<std::string> ks = Split(key, '.');
      size_t common = 0;
      while (common < segs.size() && common < ks.size() && segs[common] == ks[common]) ++common;
      if (common > best_common) {
        best_common = common;
        best = &key;
      }
    }
    if (best) return SourceLocation{"--set " + *best, 0, 0};
  }
  return LocateMark(mark);
}

void ConfigReader::UnknownKey(const YAML::Node& key_node, const KeyPath& path,
                              const std::string& key, const std::vector<std::string>& candidates) {
  std::string message = "unknown key";
  const std::string match = ClosestMatch(key, candidates);
  if (!match.empty()) {
    message += "; did you mean \"" + match + "\"?";
  } else {
    std::vector<std::string> sorted = candidates;
    std::sort(sorted.begin(), sorted.end());
    message += " (known keys: " + text::Join(sorted, ", ") + ")";
  }
  Error(key_node.Mark(), path, message);
}

void ConfigReader::CheckTypeSpecificKey(const YAML::Node& key_node, const KeyPath& path,
                                        const std::string& only_when, const KeyPath& type_path,
                                        const std::string& type) {
  // "image_folder or tar": valid for either.
  if (only_when.empty() ||
      (" or " + only_when + " or ").find(" or " + type + " or ") != std::string::npos)
    return;
  Error(key_node.Mark(), path,
        "only valid when " + type_path.display + " is " + only_when + " (it is " + type + ")");
}

// ------------------------------------------------------------------------------------------------
// Values

bool ConfigReader::ReadInt(const Item& item, int64_t min, int64_t max, int64_t* out) {
  const std::string want =
      max < std::numeric_limits<int64_t>::max()
          ? "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]"
          : "expected an integer >= " + std::to_string(min);
  int64_t v = 0;
  if (!item.node.IsScalar() || IsQuoted(item.node) || !ParseInt64(item.node.Scalar(), &v) ||
      v < min || v > max) {
    Error(item, want + ", got " + GotValue(item.node));
    return false;
  }
  *out = v;
  return true;
}

bool ConfigReader::ReadIntField(const Item& item, int min, int max, int* out) {
  int64_t v = 0;
  if (!ReadInt(item, min, max, &v)) return false;
  *out = int(v);
  return true;
}

bool ConfigReader::ReadUInt64(const Item& item, uint64_t* out) {
  uint64_t v = 0;
  if (!item.node.IsScalar() || IsQuoted(item.node) || !ParseUInt64(item.node.Scalar(), &v)) {
    Error(item, "expected an integer >= 0, got " + GotValue(item.node));
    return false;
  }
  *out = v;
  return true;
}

bool ConfigReader::ReadBool(const Item& item, bool* out) {
  bool v = false;
  if (!item.node.IsScalar() || IsQuoted(item.node) || !ParseBool(item.node.Scalar(), &v)) {
    Error(item, "expected true or false, got " + GotValue(item.node));
    return false;
  }
  *out = v;
  return true;
}

bool ConfigReader::ReadString(const Item& item, const std::string& what, std::string* out) {
  if (!item.node.IsScalar() || item.node.Scalar().empty()) {
    Error(item, "expected " + what + ", got " + Got(item.node));
    return false;
  }
  *out = item.node.Scalar();
  return true;
}

bool ConfigReader::ReadChoice(const Item& item, const std::vector<std::string>& choices,
                              std::string* out) {
  if (!item.node.IsScalar() ||
      std::find(choices.begin(), choices.end(), item.node.Scalar()) == choices.end()) {
    std::string msg = "expected one of " + text::Join(choices, ", ") + ", got " + Got(item.node);
    if (item.node.IsScalar()) {
      std::string close = ClosestMatch(item.node.Scalar(), choices);
      if (!close.empty()) msg += "; did you mean \"" + close + "\"?";
    }
    Error(item, msg);
    return false;
  }
  *out = item.node.Scalar();
  return true;
}

// `100` (a count), `5%` or `0.05` (a share of the epoch; 1.0 or 100%: no limit).
bool ConfigReader::ReadSkipBudget(const Item& item, SkipBudget* out) {
  const std::string want =
      "expected a count of samples (an integer >= 0) or a share of the epoch (0.05 or 5%)";
  if (!item.node.IsScalar() || IsQuoted(item.node)) {
    Error(item, want + ", got " + GotValue(item.node));
    return false;
  }
  std::string text = item.node.Scalar();
  int64_t count = 0;
  if (ParseInt64(text, &count)) {
    if (count < 0) {
      Error(item, want + ", got " + GotValue(item.node));
      return false;
    }
    out->count = count;
    return true;
  }
  const bool percent = !text.empty() && text.back() == '%';
  if (percent) text.pop_back();
  double v = 0;
  if (!ParseDouble(text, &v) || !(v >= 0) || v > (percent ? 100.0 : 1.0)) {
    Error(item, want + ", got " + GotValue(item.node));
    return false;
  }
  out->count = -1;
  out->fraction = percent ? v / 100.0 : v;
  return true;
}

// A number (an int or a decimal such as 5e-4) within [lo, hi], either end optional or open;
// "expected a number in [0, 1), got ...".
bool ConfigReader::ReadDouble(const Item& item, const std::string& what, std::optional<Bound> lo,
                              std::optional<Bound> hi, double* out) {
  double v = 0;
  bool ok = item.node.IsScalar() && !IsQuoted(item.node) && ParseDouble(item.node.Scalar(), &v);
  if (ok) ok = InInterval(v, lo, hi);
  if (!ok) {
    Error(item, "expected " + what + IntervalText(lo, hi) + ", got " + GotValue(item.node));
    return false;
  }
  *out = v;
  return true;
}

bool ConfigReader::ReadBytes(const OptionInfo& row, const Item& item, int64_t* out) {
  Result<int64_t> bytes =
      item.node.IsScalar()
          ? ParseByteSize(item.node.Scalar())
          : Result<int64_t>(Status::InvalidArgument(
                "expected a size such as 8GiB, 512MiB or 25%, got " + Got(item.node)));
  if (!bytes.ok()) {
    Error(item, bytes.status().message());
    return false;
  }
  if (!InInterval(double(bytes.value()), row.lo, row.hi)) {
    Error(item, "expected a size" + IntervalText(row.lo, row.hi, true) + ", got " +
                    GotValue(item.node));
    return false;
  }
  *out = bytes.value();
  return true;
}

bool ConfigReader::ReadStringList(const OptionInfo& row, const Item& item,
                                  std::vector<std::string>* out) {
  if (!item.node.IsSequence() || item.node.size() == 0) {
    Error(item, "expected " + row.what + ", got " +
                    (item.node.IsSequence() ? std::string("an empty list") : Got(item.node)));
    return false;
  }
  std::vector<std::string> values;
  bool ok = true;
  for (size_t i = 0; i < item.node.size(); ++i) {
    const YAML::Node e = item.node[i];
    std::string s;
    if (!ReadString(Item{e, e.Mark(), item.path.Index(i)}, row.item_what, &s)) ok = false;
    values.push_back(s);
  }
  if (ok) *out = std::move(values);
  return ok;
}

bool ConfigReader::ReadIntList(const OptionInfo& row, const Item& item, std::vector<int>* out) {
  const int min = row.lo ? int(row.lo->value) : INT_MIN;
  const int max = row.hi ? int(row.hi->value) : INT_MAX;
  // A lone number is a one-item list, so `--set model.hidden=512` works.
  if (item.node.IsScalar()) {
    int v = 0;
    if (!ReadIntField(item, min, max, &v)) return false;
    *out = {v};
    return true;
  }
  if (!item.node.IsSequence() || item.node.size() == 0) {
    Error(item, "expected " + row.what + ", got " +
                    (item.node.IsSequence() ? std::string("an empty list") : Got(item.node)));
    return false;
  }
  std::vector<int> values;
  bool ok = true;
  for (size_t i = 0; i < item.node.size(); ++i) {
    const YAML::Node e = item.node[i];
    int v = 0;
    if (!ReadIntField(Item{e, e.Mark(), item.path.Index(i)}, min, max, &v)) ok = false;
    values.push_back(v);
  }
  if (ok) *out = std::move(values);
  return ok;
}

namespace {

// Stores choice `value` into an enum field; string fields take the name instead (ReadOption).
struct SetEnum {
  int value;
  template <typename T>
  void operator()(T* p) const {
    if constexpr (std::is_enum_v<T>) *p = T(value);
  }
  void operator()(std::monostate) const {}
};

}  // namespace

bool ConfigReader::ReadOption(const OptionInfo& row, const Item& item, FieldRef field) {
  switch (row.kind) {
    case Kind::kInt: {
      const int64_t min = row.lo ? int64_t(row.lo->value) : std::numeric_limits<int64_t>::min();
      int64_t v = 0;
      if (int** p = std::get_if<int*>(&field)) {
        if (!ReadInt(item, min, row.hi ? int64_t(row.hi->value) : INT_MAX, &v)) return false;
        **p = int(v);
        return true;
      }
      const int64_t max = row.hi ? int64_t(row.hi->value) : std::numeric_limits<int64_t>::max();
      if (!ReadInt(item, min, max, &v)) return false;
      *std::get<int64_t*>(field) = v;
      return true;
    }
    case Kind::kUInt64:
      return ReadUInt64(item, std::get<uint64_t*>(field));
    case Kind::kBool:
      return ReadBool(item, std::get<bool*>(field));
    case Kind::kNumber:
      return ReadDouble(item, row.what.empty() ? "a number" : row.what, row.lo, row.hi,
                        std::get<double*>(field));
    case Kind::kChoice: {
      std::string name;
      if (!ReadChoice(item, row.ChoiceNames(), &name)) return false;
      if (std::string** s = std::get_if<std::string*>(&field)) {
        **s = name;
        return true;
      }
      for (const Choice& c : row.choices)
        if (name == c.name) std::visit(SetEnum{c.value}, field);
      return true;
    }
    case Kind::kString:
      return ReadString(item, row.what, std::get<std::string*>(field));
    case Kind::kBytes:
      return ReadBytes(row, item, std::get<int64_t*>(field));
    case Kind::kSkipBudget:
      return ReadSkipBudget(item, std::get<SkipBudget*>(field));
    case Kind::kStringList:
      return ReadStringList(row, item, std::get<std::vector<std::string>*>(field));
    case Kind::kIntList:
      return ReadIntList(row, item, std::get<std::vector<int>*>(field));
    case Kind::kSection:
      return true;
  }
  return true;
}

}  // namespace flowfeed::config
