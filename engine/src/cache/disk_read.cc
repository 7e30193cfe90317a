// cache/disk_read.cc: hits on the disk store -- a record read back and verified, or a sample
// still queued for the writer served from its queued handle.
//
// Threads: any thread, under Lookup(), many at once. A record is read with preadv on read_fd_
// (no file position shared); a queued handle under mu_. A record that fails its checks is a
// miss and, if the entry still names it, the entry goes back to empty (counted as corrupt).
#include "cache/cache_impl.h"

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>

namespace flowfeed::cache {
namespace {

// Fills both buffers of `iov` from `fd` at `offset` with preadv, retrying EINTR and short reads;
// false on an error or the end of the file.
bool ReadFully(int fd, const iovec (&iov)[2], uint64_t offset) {
  const size_t want = iov[0].iov_len + iov[1].iov_len;
  size_t got = 0;
  while (got < want) {
    // Skip what was read already.
    iovec part[2];
    int n = 0;
    size_t skip = got;
    for (const iovec& v : iov) {
      if (skip >= v.iov_len) {
        skip -= v.iov_len;
        continue;
      }
      part[n].iov_base = static_cast<char*>(v.iov_base) + skip;
      part[n].iov_len = v.iov_len - skip;
      skip = 0;
      ++n;
    }
    ssize_t r = ::preadv(fd, part, n, off_t(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += size_t(r);
  }
  return true;
}

}  // namespace

// A sample queued for the writer is served from its queued handle (a shared view, like a
// memory hit), so it hits before its record is written.
bool CacheImpl::LookupPending(int64_t index, Image* image, int64_t* bytes) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = pending_.find(index);
  if (it == pending_.end()) return false;
  *image = it->second.image;
  if (bytes) *bytes = int64_t(image->size_bytes());
  return true;
}

// Reads a disk entry's record into *image; verifies header and checksum.
bool CacheImpl::ReadRecord(Entry& e, int64_t index, uint32_t w, Image* image, int64_t* bytes) {
  // Seqlock-style: acquire loads of the location, then the state word again. A location
  // stored for a later generation (release) makes that generation's state visible here.
  const uint64_t offset = e.offset.load(std::memory_order_acquire);
  const uint64_t checksum = e.checksum.load(std::memory_order_acquire);
  const uint32_t h = e.height.load(std::memory_order_acquire);
  const uint32_t wd = e.width.load(std::memory_order_acquire);
  const uint32_t c = e.channels.load(std::memory_order_acquire);
  if (e.state.load(std::memory_order_relaxed) != w) return false;  // changed under us
  const uint32_t dtype = (w & kFloatBit) ? 1 : 0;
  const uint64_t payload = PayloadBytes(h, wd, c, dtype);
  if (payload == 0) return false;

  image->Reshape(int(h), int(wd), int(c), dtype ? DType::kFloat32 : DType::kUInt8);
  RecordHeader hdr;
  const iovec iov[2] = {{&hdr, sizeof hdr}, {image->data(), size_t(payload)}};
  const bool io_ok = ReadFully(read_fd_, iov, offset);
  const bool ok =
      io_ok && hdr.magic == kRecordMagic && hdr.version == kRecordVersion &&
      hdr.index == uint64_t(index) && hdr.height == h && hdr.width == wd && hdr.channels == c &&
      hdr.dtype == dtype && hdr.payload_bytes == payload && hdr.checksum == checksum &&
      RecordChecksum(hdr, image->data(), size_t(payload), fingerprint_value_) == checksum;
  if (ok) {
    if (bytes) *bytes = int64_t(payload);
    return true;
  }
  image->Clear();
  uint32_t expect = w;
  if (e.state.load(std::memory_order_acquire) != w) return false;  // replaced: plain miss
  if (e.state.compare_exchange_strong(expect, EmptyAfter(w), std::memory_order_acq_rel)) {
    disk_entries_.fetch_sub(1, std::memory_order_relaxed);
    disk_bytes_.fetch_sub(int64_t(sizeof(RecordHeader) + payload), std::memory_order_relaxed);
    if (corrupt_.fetch_add(1, std::memory_order_relaxed) == 0)
      AddMessage(options_.path + ": the record of sample " + std::to_string(index) +
                 " failed its checksum; corrupt records are recomputed");
  }
  return false;
}

}  // namespace flowfeed::cache
