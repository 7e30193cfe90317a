// config.cc: YAML config files to PipelineOptions (see flowfeed/config.h).
//
// The only file of the project that includes yaml-cpp. The flow is:
//   1. parse the text (a syntax error is one ConfigError and the end of it);
//   2. apply the `--set key.path=value` overrides to the YAML tree, remembering which paths they
//      replaced so that errors inside them are reported at "--set KEY" rather than at a line of
//      the override's own text;
//   3. read the tree into the typed structs, collecting every problem (unknown keys with "did you
//      mean", wrong types, out-of-range values, missing required keys, stage parameters checked
//      against the registry's schemas, and each stage's factory run once as a final check).
//
// Numbers are parsed here, not with yaml-cpp's as<T>(), so that "1.5" is not an int, "0x10" or
// "1_000" are not silently accepted and a quoted "42" stays a string.
#include "flowfeed/config.h"

#include "flowfeed/cache.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/plugin.h"
#include "text_format.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>

namespace flowfeed {

std::string ConfigError::ToString() const {
  std::string s = where.ToString();
  if (!path.empty()) s += ": " + path;
  s += ": " + message;
  return s;
}

// ------------------------------------------------------------------------------------------------
// ClosestMatch

namespace {

std::string Lower(const std::string& s) {
  std::string out = s;
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Optimal string alignment distance: Levenshtein plus adjacent transpositions ("rbg" -> "rgb"
// costs 1), which is what typos look like.
size_t EditDistance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1, 0));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

}  // namespace

std::string ClosestMatch(const std::string& word, const std::vector<std::string>& candidates) {
  if (word.empty()) return "";
  const std::string w = Lower(word);
  // A third of the word may be wrong (at least one character), but never all of it: "x" is not
  // a typo of "y".
  const size_t limit = std::max<size_t>(1, w.size() / 3);
  std::string best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const std::string& c : candidates) {
    if (c.empty()) continue;
    const std::string lc = Lower(c);
    const size_t d = EditDistance(w, lc);
    if (d > limit || d >= w.size() || d >= lc.size()) continue;
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

// ------------------------------------------------------------------------------------------------
// Helpers for values

namespace {

const char* const kSourceTypes[] = {"image_folder", "file_list", "idx", "tar"};
constexpr char kDefaultIdxImages[] = "train-images-idx3-ubyte.gz";
constexpr char kDefaultIdxLabels[] = "train-labels-idx1-ubyte.gz";

std::string FormatNumber(double v) {
  std::ostringstream os;
  os << std::setprecision(15) << v;
  return os.str();
}

// " >= 1", " <= 5", " in [0, 1]" or "".
std::string RangeText(std::optional<double> min, std::optional<double> max) {
  if (min && max) return " in [" + FormatNumber(*min) + ", " + FormatNumber(*max) + "]";
  if (min) return " >= " + FormatNumber(*min);
  if (max) return " <= " + FormatNumber(*max);
  return "";
}

// A quoted scalar ("42", '42', !!str 42) is a string in YAML, never a number or a bool.
bool IsQuoted(const YAML::Node& n) {
  return n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str";
}

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

bool ParseInt64(const std::string& text, int64_t* out) {
  std::string_view v = text;
  if (!v.empty() && v[0] == '+') {
    v.remove_prefix(1);
    if (!v.empty() && v[0] == '-') return false;
  }
  if (v.empty()) return false;
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
  if (ec != std::errc() || ptr != v.data() + v.size()) return false;
  *out = value;
  return true;
}

bool ParseUInt64(const std::string& text, uint64_t* out) {
  std::string_view v = text;
  if (!v.empty() && v[0] == '+') v.remove_prefix(1);
  if (v.empty() || v[0] < '0' || v[0] > '9') return false;
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
  if (ec != std::errc() || ptr != v.data() + v.size()) return false;
  *out = value;
  return true;
}

// Decimal numbers only: [+-] digits [. digits] [e [+-] digits]; no hex, inf, nan or '_'.
bool ParseDouble(const std::string& text, double* out) {
  size_t i = 0;
  const size_t n = text.size();
  if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
  size_t digits = 0;
  while (i < n && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, ++digits;
  if (i < n && text[i] == '.') {
    ++i;
    while (i < n && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < n && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  if (i != n) return false;
  std::string_view v = text;
  if (v[0] == '+') v.remove_prefix(1);
  double value = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
  if (ec != std::errc() || ptr != v.data() + v.size() || !std::isfinite(value)) return false;
  *out = value;
  return true;
}

// YAML 1.2 core-schema booleans; "yes"/"no"/"on"/"off" are refused (they are strings in 1.2).
bool ParseBool(const std::string& text, bool* out) {
  if (text == "true" || text == "True" || text == "TRUE") {
    *out = true;
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    *out = false;
    return true;
  }
  return false;
}

bool ParseIndex(const std::string& seg, size_t* out) {
  if (seg.empty()) return false;
  for (char c : seg)
    if (c < '0' || c > '9') return false;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(seg.data(), seg.data() + seg.size(), v);
  if (ec != std::errc() || ptr != seg.data() + seg.size()) return false;
  *out = size_t(v);
  return true;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    if (pos == std::string::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

// ------------------------------------------------------------------------------------------------
// Key paths: what the user reads ("pipeline[2] (resize).size") and a canonical form that matches
// override keys ("pipeline.2.size").

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

// ------------------------------------------------------------------------------------------------
// The reader

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
  SourceLocation LocateMark(const YAML::Mark& mark) const {
    if (mark.is_null() || mark.line < 0) return SourceLocation{file_, 0, 0};
    return SourceLocation{file_, mark.line + 1, mark.column + 1};
  }

  // Where a problem at `path` is reported: the override that supplied it, else the file.
  SourceLocation Locate(const YAML::Mark& mark, const KeyPath& path) const {
    const std::string* best = nullptr;
    for (const std::string& key : overridden_) {
      if (path.canon == key || (path.canon.size() > key.size() &&
                                path.canon.compare(0, key.size(), key) == 0 &&
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

  void Error(const YAML::Mark& mark, const KeyPath& path, std::string message) {
    errors_.push_back({Locate(mark, path), path.display, std::move(message)});
  }
  void Error(const Item& item, std::string message) {
    Error(item.mark, item.path, std::move(message));
  }

  void UnknownKey(const YAML::Node& key_node, const KeyPath& path, const std::string& key,
                  const std::vector<std::string>& candidates) {
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

  // --- Scalars ---

  bool ReadInt(const Item& item, int64_t min, int64_t max, int64_t* out) {
    const std::string want = "expected an integer >= " + std::to_string(min);
    int64_t v = 0;
    if (!item.node.IsScalar() || IsQuoted(item.node) || !ParseInt64(item.node.Scalar(), &v) ||
        v < min) {
      Error(item, want + ", got " + GotValue(item.node));
      return false;
    }
    if (v > max) {
      Error(item, want + " and <= " + std::to_string(max) + ", got " + GotValue(item.node));
      return false;
    }
    *out = v;
    return true;
  }

  bool ReadIntField(const Item& item, int min, int* out) {
    int64_t v = 0;
    if (!ReadInt(item, min, INT_MAX, &v)) return false;
    *out = int(v);
    return true;
  }

  bool ReadUInt64(const Item& item, uint64_t* out) {
    uint64_t v = 0;
    if (!item.node.IsScalar() || IsQuoted(item.node) || !ParseUInt64(item.node.Scalar(), &v)) {
      Error(item, "expected an integer >= 0, got " + GotValue(item.node));
      return false;
    }
    *out = v;
    return true;
  }

  bool ReadBool(const Item& item, bool* out) {
    bool v = false;
    if (!item.node.IsScalar() || IsQuoted(item.node) || !ParseBool(item.node.Scalar(), &v)) {
      Error(item, "expected true or false, got " + GotValue(item.node));
      return false;
    }
    *out = v;
    return true;
  }

  bool ReadString(const Item& item, const std::string& what, std::string* out) {
    if (!item.node.IsScalar() || item.node.Scalar().empty()) {
      Error(item, "expected " + what + ", got " + Got(item.node));
      return false;
    }
    *out = item.node.Scalar();
    return true;
  }

  bool ReadChoice(const Item& item, const std::vector<std::string>& choices, std::string* out) {
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
  bool ReadSkipBudget(const Item& item, SkipBudget* out) {
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

  bool ReadOnError(const Item& item, OnError* out) {
    std::string v;
    if (!ReadChoice(item, {"skip", "fail"}, &v)) return false;
    *out = v == "skip" ? OnError::kSkip : OnError::kFail;
    return true;
  }

  // One end of a number's range: `open` excludes the value itself (> 0 rather than >= 0).
  struct Bound {
    double value;
    bool open;
  };

  // A number (an int or a decimal such as 5e-4) within [lo, hi], either end optional or open;
  // "expected a number in [0, 1), got ...".
  bool ReadDouble(const Item& item, std::optional<Bound> lo, std::optional<Bound> hi,
                  double* out) {
    std::string range;
    if (lo && hi)
      range = std::string(" in ") + (lo->open ? "(" : "[") + FormatNumber(lo->value) + ", " +
              FormatNumber(hi->value) + (hi->open ? ")" : "]");
    else if (lo)
      range = (lo->open ? " > " : " >= ") + FormatNumber(lo->value);
    else if (hi)
      range = (hi->open ? " < " : " <= ") + FormatNumber(hi->value);
    double v = 0;
    bool ok = item.node.IsScalar() && !IsQuoted(item.node) && ParseDouble(item.node.Scalar(), &v);
    if (ok && lo) ok = lo->open ? v > lo->value : v >= lo->value;
    if (ok && hi) ok = hi->open ? v < hi->value : v <= hi->value;
    if (!ok) {
      Error(item, "expected a number" + range + ", got " + GotValue(item.node));
      return false;
    }
    *out = v;
    return true;
  }

  // Reports each key in `keys` (gathered while reading a section) that needs `section`.type to
  // be something else: "only valid when model.type is resnet18 (it is cnn)".
  void CheckTypeSpecific(const std::vector<std::pair<YAML::Node, KeyPath>>& keys,
                         const KeyPath& type_path, const std::string& type,
                         const std::map<std::string, std::string>& needs) {
    for (const auto& [kn, kp] : keys) {
      auto it = needs.find(kn.Scalar());
      // "image_folder or tar": valid for either.
      if (it == needs.end() || (" or " + it->second + " or ").find(" or " + type + " or ") !=
                                   std::string::npos)
        continue;
      Error(kn.Mark(), kp, "only valid when " + type_path.display + " is " + it->second +
                               " (it is " + type + ")");
    }
  }

  // --- Sections ---

  void ReadSource(const YAML::Node& key_node, const Item& item, SourceOptions* source);
  void ReadBatch(const Item& item, BatchOptions* batch);
  void ReadCache(const YAML::Node& key_node, const Item& item, CacheOptions* cache);
  void ReadDistributed(const YAML::Node& key_node, const Item& item, DistributedOptions* dist);
  void ReadPipeline(const Item& item, std::vector<StageSpec>* pipeline);
  void ReadModel(const Item& item, ModelOptions* model);
  void ReadOptimizer(const Item& item, OptimizerOptions* optimizer);
  void ReadSchedule(const Item& item, ScheduleOptions* schedule);
  void ReadLoss(const Item& item, TrainOptions* train);
  void ReadEval(const YAML::Node& key_node, const Item& item, EvalOptions* eval);
  bool ReadStage(const Item& item, StageSpec* spec);
  bool ReadParam(const ParamSpec& spec, const Item& item, ParamValue* out);
  bool ReadNumber(const ParamSpec& spec, bool integer, const Item& item, double* as_double,
                  int64_t* as_int);

  std::string file_;
  const StageRegistry& registry_;
  std::vector<ConfigError> errors_;
  std::vector<std::string> overridden_;  // canonical keys replaced by overrides
};

// ------------------------------------------------------------------------------------------------
// Overrides

void ConfigReader::ApplyOverride(YAML::Node root, const std::string& text) {
  const std::string quoted = "(override \"" + text + "\")";
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    OverrideError("", "override \"" + text + "\" has no '='; expected KEY.PATH=VALUE");
    return;
  }
  const std::string key = Trim(text.substr(0, eq));
  if (key.empty()) {
    OverrideError("", "override \"" + text + "\" has an empty key; expected KEY.PATH=VALUE");
    return;
  }
  const std::vector<std::string> segments = Split(key, '.');
  for (const std::string& seg : segments) {
    if (Trim(seg).empty()) {
      OverrideError(key, "empty key segment " + quoted);
      return;
    }
  }
  YAML::Node value;
  try {
    value = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    OverrideError(key, "value is not valid YAML: " + e.msg + " " + quoted);
    return;
  }

  YAML::Node cur = root;
  std::string canon;   // canonical path of `cur`
  std::string shown;   // the key as written up to `cur`, for messages
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string seg = Trim(segments[i]);
    const bool last = i + 1 == segments.size();
    const std::string where = shown.empty() ? "the top level" : "\"" + shown + "\"";
    if (cur.IsSequence()) {
      size_t index = 0;
      if (!ParseIndex(seg, &index)) {
        OverrideError(key, where + " is a list; expected an item number, got \"" + seg + "\" " +
                               quoted);
        return;
      }
      if (index >= cur.size()) {
        OverrideError(key, "index " + seg + " is out of range: " + where + " has " +
                               std::to_string(cur.size()) + " item(s) " + quoted);
        return;
      }
      canon += (canon.empty() ? "" : ".") + std::to_string(index);
      if (last) {
        cur[index] = value;
      } else {
        YAML::Node next = cur[index];
        if (!next.IsDefined() || next.IsNull()) next = YAML::Node(YAML::NodeType::Map);
        cur.reset(next);
      }
    } else if (cur.IsMap()) {
      canon += (canon.empty() ? "" : ".") + seg;
      if (last) {
        cur[seg] = value;
      } else {
        YAML::Node next = cur[seg];
        if (!next.IsDefined() || next.IsNull()) next = YAML::Node(YAML::NodeType::Map);
        cur.reset(next);
      }
    } else {
      OverrideError(key, "cannot set \"" + seg + "\" inside " + where +
                             ", which is a single value, not a map or a list " + quoted);
      return;
    }
    shown += (shown.empty() ? "" : ".") + seg;
  }
  overridden_.push_back(canon);
}

// ------------------------------------------------------------------------------------------------
// Sections

void ConfigReader::ReadTop(const YAML::Node& root, PipelineOptions* options) {
  static const std::vector<std::string> kKeys = {
      "seed",   "threads", "epochs", "shuffle", "prefetch", "max_in_flight", "digest", "fuse",
      "max_skipped", "source", "pipeline", "batch", "cache", "distributed",
      // Training (flowfeed train)
      "model", "optimizer", "schedule", "loss", "eval", "checkpoint", "checkpoint_every",
      "record_indices", "device", "amp", "plugins"};
  bool has_source = false;
  const KeyPath top;
  ForEachEntry(root, top, [&](const std::string& key, const YAML::Node& key_node,
                              const Item& item) {
    if (key == "seed") {
      ReadUInt64(item, &options->seed);
    } else if (key == "threads") {
      ReadIntField(item, 0, &options->threads);
    } else if (key == "epochs") {
      ReadIntField(item, 1, &options->epochs);
    } else if (key == "shuffle") {
      ReadBool(item, &options->shuffle);
    } else if (key == "prefetch") {
      ReadIntField(item, 1, &options->prefetch);
    } else if (key == "max_in_flight") {
      ReadIntField(item, 0, &options->max_in_flight);
    } else if (key == "digest") {
      ReadBool(item, &options->digest);
    } else if (key == "fuse") {
      ReadBool(item, &options->fuse);
    } else if (key == "max_skipped") {
      ReadSkipBudget(item, &options->max_skipped);
    } else if (key == "source") {
      has_source = true;
      ReadSource(key_node, item, &options->source);
    } else if (key == "pipeline") {
      ReadPipeline(item, &options->pipeline);
    } else if (key == "batch") {
      ReadBatch(item, &options->batch);
    } else if (key == "cache") {
      ReadCache(key_node, item, &options->cache);
    } else if (key == "distributed") {
      ReadDistributed(key_node, item, &options->distributed);
    } else if (key == "record_indices") {
      ReadBool(item, &options->train.record_indices);
    } else if (key == "checkpoint_every") {
      ReadInt(item, 0, std::numeric_limits<int64_t>::max(), &options->train.checkpoint_every);
    } else if (key == "model") {
      ReadModel(item, &options->train.model);
    } else if (key == "optimizer") {
      ReadOptimizer(item, &options->train.optimizer);
    } else if (key == "schedule") {
      ReadSchedule(item, &options->train.schedule);
    } else if (key == "loss") {
      ReadLoss(item, &options->train);
    } else if (key == "eval") {
      ReadEval(key_node, item, &options->train.eval);
    } else if (key == "checkpoint") {
      ReadString(item, "a file path", &options->train.checkpoint);
    } else if (key == "device") {
      ReadChoice(item, {"auto", "cpu", "cuda"}, &options->train.device);
    } else if (key == "amp") {
      ReadBool(item, &options->train.amp);
    } else if (key == "plugins") {
      // Loaded before the rest is read (LoadPlugins), so the pipeline can use their stages.
    } else {
      UnknownKey(key_node, item.path, key, kKeys);
    }
  });
  if (!has_source) Error(root.Mark(), top.Key("source"), "missing required key");
}

void ConfigReader::ReadSource(const YAML::Node& key_node, const Item& item,
                              SourceOptions* source) {
  static const std::vector<std::string> kKeys = {
      "type",   "root",   "list",            "images",        "labels", "extensions",
      "limit",  "shards", "label_extension", "shuffle_buffer", "on_error"};
  const KeyPath& path = item.path;
  const YAML::Mark at = key_node.Mark();  // the `source:` key locates the section
  source->where = Locate(at, path);
  if (!item.node.IsNull() && !item.node.IsMap()) {
    Error(item, "expected a map (type, root, ...), got " + Got(item.node));
    return;
  }
  bool has_type = false, type_ok = false, has_root = false, has_list = false, has_shards = false;
  std::vector<std::pair<YAML::Node, KeyPath>> type_specific;  // keys whose validity needs `type`
  if (item.node.IsMap()) {
    ForEachEntry(item.node, path, [&](const std::string& key, const YAML::Node& kn,
                                      const Item& value) {
      if (key == "type") {
        has_type = true;
        type_ok = ReadChoice(value, {std::begin(kSourceTypes), std::end(kSourceTypes)},
                             &source->type);
      } else if (key == "root") {
        has_root = true;
        ReadString(value, "a folder path", &source->root);
      } else if (key == "list") {
        has_list = true;
        type_specific.emplace_back(kn, value.path);
        ReadString(value, "a file path", &source->list);
      } else if (key == "images" || key == "labels") {
        type_specific.emplace_back(kn, value.path);
        ReadString(value, "a file path", key == "images" ? &source->images : &source->labels);
      } else if (key == "extensions") {
        type_specific.emplace_back(kn, value.path);
        const std::string want = "a list of file endings such as [.jpg, .png]";
        if (!value.node.IsSequence() || value.node.size() == 0) {
          Error(value, "expected " + want + ", got " +
                           (value.node.IsSequence() ? std::string("an empty list")
                                                    : Got(value.node)));
          return;
        }
        std::vector<std::string> exts;
        bool ok = true;
        for (size_t i = 0; i < value.node.size(); ++i) {
          const YAML::Node e = value.node[i];
          std::string s;
          if (!ReadString(Item{e, e.Mark(), value.path.Index(i)}, "a file ending such as .jpg",
                          &s))
            ok = false;
          exts.push_back(s);
        }
        if (ok) source->extensions = std::move(exts);
      } else if (key == "limit") {
        ReadInt(value, 0, std::numeric_limits<int64_t>::max(), &source->limit);
      } else if (key == "shards") {
        has_shards = true;
        type_specific.emplace_back(kn, value.path);
        ReadString(value, "a shard file pattern such as shard-{000000..000099}.tar",
                   &source->shards);
      } else if (key == "label_extension") {
        type_specific.emplace_back(kn, value.path);
        ReadString(value, "a member extension such as cls", &source->label_extension);
      } else if (key == "shuffle_buffer") {
        type_specific.emplace_back(kn, value.path);
        ReadInt(value, 0, std::numeric_limits<int64_t>::max(), &source->shuffle_buffer);
      } else if (key == "on_error") {
        ReadOnError(value, &source->on_error);
      } else {
        UnknownKey(kn, value.path, key, kKeys);
      }
    });
  }
  if (!has_type) Error(at, path.Key("type"), "missing required key");
  // Shard patterns may stand alone (absolute, or relative to the current directory).
  if (!has_root && !(type_ok && source->type == "tar"))
    Error(at, path.Key("root"), "missing required key");
  if (!type_ok) return;  // the type-specific checks need a valid type
  const std::string& type = source->type;
  const KeyPath type_path = path.Key("type");  // source.type, eval.source.type
  if (type == "file_list" && !has_list)
    Error(at, path.Key("list"), "missing required key (" + type_path.display + " is file_list)");
  if (type == "tar" && !has_shards)
    Error(at, path.Key("shards"), "missing required key (" + type_path.display + " is tar)");
  CheckTypeSpecific(type_specific, type_path, type,
                    {{"list", "file_list"},
                     {"shards", "tar"},
                     {"label_extension", "tar"},
                     {"shuffle_buffer", "tar"},
                     {"extensions", "image_folder or tar"},
                     {"images", "idx"},
                     {"labels", "idx"}});
  if (type == "idx") {
    if (source->images.empty()) source->images = kDefaultIdxImages;
    if (source->labels.empty()) source->labels = kDefaultIdxLabels;
  }
}

void ConfigReader::ReadBatch(const Item& item, BatchOptions* batch) {
  static const std::vector<std::string> kKeys = {"size", "drop_last", "layout", "dtype"};
  if (item.node.IsNull()) return;  // `batch:` with nothing under it: all defaults
  if (!item.node.IsMap()) {
    Error(item, "expected a map (size, drop_last, layout, dtype), got " + Got(item.node));
    return;
  }
  ForEachEntry(item.node, item.path, [&](const std::string& key, const YAML::Node& kn,
                                         const Item& value) {
    std::string s;
    if (key == "size") {
      ReadIntField(value, 1, &batch->size);
    } else if (key == "drop_last") {
      ReadBool(value, &batch->drop_last);
    } else if (key == "layout") {
      if (ReadChoice(value, {"nchw", "nhwc"}, &s))
        batch->layout = s == "nchw" ? Layout::kNCHW : Layout::kNHWC;
    } else if (key == "dtype") {
      if (ReadChoice(value, {"float32", "uint8"}, &s))
        batch->dtype = s == "float32" ? DType::kFloat32 : DType::kUInt8;
    } else {
      UnknownKey(kn, value.path, key, kKeys);
    }
  });
}

void ConfigReader::ReadCache(const YAML::Node& key_node, const Item& item, CacheOptions* cache) {
  static const std::vector<std::string> kKeys = {
      "mode", "budget", "path", "after", "allow_frozen_augmentation", "commit_seconds",
      "write_queue"};
  cache->where = Locate(key_node.Mark(), item.path);
  if (item.node.IsNull()) return;
  if (!item.node.IsMap()) {
    Error(item, "expected a map (mode, budget, path, ...), got " + Got(item.node));
    return;
  }
  bool has_path = false;
  ForEachEntry(item.node, item.path, [&](const std::string& key, const YAML::Node& kn,
                                         const Item& value) {
    std::string s;
    if (key == "mode") {
      if (ReadChoice(value, {"off", "memory", "disk", "auto"}, &s))
        cache->mode = s == "off" ? CacheMode::kOff
                      : s == "memory" ? CacheMode::kMemory
                      : s == "disk" ? CacheMode::kDisk
                                    : CacheMode::kAuto;
    } else if (key == "budget" || key == "write_queue") {
      int64_t* out = key == "budget" ? &cache->budget_bytes : &cache->write_queue_bytes;
      Result<int64_t> bytes = value.node.IsScalar() ? ParseByteSize(value.node.Scalar())
                                                    : Result<int64_t>(Status::InvalidArgument(
                                                          "expected a size such as 8GiB, "
                                                          "512MiB or 25%, got " + Got(value.node)));
      if (!bytes.ok()) Error(value, bytes.status().message());
      else *out = bytes.value();
    } else if (key == "path") {
      has_path = ReadString(value, "a folder path", &cache->path);
    } else if (key == "after") {
      ReadString(value, "a stage name", &cache->after);
    } else if (key == "allow_frozen_augmentation") {
      ReadBool(value, &cache->allow_frozen_augmentation);
    } else if (key == "commit_seconds") {
      double v = 0;
      if (!value.node.IsScalar() || IsQuoted(value.node) || !ParseDouble(value.node.Scalar(), &v) ||
          !(v > 0))
        Error(value, "expected a number of seconds > 0, got " + GotValue(value.node));
      else
        cache->commit_seconds = v;
    } else {
      UnknownKey(kn, value.path, key, kKeys);
    }
  });
  if (cache->mode == CacheMode::kDisk && !has_path)
    Error(key_node.Mark(), item.path.Key("path"), "missing required key (cache.mode is disk)");
}

void ConfigReader::ReadDistributed(const YAML::Node& key_node, const Item& item,
                                   DistributedOptions* dist) {
  static const std::vector<std::string> kKeys = {"policy", "uneven", "backend", "timeout_seconds",
                                                 "rank_reports"};
  dist->where = Locate(key_node.Mark(), item.path);
  if (item.node.IsNull()) return;
  if (!item.node.IsMap()) {
    Error(item, "expected a map (policy, uneven, backend, ...), got " + Got(item.node));
    return;
  }
  ForEachEntry(item.node, item.path, [&](const std::string& key, const YAML::Node& kn,
                                         const Item& value) {
    std::string s;
    if (key == "policy") {
      if (ReadChoice(value, {"global", "stable"}, &s))
        dist->policy = s == "global" ? ShardPolicy::kGlobal : ShardPolicy::kStable;
    } else if (key == "uneven") {
      if (ReadChoice(value, {"pad", "drop"}, &s))
        dist->uneven = s == "pad" ? UnevenPolicy::kPad : UnevenPolicy::kDrop;
    } else if (key == "backend") {
      ReadChoice(value, {"auto", "gloo", "nccl"}, &dist->backend);
    } else if (key == "timeout_seconds") {
      ReadDouble(value, Bound{0, true}, std::nullopt, &dist->timeout_seconds);
    } else if (key == "rank_reports") {
      ReadBool(value, &dist->rank_reports);
    } else {
      UnknownKey(kn, value.path, key, kKeys);
    }
  });
}

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

bool ConfigReader::ReadStage(const Item& item, StageSpec* spec) {
  static const std::vector<std::string> kReserved = {"type", "name", "on_error", "concurrency"};
  spec->where = Locate(item.mark, item.path);
  if (!item.node.IsMap()) {
    Error(item, "expected a map with a \"type\" key, got " + Got(item.node));
    return false;
  }
  // The type first: it decides which other keys are valid.
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
  const StageInfo* info = nullptr;
  const KeyPath type_path = item.path.Key("type");
  if (!has_type) {
    Error(item.mark, type_path, "missing required key");
  } else if (!type_node.IsScalar() || type_node.Scalar().empty()) {
    Error(type_node.IsNull() ? type_key.Mark() : type_node.Mark(), type_path,
          "expected a stage type name, got " + Got(type_node));
  } else {
    spec->type = type_node.Scalar();
    info = registry_.Find(spec->type);
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
  }
  spec->name = spec->type;

  KeyPath path = item.path;
  if (info) path.display += " (" + spec->type + ")";
  std::vector<std::string> candidates = kReserved;
  if (info)
    for (const ParamSpec& p : info->params) candidates.push_back(p.name);

  bool params_ok = info != nullptr;
  std::set<std::string> given;
  ForEachEntry(item.node, path, [&](const std::string& key, const YAML::Node& kn,
                                    const Item& value) {
    if (key == "type") return;
    if (key == "name") {
      ReadString(value, "a stage name", &spec->name);
    } else if (key == "on_error") {
      ReadOnError(value, &spec->on_error);
    } else if (key == "concurrency") {
      ReadIntField(value, 0, &spec->concurrency);
    } else if (!info) {
      // Unknown stage type: its parameters cannot be checked (the type error says enough).
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
  if (!info) return false;

  for (const ParamSpec& ps : info->params) {
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

  // Relations between parameters (min <= max ...) are the factory's to check. The stage built
  // here is thrown away.
  try {
    Result<std::unique_ptr<Stage>> built = info->factory(spec->params);
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
// Training sections (flowfeed train): model, optimizer, schedule, loss, eval

void ConfigReader::ReadModel(const Item& item, ModelOptions* model) {
  static const std::vector<std::string> kKeys = {"type", "stem", "hidden", "num_classes"};
  if (item.node.IsNull()) return;  // `model:` with nothing under it: all defaults
  if (!item.node.IsMap()) {
    Error(item, "expected a map (type, stem, hidden, num_classes), got " + Got(item.node));
    return;
  }
  bool type_ok = true;  // the default type is valid
  std::vector<std::pair<YAML::Node, KeyPath>> type_specific;
  ForEachEntry(item.node, item.path, [&](const std::string& key, const YAML::Node& kn,
                                         const Item& value) {
    if (key == "type") {
      type_ok = ReadChoice(value, {"mlp", "cnn", "resnet18"}, &model->type);
    } else if (key == "stem") {
      type_specific.emplace_back(kn, value.path);
      ReadChoice(value, {"imagenet", "cifar"}, &model->stem);
    } else if (key == "hidden") {
      type_specific.emplace_back(kn, value.path);
      // A lone number is a one-layer list, so `--set model.hidden=512` works.
      if (value.node.IsScalar()) {
        int width = 0;
        if (ReadIntField(value, 1, &width)) model->hidden = {width};
        return;
      }
      if (!value.node.IsSequence() || value.node.size() == 0) {
        Error(value, "expected a list of layer widths (integers >= 1), got " +
                         (value.node.IsSequence() ? std::string("an empty list")
                                                  : Got(value.node)));
        return;
      }
      std::vector<int> widths;
      bool ok = true;
      for (size_t i = 0; i < value.node.size(); ++i) {
        const YAML::Node e = value.node[i];
        int width = 0;
        if (!ReadIntField(Item{e, e.Mark(), value.path.Index(i)}, 1, &width)) ok = false;
        widths.push_back(width);
      }
      if (ok) model->hidden = std::move(widths);
    } else if (key == "num_classes") {
      ReadIntField(value, 0, &model->num_classes);
    } else {
      UnknownKey(kn, value.path, key, kKeys);
    }
  });
  if (type_ok)
    CheckTypeSpecific(type_specific, item.path.Key("type"), model->type,
                      {{"stem", "resnet18"}, {"hidden", "mlp"}});
}

void ConfigReader::ReadOptimizer(const Item& item, OptimizerOptions* optimizer) {
  static const std::vector<std::string> kKeys = {"type",         "lr",    "momentum", "nesterov",
                                                 "weight_decay", "beta1", "beta2"};
  if (item.node.IsNull()) return;
  if (!item.node.IsMap()) {
    Error(item, "expected a map (type, lr, momentum, ...), got " + Got(item.node));
    return;
  }
  const Bound zero{0, false}, positive{0, true}, below_one{1, true};
  bool type_ok = true;
  bool momentum_ok = true;
  std::optional<Item> nesterov;  // given and read
  std::vector<std::pair<YAML::Node, KeyPath>> type_specific;
  ForEachEntry(item.node, item.path, [&](const std::string& key, const YAML::Node& kn,
                                         const Item& value) {
    if (key == "type") {
      type_ok = ReadChoice(value, {"sgd", "adamw"}, &optimizer->type);
    } else if (key == "lr") {
      ReadDouble(value, positive, std::nullopt, &optimizer->lr);
    } else if (key == "momentum") {
      type_specific.emplace_back(kn, value.path);
      momentum_ok = ReadDouble(value, zero, below_one, &optimizer->momentum);
    } else if (key == "nesterov") {
      type_specific.emplace_back(kn, value.path);
      if (ReadBool(value, &optimizer->nesterov)) nesterov = value;
    } else if (key == "weight_decay") {
      ReadDouble(value, zero, std::nullopt, &optimizer->weight_decay);
    } else if (key == "beta1" || key == "beta2") {
      type_specific.emplace_back(kn, value.path);
      ReadDouble(value, zero, below_one,
                 key == "beta1" ? &optimizer->beta1 : &optimizer->beta2);
    } else {
      UnknownKey(kn, value.path, key, kKeys);
    }
  });
  if (!type_ok) return;
  CheckTypeSpecific(type_specific, item.path.Key("type"), optimizer->type,
                    {{"momentum", "sgd"}, {"nesterov", "sgd"}, {"beta1", "adamw"},
                     {"beta2", "adamw"}});
  if (optimizer->type == "sgd" && momentum_ok && optimizer->momentum == 0 &&
      optimizer->nesterov) {
    // Nesterov's look-ahead is a momentum method. Only a nesterov the user asked for is an
    // error; the default gives way to `momentum: 0`.
    if (nesterov)
      Error(*nesterov, "nesterov needs momentum > 0");
    else
      optimizer->nesterov = false;
  }
}

void ConfigReader::ReadSchedule(const Item& item, ScheduleOptions* schedule) {
  static const std::vector<std::string> kKeys = {"warmup_epochs", "type", "min_lr", "step_epochs",
                                                 "gamma"};
  if (item.node.IsNull()) return;
  if (!item.node.IsMap()) {
    Error(item, "expected a map (type, warmup_epochs, min_lr, ...), got " + Got(item.node));
    return;
  }
  const Bound zero{0, false};
  ForEachEntry(item.node, item.path, [&](const std::string& key, const YAML::Node& kn,
                                         const Item& value) {
    if (key == "warmup_epochs") {
      ReadDouble(value, zero, std::nullopt, &schedule->warmup_epochs);
    } else if (key == "type") {
      ReadChoice(value, {"cosine", "step", "constant"}, &schedule->type);
    } else if (key == "min_lr") {
      ReadDouble(value, zero, std::nullopt, &schedule->min_lr);
    } else if (key == "step_epochs") {
      ReadIntField(value, 1, &schedule->step_epochs);
    } else if (key == "gamma") {
      ReadDouble(value, Bound{0, true}, Bound{1, false}, &schedule->gamma);
    } else {
      UnknownKey(kn, value.path, key, kKeys);
    }
  });
}

void ConfigReader::ReadLoss(const Item& item, TrainOptions* train) {
  static const std::vector<std::string> kKeys = {"label_smoothing"};
  if (item.node.IsNull()) return;
  if (!item.node.IsMap()) {
    Error(item, "expected a map (label_smoothing), got " + Got(item.node));
    return;
  }
  ForEachEntry(item.node, item.path, [&](const std::string& key, const YAML::Node& kn,
                                         const Item& value) {
    if (key == "label_smoothing")
      ReadDouble(value, Bound{0, false}, Bound{1, true}, &train->label_smoothing);
    else
      UnknownKey(kn, value.path, key, kKeys);
  });
}

void ConfigReader::ReadEval(const YAML::Node& key_node, const Item& item, EvalOptions* eval) {
  static const std::vector<std::string> kKeys = {"source", "pipeline", "batch_size"};
  eval->enabled = true;
  if (!item.node.IsNull() && !item.node.IsMap()) {
    Error(item, "expected a map (source, pipeline, batch_size), got " + Got(item.node));
    return;
  }
  bool has_source = false;
  if (item.node.IsMap()) {
    ForEachEntry(item.node, item.path, [&](const std::string& key, const YAML::Node& kn,
                                           const Item& value) {
      if (key == "source") {
        has_source = true;
        ReadSource(kn, value, &eval->source);
      } else if (key == "pipeline") {
        const size_t first = eval->pipeline.size();
        ReadPipeline(value, &eval->pipeline);
        // Evaluation must see the same images every epoch: no augmentation.
        if (!value.node.IsSequence()) return;
        for (size_t i = 0; i < value.node.size() && first + i < eval->pipeline.size(); ++i) {
          const StageSpec& spec = eval->pipeline[first + i];
          const StageInfo* info = registry_.Find(spec.type);
          if (!info || info->traits.deterministic) continue;
          KeyPath kp = value.path.Index(i);
          kp.display += " (" + spec.type + ")";
          Error(value.node[i].Mark(), kp,
                "eval pipelines must be deterministic: '" + spec.type + "' is random");
        }
      } else if (key == "batch_size") {
        ReadIntField(value, 1, &eval->batch_size);
      } else {
        UnknownKey(kn, value.path, key, kKeys);
      }
    });
  }
  if (!has_source) Error(key_node.Mark(), item.path.Key("source"), "missing required key");
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
    case ParamType::kFloatList: {
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
        Error(item, "expected " + ListText(spec, integer) + ", got a list of " +
                        std::to_string(n) + (n == 1 ? " item" : " items"));
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
  }
  Error(item, "parameter of an unknown type");
  return false;
}

// ------------------------------------------------------------------------------------------------
// Entry points

// Sorts problems so they read top to bottom: broken overrides, then the file by line and
// column, then values that came from overrides.
void SortErrors(const std::string& file, std::vector<ConfigError>* errors) {
  const auto group = [&](const ConfigError& e) {
    if (e.where.file == "--set") return 0;
    if (e.where.file == file) return 1;
    return 2;
  };
  std::stable_sort(errors->begin(), errors->end(),
                   [&](const ConfigError& a, const ConfigError& b) {
                     const int ga = group(a), gb = group(b);
                     if (ga != gb) return ga < gb;
                     if (ga != 1) return false;
                     if (a.where.line != b.where.line) return a.where.line < b.where.line;
                     return a.where.column < b.where.column;
                   });
}

Result<PipelineOptions> Fail(const std::string& file, std::vector<ConfigError> found,
                             std::vector<ConfigError>* errors) {
  SortErrors(file, &found);
  std::string message = std::to_string(found.size()) +
                        (found.size() == 1 ? " problem in " : " problems in ") + file + ":";
  for (const ConfigError& e : found) message += "\n" + e.ToString();
  if (errors) *errors = std::move(found);
  return Status::InvalidArgument(message);
}

}  // namespace

namespace {

// A `plugins:` entry as a file: absolute as written; else beside the config file; else the
// first match in FLOWFEED_PLUGIN_PATH (colon-separated folders); else beside the config file
// (where the loader then reports it missing).
std::string ResolvePlugin(const std::string& entry, const std::string& config_path) {
  namespace fs = std::filesystem;
  if (fs::path(entry).is_absolute()) return entry;
  fs::path beside = fs::path(config_path).parent_path() / entry;
  std::error_code ec;
  if (fs::exists(beside, ec)) return beside.string();
  if (const char* search = std::getenv("FLOWFEED_PLUGIN_PATH")) {
    std::string dirs = search;
    size_t start = 0;
    while (start <= dirs.size()) {
      size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      fs::path candidate = fs::path(dirs.substr(start, end - start)) / entry;
      if (end > start && fs::exists(candidate, ec)) return candidate.string();
      start = end + 1;
    }
  }
  return beside.string();
}

// The documents of a YAML text, seen through the parser's events: where each one's top node
// starts. yaml-cpp 0.7's LoadAll() never returns for some malformed text (a ',' where a document
// should start: the parser reports an empty document without consuming the token, again and
// again, and the list grows until memory runs out; found by fuzz/fuzz_config.cc), so documents
// are counted here, stopping at a document that starts where the previous one did.
struct DocumentScan {
  std::vector<YAML::Mark> nodes;  // the first node's mark, one per document
  bool stuck = false;             // the parser stopped consuming input at `stuck_at`
  YAML::Mark stuck_at;
};

class DocumentScanner final : public YAML::EventHandler {
 public:
  explicit DocumentScanner(DocumentScan* scan) : scan_(scan) {}
  void OnDocumentStart(const YAML::Mark& mark) override {
    start_ = mark;
    first_ = true;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnMapEnd() override {}
  const YAML::Mark& start() const { return start_; }

 private:
  void Node(const YAML::Mark& mark) {
    if (first_) scan_->nodes.push_back(mark);
    first_ = false;
  }
  DocumentScan* scan_;
  YAML::Mark start_;
  bool first_ = false;
};

// Throws YAML::ParserException for a syntax error, as LoadAll() does.
DocumentScan ScanDocuments(const std::string& yaml_text) {
  DocumentScan scan;
  std::istringstream in(yaml_text);
  YAML::Parser parser(in);
  DocumentScanner handler(&scan);
  int previous_pos = -1;
  while (parser.HandleNextDocument(handler)) {
    if (handler.start().pos == previous_pos) {
      scan.stuck = true;
      scan.stuck_at = handler.start();
      break;
    }
    previous_pos = handler.start().pos;
  }
  return scan;
}

Result<PipelineOptions> ParseConfigImpl(const std::string& yaml_text,
                                        const std::string& display_name,
                                        const std::vector<std::string>& overrides,
                                        StageRegistry* loadable, const StageRegistry& registry,
                                        std::vector<ConfigError>* errors,
                                        std::vector<LoadedPlugin>* plugins) {
  if (errors) errors->clear();
  ConfigReader reader(display_name, registry);
  PipelineOptions options;
  options.config_path = display_name;
  try {
    DocumentScan scan;
    YAML::Node root;
    try {
      scan = ScanDocuments(yaml_text);
      if (scan.stuck) {
        const size_t at = size_t(std::max(0, scan.stuck_at.pos));
        const char c = at < yaml_text.size() ? yaml_text[at] : '?';
        reader.DocumentError(scan.stuck_at,
                             std::string("YAML syntax error: unexpected '") +
                                 (std::isprint(static_cast<unsigned char>(c)) ? c : '?') + "'");
        return Fail(display_name, std::move(reader.errors()), errors);
      }
      if (!scan.nodes.empty()) root = YAML::Load(yaml_text);  // the first document
    } catch (const YAML::ParserException& e) {
      reader.DocumentError(e.mark, "YAML syntax error: " + e.msg);
      return Fail(display_name, std::move(reader.errors()), errors);
    }
    if (scan.nodes.empty() || root.IsNull()) {
      reader.DocumentError(YAML::Mark::null_mark(), "empty config");
      return Fail(display_name, std::move(reader.errors()), errors);
    }
    if (scan.nodes.size() > 1)
      reader.DocumentError(scan.nodes[1], "expected one YAML document, found " +
                                              std::to_string(scan.nodes.size()));
    if (!root.IsMap()) {
      reader.DocumentError(root.Mark(), "expected a map of settings (seed: ..., source: ...) at "
                                        "the top, got " + Got(root));
      return Fail(display_name, std::move(reader.errors()), errors);
    }
    for (const std::string& o : overrides) reader.ApplyOverride(root, o);
    const YAML::Node& const_root = root;
    if (const YAML::Node list = const_root["plugins"]) {
      if (!list.IsSequence()) {
        reader.DocumentError(list.Mark(), "plugins: expected a list of plugin files, got " + Got(list));
      } else {
        for (size_t i = 0; i < list.size(); ++i) {
          const YAML::Node entry = list[i];
          const std::string where = "plugins[" + std::to_string(i) + "]: ";
          if (!entry.IsScalar() || entry.Scalar().empty()) {
            reader.DocumentError(entry.Mark(), where + "expected a plugin file, got " + Got(entry));
            continue;
          }
          if (!loadable) continue;  // the caller's registry has them already
          const std::string file = ResolvePlugin(entry.Scalar(), display_name);
          Result<LoadedPlugin> loaded = LoadPlugin(file, loadable);
          if (!loaded.ok())
            reader.DocumentError(entry.Mark(), where + loaded.status().message());
          else if (plugins)
            plugins->push_back(loaded.value());
        }
      }
    }
    reader.ReadTop(const_root, &options);
  } catch (const YAML::Exception& e) {
    // Not expected: every node is type-checked before it is read.
    reader.DocumentError(e.mark, std::string("internal error reading the config: ") + e.what());
  }
  if (reader.errors().empty()) {
    // Where the cache goes depends on the stages' traits: checked here so that `validate`
    // refuses a cache point that would freeze augmentation.
    Result<CachePlacement> plan = PlanCache(options, registry);
    if (!plan.ok())
      reader.errors().push_back({options.cache.where, "cache.after", plan.status().message()});
  }
  if (!reader.errors().empty()) return Fail(display_name, std::move(reader.errors()), errors);
  return options;
}

Result<std::string> ReadConfigText(const std::string& path, std::vector<ConfigError>* errors) {
  if (errors) errors->clear();
  const auto fail = [&](Status status, const std::string& message) -> Result<std::string> {
    if (errors) errors->push_back({SourceLocation{path, 0, 0}, "", message});
    return status;
  };
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st))
    return fail(Status::NotFound("config file not found: " + path), "file not found");
  if (std::filesystem::is_directory(st))
    return fail(Status::InvalidArgument("config path is a folder, not a file: " + path),
                "is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Status::IoError("cannot read config file: " + path), "cannot read");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail(Status::IoError("cannot read config file: " + path), "cannot read");
  return text.str();
}

}  // namespace

Result<PipelineOptions> ParseConfig(const std::string& yaml_text, const std::string& display_name,
                                    const std::vector<std::string>& overrides,
                                    const StageRegistry& registry,
                                    std::vector<ConfigError>* errors) {
  return ParseConfigImpl(yaml_text, display_name, overrides, nullptr, registry, errors, nullptr);
}

Result<PipelineOptions> LoadConfigWithPlugins(const std::string& path,
                                              const std::vector<std::string>& overrides,
                                              StageRegistry* registry,
                                              std::vector<ConfigError>* errors,
                                              std::vector<LoadedPlugin>* plugins) {
  Result<std::string> text = ReadConfigText(path, errors);
  if (!text.ok()) return text.status();
  return ParseConfigImpl(text.value(), path, overrides, registry, *registry, errors, plugins);
}

Result<PipelineOptions> LoadConfig(const std::string& path,
                                   const std::vector<std::string>& overrides,
                                   const StageRegistry& registry,
                                   std::vector<ConfigError>* errors) {
  Result<std::string> text = ReadConfigText(path, errors);
  if (!text.ok()) return text.status();
  return ParseConfigImpl(text.value(), path, overrides, nullptr, registry, errors, nullptr);
}

Status ApplyDistributedEnvironment(PipelineOptions* options) {
  DistributedOptions& d = options->distributed;
  auto read_int = [](const char* name, int64_t lo, int64_t hi, int* out) -> Status {
    const char* v = std::getenv(name);
    if (!v || !*v) return Status::Ok();
    char* end = nullptr;
    errno = 0;
    long long x = std::strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || x < lo || x > hi)
      return Status::InvalidArgument("environment variable " + std::string(name) + "=\"" + v +
                                     "\": expected an integer in [" + std::to_string(lo) + ", " +
                                     std::to_string(hi) + "]");
    *out = int(x);
    return Status::Ok();
  };
  FLOWFEED_RETURN_IF_ERROR(read_int("WORLD_SIZE", 1, 1 << 20, &d.world_size));
  FLOWFEED_RETURN_IF_ERROR(read_int("RANK", 0, 1 << 20, &d.rank));
  FLOWFEED_RETURN_IF_ERROR(read_int("LOCAL_RANK", 0, 1 << 20, &d.local_rank));
  FLOWFEED_RETURN_IF_ERROR(read_int("MASTER_PORT", 1, 65535, &d.master_port));
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) d.master_addr = a;
  if (d.rank >= d.world_size)
    return Status::InvalidArgument("environment: RANK=" + std::to_string(d.rank) +
                                   " is not below WORLD_SIZE=" + std::to_string(d.world_size));
  return Status::Ok();
}

}  // namespace flowfeed
