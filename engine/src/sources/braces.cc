// sources/braces.cc: bash-like brace expansion of shard patterns (ExpandBraces, tar.h).
#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "sources/tar.h"

namespace flowfeed {

namespace {

bool AllDigits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

bool ParseDecimal(const std::string& s, int64_t* out) {
  if (!AllDigits(s)) return false;
  int64_t v = 0;
  for (char c : s) {
    const int d = c - '0';
    if (v > (std::numeric_limits<int64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

namespace {

constexpr size_t kMaxBraceResults = 1000000;

// The index of the '}' that closes the '{' at `open`, or npos.
size_t MatchingBrace(const std::string& s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{') {
      ++depth;
    } else if (s[i] == '}') {
      if (--depth == 0) return i;
    }
  }
  return std::string::npos;
}

// Splits a group's body at the commas that are not inside a nested group.
std::vector<std::string> SplitTopLevel(const std::string& body) {
  std::vector<std::string> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '{') {
      ++depth;
    } else if (body[i] == '}') {
      --depth;
    } else if (body[i] == ',' && depth == 0) {
      parts.push_back(body.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(body.substr(start));
  return parts;
}

class BraceExpander {
 public:
  explicit BraceExpander(const std::string& pattern) : pattern_(pattern) {}

  Status Error(const std::string& why) const {
    return Status::InvalidArgument("brace pattern '" + pattern_ + "': " + why);
  }

  // Appends the expansions of `s` to *out, keeping *out within kMaxBraceResults.
  Status Expand(const std::string& s, std::vector<std::string>* out) const {
    size_t from = 0;
    for (;;) {
      const size_t open = s.find('{', from);
      if (open == std::string::npos) return Append(s, out);
      const size_t close = MatchingBrace(s, open);
      if (close == std::string::npos) return Error("unbalanced braces");
      const std::string body = s.substr(open + 1, close - open - 1);
      const std::vector<std::string> parts = SplitTopLevel(body);
      std::vector<std::string> alternatives;
      if (parts.size() >= 2) {
        for (const std::string& part : parts) FLOWFEED_RETURN_IF_ERROR(Expand(part, &alternatives));
      } else if (body.find("..") != std::string::npos) {
        FLOWFEED_RETURN_IF_ERROR(Range(body, &alternatives));
      } else {
        // Neither a list nor a range: bash keeps such a group as text, and so do we, but a
        // group nested inside it still expands.
        from = open + 1;
        continue;
      }
      std::vector<std::string> suffixes;
      FLOWFEED_RETURN_IF_ERROR(Expand(s.substr(close + 1), &suffixes));
      if (out->size() + alternatives.size() * suffixes.size() > kMaxBraceResults) return TooMany();
      const std::string prefix = s.substr(0, open);
      for (const std::string& a : alternatives)
        for (const std::string& b : suffixes) out->push_back(prefix + a + b);
      return Status::Ok();
    }
  }

 private:
  Status TooMany() const {
    return Error("expands to more than " + std::to_string(kMaxBraceResults) + " names");
  }

  Status Append(const std::string& s, std::vector<std::string>* out) const {
    if (out->size() >= kMaxBraceResults) return TooMany();
    out->push_back(s);
    return Status::Ok();
  }

  Status Range(const std::string& body, std::vector<std::string>* out) const {
    const size_t dots = body.find("..");
    const std::string lhs = body.substr(0, dots), rhs = body.substr(dots + 2);
    int64_t first, last;
    if (!ParseDecimal(lhs, &first) || !ParseDecimal(rhs, &last))
      return Error("range {" + body + "} needs two non-negative integers, like {000..099}");
    if (last < first) return Error("range {" + body + "} ends below its start");
    if (uint64_t(last - first) >= kMaxBraceResults ||
        out->size() + size_t(last - first) + 1 > kMaxBraceResults)
      return TooMany();
    // Bash pads every number when either endpoint is written with a leading zero, to the width
    // of the longer endpoint.
    const bool padded = (lhs.size() > 1 && lhs[0] == '0') || (rhs.size() > 1 && rhs[0] == '0');
    const int width = padded ? int(std::max(lhs.size(), rhs.size())) : 0;
    char buf[64];
    for (int64_t v = first; v <= last; ++v) {
      std::snprintf(buf, sizeof buf, "%0*lld", width, static_cast<long long>(v));
      out->push_back(buf);
    }
    return Status::Ok();
  }

  const std::string& pattern_;
};

}  // namespace

Result<std::vector<std::string>> ExpandBraces(const std::string& pattern) {
  const BraceExpander expander(pattern);
  int depth = 0;
  for (char c : pattern) {
    if (c == '{') {
      ++depth;
    } else if (c == '}') {
      if (--depth < 0) return expander.Error("unbalanced braces ('}' without '{')");
    }
  }
  if (depth != 0) return expander.Error("unbalanced braces ('{' without '}')");
  std::vector<std::string> out;
  FLOWFEED_RETURN_IF_ERROR(expander.Expand(pattern, &out));
  return out;
}

}  // namespace flowfeed
