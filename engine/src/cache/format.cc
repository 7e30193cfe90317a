// cache/format.cc: the disk store's file headers, checksums, record headers and index segments
// (format.h).
//
// Thread-safety: pure functions; the writer thread encodes, the thread opening the cache parses,
// Lookup()'s callers check checksums, all at once.
#include "cache/format.h"

#include <xxhash.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace flowfeed::cache {

namespace {

std::string Hex(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace

FileHeader MakeFileHeader(uint32_t magic, uint64_t fingerprint) {
  return FileHeader{magic, kFormat, fingerprint};
}

std::string FileHeaderMismatch(const char* name, const std::string& head, uint32_t magic,
                               uint64_t fingerprint) {
  if (head.size() < kFileHeaderBytes)
    return std::string(name) + " has no header (" + std::to_string(head.size()) + " bytes)";
  FileHeader h;
  std::memcpy(&h, head.data(), sizeof h);
  if (h.magic != magic || h.format != kFormat)
    return std::string(name) + " does not start with a format " + std::to_string(kFormat) +
           " header of its kind";
  if (h.fingerprint != fingerprint)
    return std::string(name) + " was written for fingerprint " + Hex(h.fingerprint) +
           ", not the meta file's " + Hex(fingerprint);
  return "";
}

uint64_t RecordChecksum(const RecordHeader& h, const void* payload, size_t size,
                        uint64_t fingerprint) {
  const uint64_t seed = XXH3_64bits_withSeed(&h, kHeaderChecksummed, fingerprint);
  return XXH3_64bits_withSeed(payload, size, seed);
}

uint64_t PayloadBytes(uint64_t h, uint64_t w, uint64_t c, uint32_t dtype) {
  if (h == 0 || w == 0 || c == 0 || dtype > 1) return 0;
  if (h > INT32_MAX || w > INT32_MAX || c > INT32_MAX) return 0;
  const long double total = (long double)h * w * c * (dtype == 1 ? 4 : 1);
  if (total > (long double)(uint64_t(1) << 48)) return 0;
  return h * w * c * (dtype == 1 ? 4 : 1);
}

RecordHeader MakeRecordHeader(int64_t index, const Image& image, uint64_t fingerprint) {
  RecordHeader h{};
  h.magic = kRecordMagic;
  h.version = kRecordVersion;
  h.index = uint64_t(index);
  h.height = uint32_t(image.height());
  h.width = uint32_t(image.width());
  h.channels = uint32_t(image.channels());
  h.dtype = image.dtype() == DType::kFloat32 ? 1 : 0;
  h.payload_bytes = image.size_bytes();
  h.checksum = RecordChecksum(h, image.data(), image.size_bytes(), fingerprint);
  return h;
}

void EncodeSegment(const IndexEntry* entries, size_t count, uint64_t fingerprint,
                   std::vector<uint8_t>* seg) {
  seg->resize(kSegmentHead + count * sizeof(IndexEntry) + kSegmentTail);
  const uint32_t magic = kIndexMagic, n = uint32_t(count);
  std::memcpy(seg->data(), &magic, 4);
  std::memcpy(seg->data() + 4, &n, 4);
  std::memcpy(seg->data() + kSegmentHead, entries, count * sizeof(IndexEntry));
  const size_t body = kSegmentHead + count * sizeof(IndexEntry);
  const uint64_t sum = XXH3_64bits_withSeed(seg->data(), body, fingerprint);
  std::memcpy(seg->data() + body, &sum, 8);
}

size_t ParseSegment(const std::string& index, size_t pos, uint64_t fingerprint,
                    std::vector<IndexEntry>* entries) {
  if (pos + kSegmentHead + kSegmentTail > index.size()) return 0;
  uint32_t magic, count;
  std::memcpy(&magic, index.data() + pos, 4);
  std::memcpy(&count, index.data() + pos + 4, 4);
  if (magic != kIndexMagic || count > kMaxSegmentEntries) return 0;
  const size_t body = kSegmentHead + size_t(count) * sizeof(IndexEntry);
  if (pos + body + kSegmentTail > index.size()) return 0;
  uint64_t sum;
  std::memcpy(&sum, index.data() + pos + body, 8);
  if (XXH3_64bits_withSeed(index.data() + pos, body, fingerprint) != sum) return 0;
  entries->assign(count, IndexEntry{});
  if (count)
    std::memcpy(entries->data(), index.data() + pos + kSegmentHead, count * sizeof(IndexEntry));
  return body + kSegmentTail;
}

}  // namespace flowfeed::cache
