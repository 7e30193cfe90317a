// The checkpoint's seal (checkpoint_seal.h): a zip comment holding the XXH3-64 of the rest.
//
// Threads: pure functions; any thread.
#include "checkpoint_seal.h"

#include <xxhash.h>

#include <cstdio>
#include <cstring>

namespace flowfeed {

namespace {

constexpr char kSealTag[] = "flowfeed-xxh3:";
constexpr size_t kTagSize = sizeof kSealTag - 1;
constexpr size_t kEndRecord = 22;  // the end-of-central-directory record without its comment

// An end-of-central-directory record at `at` whose comment is `comment` bytes long.
bool EndRecordAt(const std::string& b, size_t at, size_t comment) {
  if (at + kEndRecord > b.size()) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + at);
  return p[0] == 'P' && p[1] == 'K' && p[2] == 5 && p[3] == 6 &&
         size_t(p[20]) + (size_t(p[21]) << 8) == comment;
}

std::string Hex(uint64_t v) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(v));
  return hex;
}

}  // namespace

Status SealCheckpoint(std::string* zip) {
  if (zip->size() < kEndRecord || !EndRecordAt(*zip, zip->size() - kEndRecord, 0))
    return Status::Internal("the serialised checkpoint does not end with a zip end record");
  (*zip)[zip->size() - 2] = char(kSealSize & 0xff);
  (*zip)[zip->size() - 1] = char(kSealSize >> 8);
  const uint64_t sum = XXH3_64bits(zip->data(), zip->size());
  *zip += kSealTag;
  *zip += Hex(sum);
  return Status::Ok();
}

Status CheckSeal(const std::string& bytes, const std::string& path, bool* sealed) {
  *sealed = false;
  const size_t n = bytes.size();
  if (n >= kEndRecord + kSealSize && EndRecordAt(bytes, n - kSealSize - kEndRecord, kSealSize) &&
      bytes.compare(n - kSealSize, kTagSize, kSealTag) == 0) {
    const std::string stored = bytes.substr(n - kSealSize + kTagSize);
    const std::string computed = Hex(XXH3_64bits(bytes.data(), n - kSealSize));
    if (stored != computed)
      return Status::Corrupt(
          "checkpoint " + path + " is damaged: its content does not match its checksum (stored " +
          stored + ", computed " + computed + "); it cannot be resumed from (use an earlier copy)");
    *sealed = true;
    return Status::Ok();
  }
  if (n >= kEndRecord && EndRecordAt(bytes, n - kEndRecord, 0)) return Status::Ok();
  return Status::Corrupt("checkpoint " + path +
                         " is damaged or not a flowfeed checkpoint: it does not end with a zip "
                         "end record and checksum (cut short, or altered at its end)");
}

}  // namespace flowfeed
