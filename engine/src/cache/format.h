// cache/format.h (internal): the bytes of the disk store -- its file names, the record and index
// layouts, their checksums -- and nothing else, so a change to what a disk cache writes shows
// up here (and in meta.cc for the meta file) or nowhere.
//
// Layout of the disk store, format 2 (all integers in the machine's native byte order,
// little-endian on every platform flowfeed runs on; a cache folder is not meant to move between
// machines). F below is the fingerprint's 64-bit value (CacheFingerprint::Value(), the number
// the meta file's "fingerprint" hex spells):
//
//   flowfeed-cache.data   FileHeader (16 bytes: u32 magic "FFCD", u32 format 2, u64 F), then
//                           records, appended by the writer thread: RecordHeader (48 bytes)
//                           followed by the pixels (payload_bytes).
//                           checksum = XXH3-64 of the pixels, seeded with XXH3-64 of the header's
//                           first 40 bytes (every field but the checksum itself) seeded with F.
//   flowfeed-cache.index  FileHeader (u32 magic "FFCH", u32 format 2, u64 F), then segments,
//                           appended after the records they name were fdatasync'ed:
//                           u32 magic "FFCI", u32 count, IndexEntry[count] (40 bytes each),
//                           u64 XXH3-64 of everything before it in the segment, seeded with F.
//   flowfeed-cache.meta   {"format":2,"fingerprint":"<hex>","parts":[[name,desc],...]}, replaced
//                           atomically (tmp, fsync, rename, fsync of the folder); see meta.h.
//
// Every file carries F, so that no file validates under another cache's meta: a meta file
// copied from another cache (or data or index files copied in beside it) would otherwise make
// one configuration's pixels be served for another's. The file headers let the open say so
// ("... was written for fingerprint X, not Y") and rebuild; the seeded checksums make a record
// or segment written for one fingerprint fail under any other even where a header was forged or
// spliced. Both are free: 16 bytes per file and a seed. Format 1 (no headers, unseeded
// checksums) is rebuilt, never read.
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

// The meta file's "format" and every file header's.
constexpr uint32_t kFormat = 2;
constexpr uint32_t kDataFileMagic = 0x46464344;   // "FFCD"
constexpr uint32_t kIndexFileMagic = 0x46464348;  // "FFCH"
constexpr uint32_t kRecordMagic = 0x46464352;  // "FFCR"
constexpr uint32_t kRecordVersion = 2;         // 2: checksum seeded with the fingerprint
constexpr uint32_t kIndexMagic = 0x46464349;  // "FFCI"
constexpr const char* kMetaName = "flowfeed-cache.meta";
constexpr const char* kDataName = "flowfeed-cache.data";
constexpr const char* kIndexName = "flowfeed-cache.index";

// The first bytes of the data and index files: which fingerprint their contents were written for.
struct FileHeader {
  uint32_t magic;  // kDataFileMagic or kIndexFileMagic
  uint32_t format;
  uint64_t fingerprint;
};
static_assert(sizeof(FileHeader) == 16, "file header layout");
constexpr size_t kFileHeaderBytes = sizeof(FileHeader);

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

// `fingerprint` below is CacheFingerprint::Value() of the cache the bytes belong to.

FileHeader MakeFileHeader(uint32_t magic, uint64_t fingerprint);

// Why `head` (the first bytes of the file `name`, at most kFileHeaderBytes of them) is not the
// header `magic` of a file written for `fingerprint`: no header, another kind or format, or
// another fingerprint (the file came from another cache); "" when it is.
std::string FileHeaderMismatch(const char* name, const std::string& head, uint32_t magic,
                               uint64_t fingerprint);

uint64_t RecordChecksum(const RecordHeader& h, const void* payload, size_t size,
                        uint64_t fingerprint);

// Pixel bytes of a shape, or 0 when the shape is invalid or absurd.
uint64_t PayloadBytes(uint64_t h, uint64_t w, uint64_t c, uint32_t dtype);

// The header of `image`'s record as sample `index`, its checksum filled in.
RecordHeader MakeRecordHeader(int64_t index, const Image& image, uint64_t fingerprint);

// *seg becomes the index segment naming entries[0, count) (count <= kMaxSegmentEntries).
void EncodeSegment(const IndexEntry* entries, size_t count, uint64_t fingerprint,
                   std::vector<uint8_t>* seg);

// The segment starting at `pos` of the index file's bytes: its entries into *entries and its
// size as the result; 0 when no whole segment checksummed for `fingerprint` starts there (the
// torn tail, damage, or a segment written for another fingerprint).
size_t ParseSegment(const std::string& index, size_t pos, uint64_t fingerprint,
                    std::vector<IndexEntry>* entries);

}  // namespace flowfeed::cache
