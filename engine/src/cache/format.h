// cache/format.h (internal): the bytes of the disk store -- its file names, the record and index
// layouts, their checksums -- and nothing else, so a change to what a disk cache writes shows
// up here (and in meta.cc for the meta file) or nowhere.
//
// Layout of the disk store (all integers in the machine's native byte order, little-endian on
// every platform flowfeed runs on; a cache folder is not meant to move between machines):
//
//   flowfeed-cache.data   records, appended by the writer thread:
//                           RecordHeader (48 bytes) followed by the pixels (payload_bytes).
//                           checksum = XXH3-64 of the pixels, seeded with XXH3-64 of the header's
//                           first 40 bytes (every field but the checksum itself).
//   flowfeed-cache.index  segments, appended after the records they name were fdatasync'ed:
//                           u32 magic "FFCI", u32 count, IndexEntry[count] (40 bytes each),
//                           u64 XXH3-64 of everything before it in the segment.
//   flowfeed-cache.meta   {"format":1,"fingerprint":"<hex>","parts":[[name,desc],...]}, replaced
//                           atomically (tmp, fsync, rename, fsync of the folder); see meta.h.
//
// fuzz/fuzz_cache.cc builds and damages these files byte by byte: it repeats the record magic
// and checksum, so keep the two in step.
//
// Thread-safety: constants and pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "flowfeed/image.h"

namespace flowfeed::cache {

constexpr uint32_t kRecordMagic = 0x46464352;  // "FFCR"
constexpr uint32_t kRecordVersion = 1;
constexpr uint32_t kIndexMagic = 0x46464349;  // "FFCI"
constexpr const char* kMetaName = "flowfeed-cache.meta";
constexpr const char* kDataName = "flowfeed-cache.data";
constexpr const char* kIndexName = "flowfeed-cache.index";

struct RecordHeader {
  uint32_t magic;
  uint32_t version;
  uint64_t index;
  uint32_t height, width, channels, dtype;
  uint64_t payload_bytes;
  uint64_t checksum;  // over the fields above and the payload
};
static_assert(sizeof(RecordHeader) == 48, "record header layout");
constexpr size_t kHeaderChecksummed = offsetof(RecordHeader, checksum);

struct IndexEntry {
  uint64_t index;
  uint64_t offset;  // of the record header in the data file
  uint32_t height, width, channels, dtype;
  uint64_t checksum;  // the record's checksum
};
static_assert(sizeof(IndexEntry) == 40, "index entry layout");
constexpr size_t kSegmentHead = 8;  // magic, count
constexpr size_t kSegmentTail = 8;  // checksum
constexpr size_t kMaxSegmentEntries = size_t(1) << 20;

uint64_t RecordChecksum(const RecordHeader& h, const void* payload, size_t size);

// Pixel bytes of a shape, or 0 when the shape is invalid or absurd.
uint64_t PayloadBytes(uint64_t h, uint64_t w, uint64_t c, uint32_t dtype);

// The header of `image`'s record as sample `index`, its checksum filled in.
RecordHeader MakeRecordHeader(int64_t index, const Image& image);

// *seg becomes the index segment naming entries[0, count) (count <= kMaxSegmentEntries).
void EncodeSegment(const IndexEntry* entries, size_t count, std::vector<uint8_t>* seg);

// The segment starting at `pos` of the index file's bytes: its entries into *entries and its
// size as the result; 0 when no whole, checksummed segment starts there (the torn tail).
size_t ParseSegment(const std::string& index, size_t pos, std::vector<IndexEntry>* entries);

}  // namespace flowfeed::cache
