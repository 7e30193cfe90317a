// config/values.cc: see values.h. Also ClosestMatch (config.h), which is text work too.
#include "config/values.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string_view>
#include <system_error>

#include "flowfeed/config.h"

namespace flowfeed {
namespace config {

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

std::string FormatBytes(int64_t v) {
  if (v == 0) return "0";
  const char* units[] = {"PiB", "TiB", "GiB", "MiB", "KiB"};
  const int shifts[] = {50, 40, 30, 20, 10};
  for (int i = 0; i < 5; ++i)
    if (v % (int64_t(1) << shifts[i]) == 0) return std::to_string(v >> shifts[i]) + units[i];
  return std::to_string(v);
}

std::string IntervalText(const std::optional<Bound>& lo, const std::optional<Bound>& hi,
                         bool bytes) {
  auto text = [bytes](double v) { return bytes ? FormatBytes(int64_t(v)) : FormatNumber(v); };
  if (lo && hi)
    return std::string(" in ") + (lo->open ? "(" : "[") + text(lo->value) + ", " +
           text(hi->value) + (hi->open ? ")" : "]");
  if (lo) return (lo->open ? " > " : " >= ") + text(lo->value);
  if (hi) return (hi->open ? " < " : " <= ") + text(hi->value);
  return "";
}

bool InInterval(double v, const std::optional<Bound>& lo, const std::optional<Bound>& hi) {
  if (lo && !(lo->open ? v > lo->value : v >= lo->value)) return false;
  if (hi && !(hi->open ? v < hi->value : v <= hi->value)) return false;
  return true;
}

}  // namespace config

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

}  // namespace flowfeed
