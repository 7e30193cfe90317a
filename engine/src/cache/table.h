// cache/table.h (internal): the per-sample table's entry and its state word -- the protocol by
// which Lookup(), Insert() and the disk writer hand a sample's entry to one another without a
// lock.
//
// An entry goes kEmpty -> kClaimed (the Insert that won the compare-exchange) -> kMemory (the
// same Insert, for good) or kDisk (the writer, once the record is written) or back to kEmpty
// (dropped; a corrupt or uncommitted record). Opening a store sets reused entries to kDisk
// before any other thread sees the cache. Only the holder of a claim writes the entry's
// fields, and publishes them with a release store of the state word.
//
// A disk entry's location lives in atomics validated seqlock-style by re-reading the state word,
// so a reader never acts on a half-updated location; the record's own header and checksum are
// verified on every read as well (see disk_read.cc).
//
// Thread-safety: every field is atomic or written once before a release of `state`; any thread.
#pragma once

#include <atomic>
#include <cstdint>

#include "flowfeed/image.h"

namespace flowfeed::cache {

// The state word of a table entry: bits 0-1 the state, bit 2 the dtype of a disk entry (1:
// float32), bits 3.. a generation bumped whenever the entry returns to empty, so a reader
// holding an old word can tell that the entry changed under it.
enum : uint32_t { kEmpty = 0, kMemory = 1, kDisk = 2, kClaimed = 3 };
constexpr uint32_t kStateMask = 3;
constexpr uint32_t kFloatBit = 4;
constexpr uint32_t kGenStep = 8;
constexpr uint32_t kGenMask = ~uint32_t(7);

inline uint32_t StateOf(uint32_t w) { return w & kStateMask; }
inline uint32_t EmptyAfter(uint32_t w) { return (w & kGenMask) + kGenStep; }

struct Entry {
  std::atomic<uint32_t> state{kEmpty};
  // Disk location (valid while the state is kDisk); atomics, see ReadRecord().
  std::atomic<uint32_t> height{0}, width{0}, channels{0};
  std::atomic<uint64_t> offset{0}, checksum{0};
  // Memory entries: the shared image, written once before the state becomes kMemory and
  // never again while the cache lives.
  Image image;
};

}  // namespace flowfeed::cache
