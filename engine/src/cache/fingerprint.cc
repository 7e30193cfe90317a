// cache/fingerprint.cc: CacheFingerprint (flowfeed/cache.h): its value, hex form and the
// explanation of a mismatch that the cache's "rebuilding PATH: ..." message quotes.
//
// Thread-safety: pure functions of the fingerprints passed in; safe from any thread. Used on the
// thread that opens the cache and by callers choosing between candidate contents.
#include "flowfeed/cache.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace flowfeed {

namespace {

void AppendU64(std::string* out, uint64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);
  out->append(b, 8);
}

// A description shortened for a message: the part around the first difference from `other`
// when it is long, "..." marking what was cut.
std::string Excerpt(const std::string& s, const std::string& other) {
  constexpr size_t kMax = 120;
  if (s.size() <= kMax) return s;
  size_t diff = 0;
  while (diff < s.size() && diff < other.size() && s[diff] == other[diff]) ++diff;
  size_t begin = diff > 40 ? diff - 40 : 0;
  if (begin + kMax > s.size()) begin = s.size() - kMax;
  std::string out = begin > 0 ? "..." : "";
  out += s.substr(begin, kMax);
  if (begin + kMax < s.size()) out += "...";
  return out;
}

const std::string* FindPart(const CacheFingerprint& fp, const std::string& name) {
  for (const auto& p : fp.parts)
    if (p.first == name) return &p.second;
  return nullptr;
}

}  // namespace

uint64_t CacheFingerprint::Value() const {
  // Length-prefixed, so ("ab","c") and ("a","bc") differ.
  std::string buf;
  AppendU64(&buf, parts.size());
  for (const auto& p : parts) {
    AppendU64(&buf, p.first.size());
    buf += p.first;
    AppendU64(&buf, p.second.size());
    buf += p.second;
  }
  return XXH3_64bits(buf.data(), buf.size());
}

std::string CacheFingerprint::Hex() const {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(Value()));
  return b;
}

std::string CacheFingerprint::Explain(const CacheFingerprint& stored) const {
  std::vector<std::string> clauses;
  std::vector<std::string> seen;
  for (const auto& p : parts) {
    if (std::find(seen.begin(), seen.end(), p.first) != seen.end()) continue;
    seen.push_back(p.first);
    const std::string* old = FindPart(stored, p.first);
    if (!old) {
      clauses.push_back(p.first + " added");
    } else if (*old != p.second) {
      clauses.push_back(p.first + " changed: was '" + Excerpt(*old, p.second) + "', now '" +
                        Excerpt(p.second, *old) + "'");
    }
  }
  for (const auto& p : stored.parts) {
    if (std::find(seen.begin(), seen.end(), p.first) != seen.end()) continue;
    seen.push_back(p.first);
    clauses.push_back(p.first + " removed");
  }
  std::string out;
  for (const std::string& c : clauses) {
    if (!out.empty()) out += "; ";
    out += c;
  }
  if (out.empty() && Value() != stored.Value()) out = "the fingerprint changed";
  return out;
}

}  // namespace flowfeed
