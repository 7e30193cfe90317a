// flowfeed/cache.h: the first-epoch sample cache.
//
// A SampleCache keeps, per dataset index, the image the pipeline's deterministic prefix produced
// (read -> decode -> deterministic stages), so later epochs start from it and pay only for the
// random stages. It fills as a side effect of the normal pass (Insert() from the pipeline's
// workers), and serves hits as soon as a sample is in (Lookup()), within epoch 1 too.
//
// Memory store: Insert() copies the pixels once into the cache's arena (large chunks of plain
// anonymous memory, freed with the cache); a hit hands out a shared view of them (zero-copy). Copying
// on insert lets the caller keep its buffers, so the pipeline allocates nothing per sample even
// while the cache fills, and the budget charges exactly the memory held. Cached images are
// immutable: stages never write into shared storage (see image.h). A sample that does not fit
// the budget is not kept (memory mode) or goes to the disk store (auto mode).
//
// Disk store, under CacheOptions::path:
//   flowfeed-cache.meta   the fingerprint and its parts, written atomically (tmp, fsync, rename)
//   flowfeed-cache.data   a header naming the fingerprint, then append-only records: header +
//                         pixels, each with an XXH3 checksum
//   flowfeed-cache.index  a header naming the fingerprint, then append-only segments of (index,
//                         offset, shape, checksum) entries, each segment checksummed and written
//                         only after the records it names were made durable (fdatasync)
// Every checksum is seeded with the fingerprint, so one cache's files never validate under
// another's meta file (a copied meta file or index rebuilds the cache, saying why).
// Records are written by one background thread; Insert() never blocks on I/O (a full write
// queue drops the sample, which is recomputed next epoch). On open, a matching fingerprint
// reuses every committed entry; a torn tail (a run killed mid-write) is cut off and reported; a
// mismatch rebuilds the cache and says which part changed. A failed write (full disk) disables
// the disk store with a warning and the run goes on. A record whose checksum fails on read is a
// miss (counted as corrupt), never wrong pixels.
//
// Thread-safety: Lookup(), Insert() and stats() may be called from any thread at once.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "flowfeed/env.h"
#include "flowfeed/image.h"
#include "flowfeed/options.h"
#include "flowfeed/status.h"

namespace flowfeed {

// What the cached contents depend on. Two caches are interchangeable exactly when their values
// are equal; the named parts let a mismatch be explained.
struct CacheFingerprint {
  // Ordered (name, description) pairs, e.g. {"format", "1"}, {"listing", "2000 files, ..."},
  // {"stages", "decode(color=rgb max_pixels=268435456)"}, {"codecs", "libjpeg-turbo 2.1.5, ..."}.
  std::vector<std::pair<std::string, std::string>> parts;

  uint64_t Value() const;     // XXH3-64 over the parts
  std::string Hex() const;    // Value() as 16 hex digits
  // Why `stored` does not match this one: "stages changed: was '...', now '...'" (one clause
  // per differing part, "; "-separated); "" when they match.
  std::string Explain(const CacheFingerprint& stored) const;
};

// The file operations the disk store uses: its earlier name for flowfeed::Env's POSIX
// implementation, kept so that test doubles deriving from it and overriding Write() or Sync()
// work unchanged. New code derives from Env (or PosixEnv) directly.
using CacheFileOps = PosixEnv;

struct CacheStats {
  CacheMode mode = CacheMode::kOff;
  int64_t budget_bytes = 0;
  int64_t memory_entries = 0, memory_bytes = 0;  // storage held in memory (capacity, >= pixels)
  int64_t disk_entries = 0, disk_bytes = 0;      // records written and readable (this run + reused)
  int64_t reused_entries = 0;                    // committed entries found at open
  int64_t overhead_bytes = 0;    // bookkeeping memory: the per-sample table and its entries
  int64_t dropped = 0;           // inserts not kept: over budget (memory mode) or queue full
  int64_t corrupt = 0;           // disk records whose checksum failed on read
  bool disk_disabled = false;    // a write failed; the disk store is off for this run
  // What happened at open and since: "reusing 1200 committed samples from PATH", "rebuilding
  // PATH: stages changed: ...", "PATH: discarded a torn tail of 3 records ...", "disk cache
  // disabled: PATH: No space left on device".
  std::vector<std::string> messages;
};

class SampleCache {
 public:
  // Opens the cache for a dataset of `num_samples` samples (indices 0 .. num_samples-1).
  // Disk and auto modes with a path create the folder, then reuse, repair or rebuild the files
  // as described above. Fails only for an unusable path (not creatable, not a folder):
  // InvalidArgument/IoError naming it. The disk store's writes, syncs, renames and unlinks go
  // through `ops` (null: Env::Default() at this call), which must outlive the cache.
  static Result<std::unique_ptr<SampleCache>> Open(const CacheOptions& options,
                                                   int64_t num_samples,
                                                   const CacheFingerprint& fingerprint,
                                                   Env* ops = nullptr);

  // Makes pending records durable and stops the writer thread.
  virtual ~SampleCache() = default;

  // On a hit stores the cached image in *image and returns true: a shared view for a memory
  // entry, or the record read into *image's own storage (Reshape) for a disk entry; *bytes is
  // the pixel bytes served. A miss (including a corrupt record) returns false.
  virtual bool Lookup(int64_t index, Image* image, int64_t* bytes) = 0;

  // Offers the prefix's output for `index`: copies it into the memory store, or queues a copy
  // for the disk writer; never blocks on I/O. The caller's image is not kept. An index already
  // held is ignored.
  virtual void Insert(int64_t index, const Image& image) = 0;

  // Disk: waits until every record queued so far is written and committed. The pipeline calls
  // it once, when the last epoch ends (so its final report includes what was written and any
  // write failure), and the destructor calls it; not at earlier epoch ends, which would stall
  // the consumer (records are committed every commit_seconds anyway, and queued records are
  // served from memory meanwhile).
  virtual void Flush() = 0;

  // Asks the OS to drop the disk store's files from the page cache (for --cold).
  virtual void EvictFromPageCache() = 0;

  virtual CacheStats stats() const = 0;
  virtual const CacheFingerprint& fingerprint() const = 0;
};

// The fingerprint the disk store under `path` was written for (its meta file), without opening
// the store; no parts when there is none or it is unreadable. Lets a caller choose between
// candidate contents by what is already on disk.
CacheFingerprint StoredCacheFingerprint(const std::string& path);

// "8GiB", "512MiB", "1.5G", "300M", "1048576" (bytes) or "25%" (of physical memory) to bytes.
// Both defined with the other string helpers, in engine/src/util/strings.cc.
Result<int64_t> ParseByteSize(const std::string& text);
int64_t PhysicalMemoryBytes();

}  // namespace flowfeed
