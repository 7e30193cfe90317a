// cache/meta.cc: the meta file's text and the reuse decision (meta.h), and
// StoredCacheFingerprint() (flowfeed/cache.h), which reads the same file.
//
// Thread-safety: pure functions (StoredCacheFingerprint reads one file); safe from any thread.
#include "cache/meta.h"

#include <exception>
#include <nlohmann/json.hpp>

#include "cache/format.h"
#include "flowfeed/util/file.h"

namespace flowfeed {
namespace cache {
namespace {

// The "parts" of a parsed meta file, appended to fp->parts; throws on a malformed one.
void ReadParts(const nlohmann::json& meta, CacheFingerprint* fp) {
  if (meta.is_object() && meta.contains("parts"))
    for (const auto& p : meta.at("parts"))
      fp->parts.emplace_back(p.at(0).get<std::string>(), p.at(1).get<std::string>());
}

}  // namespace

std::string MetaText(const CacheFingerprint& fingerprint) {
  nlohmann::json parts = nlohmann::json::array();
  for (const auto& p : fingerprint.parts) parts.push_back({p.first, p.second});
  const nlohmann::json meta = {
      {"format", kFormat}, {"fingerprint", fingerprint.Hex()}, {"parts", parts}};
  return meta.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string MetaMismatch(const std::string& text, const CacheFingerprint& current) {
  std::string why;
  CacheFingerprint stored;
  std::string stored_hex;
  try {
    const nlohmann::json meta = nlohmann::json::parse(text);
    // Only an integer is a format number: value("format", 0) converted any number to int,
    // undefined for one like 2.2e25 (found by fuzz/fuzz_cache.cc).
    const auto format = meta.is_object() ? meta.find("format") : meta.end();
    if (format != meta.end() && format->is_number_integer() && *format == 1)
      why = std::string(kMetaName) + " is format 1, from an older flowfeed whose data and " +
            "index files do not carry the fingerprint (format " + std::to_string(kFormat) +
            " files do, so that a meta file copied from another cache cannot pass for theirs)";
    else if (format == meta.end() || !format->is_number_integer() || *format != kFormat)
      why = std::string(kMetaName) + " has an unknown format";
    stored_hex = meta.at("fingerprint").get<std::string>();
    ReadParts(meta, &stored);
  } catch (const std::exception&) {
    if (why.empty()) why = std::string(kMetaName) + " is unreadable";
  }
  if (why.empty() && stored_hex != current.Hex()) {
    why = current.Explain(stored);
    if (why.empty()) why = "the fingerprint changed";
  }
  return why;
}

}  // namespace cache

CacheFingerprint StoredCacheFingerprint(const std::string& path) {
  CacheFingerprint stored;
  std::string text;
  if (path.empty() || !ReadFile(JoinPath(path, cache::kMetaName), &text).ok()) return stored;
  try {
    cache::ReadParts(nlohmann::json::parse(text), &stored);
  } catch (const std::exception&) {
    stored.parts.clear();  // unreadable: as if there were none (Open says why)
  }
  return stored;
}

}  // namespace flowfeed
