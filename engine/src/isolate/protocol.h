// isolate/protocol.h (internal): what the host's isolated stage (isolated_stage.h) and a stage
// worker process (flowfeed-stage-worker, worker_main.cc) say to each other.
//
// The worker inherits two descriptors: kSocketFd, its end of a SOCK_SEQPACKET socketpair (one
// message per send, so no framing), and kMemoryFd, a memfd that both sides map. The host sends
// one setup message (EncodeSetup: the stage to build), the worker answers with a Reply; then,
// per sample, the host writes the sample into the memory (a SampleHeader at offset 0, then the
// source name, the encoded bytes and the pixels from kDataOffset), sends a Request, and the
// worker writes the result there (header fields updated, the pixels from kDataOffset) and sends
// a Reply. Either side grows the memfd when what it writes does not fit; the other side remaps
// (SharedMemory::Fit reads the file's size). The worker exits when the socket closes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "flowfeed/registry.h"
#include "flowfeed/status.h"

namespace flowfeed::isolate {

inline constexpr int kSocketFd = 3;
inline constexpr int kMemoryFd = 4;

// The sample as it crosses, at offset 0 of the shared memory. Plain data, same binary on both
// sides (the worker is built with the host).
struct SampleHeader {
  // StageContext
  uint64_t seed = 0;
  int64_t index = -1;
  int32_t epoch = 0;
  int32_t stage_index = 0;
  // Sample
  int64_t label = -1;
  uint64_t sequence = 0;
  int32_t height = 0, width = 0, channels = 0;
  uint32_t dtype = 0;
  uint64_t source_bytes = 0;   // input only
  uint64_t encoded_bytes = 0;  // input; the worker sets 0 when the stage dropped them
  uint64_t image_bytes = 0;    // height * width * channels * DTypeSize, in and out
};
inline constexpr size_t kDataOffset = 256;  // aligned for any pixel type
static_assert(sizeof(SampleHeader) <= kDataOffset, "the header overlaps the data");

// The worker runs code that is not trusted, so the host checks the result's header before it
// sizes anything by it: a known dtype, sides in [1, kMaxResultSide] and channels in
// [1, kMaxResultChannels] (or no image at all), image_bytes equal to their product, and the pixels
// inside the `shared_bytes` the memfd holds (the worker grew it for them). Internal naming the
// field otherwise.
inline constexpr int32_t kMaxResultSide = 1 << 20;
inline constexpr int32_t kMaxResultChannels = 1 << 16;
Status CheckResult(const SampleHeader& h, uint64_t shared_bytes);

struct Request {
  uint32_t op = 1;  // 1: process the sample in memory
  uint32_t reserved = 0;
};

// The worker's answer to the setup and to each request: a Status, its message cut to fit.
struct Reply {
  int32_t code = 0;  // StatusCode
  uint32_t message_bytes = 0;
  char message[2040];
};
Reply MakeReply(const Status& status);
Status ReplyStatus(const Reply& reply, size_t received);

// The stage a worker builds: its type, the plugin file that registered it ("" for a built-in
// stage) and its checked parameters.
struct StageSetup {
  std::string type;
  std::string plugin;
  StageParams params;
};
std::string EncodeSetup(const StageSetup& setup);
Result<StageSetup> DecodeSetup(const std::string& text);

// One side's mapping of the shared memfd. Not thread-safe: each worker's memory is used by one
// thread at a time.
class SharedMemory {
 public:
  SharedMemory() = default;
  explicit SharedMemory(int fd) : fd_(fd) {}
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory();

  // Makes at least `bytes` addressable: grows the file when it is smaller (this side is about
  // to write), then maps the whole file anew when the mapping is smaller (the other side may
  // have grown it). IoError naming the size on failure.
  Status Fit(size_t bytes);
  uint8_t* data() { return data_; }
  size_t size() const { return mapped_; }
  SampleHeader& header() { return *reinterpret_cast<SampleHeader*>(data_); }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;  // not owned
  uint8_t* data_ = nullptr;
  size_t mapped_ = 0;
};

}  // namespace flowfeed::isolate
