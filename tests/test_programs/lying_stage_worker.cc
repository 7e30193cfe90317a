// A stage worker that answers as flowfeed-stage-worker does (isolate/protocol.h) and returns
// every sample unchanged, except the one whose index is $FLOWFEED_TEST_LIE: for it, the result
// header claims a 16384 x 16384 x 4 image (1 GiB) that the worker never wrote, nor grew the
// shared memory for. The host must refuse that result, not allocate and copy a gigabyte on a
// worker's word (tests/isolate_test.cc, Isolate.AWorkerThatLiesAboutItsResultIsRefused).
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "isolate/protocol.h"

using flowfeed::isolate::kMemoryFd;
using flowfeed::isolate::kSocketFd;
using flowfeed::isolate::Reply;
using flowfeed::isolate::Request;
using flowfeed::isolate::SampleHeader;

int main() {
  static char setup[1 << 20];
  if (::recv(kSocketFd, setup, sizeof setup, 0) <= 0) return 0;
  const Reply ok{};
  const size_t ok_bytes = offsetof(Reply, message);  // code 0, no message
  if (::send(kSocketFd, &ok, ok_bytes, MSG_NOSIGNAL) != ssize_t(ok_bytes)) return 1;
  const char* lie = std::getenv("FLOWFEED_TEST_LIE");
  const int64_t lie_index = lie ? std::atoll(lie) : -1;
  for (;;) {
    Request request;
    if (::recv(kSocketFd, &request, sizeof request, 0) <= 0) return 0;
    struct stat st;
    if (::fstat(kMemoryFd, &st) != 0) return 1;
    void* p = ::mmap(nullptr, size_t(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, kMemoryFd, 0);
    if (p == MAP_FAILED) return 1;
    SampleHeader* h = static_cast<SampleHeader*>(p);
    if (h->index == lie_index) {
      h->height = 16384;
      h->width = 16384;
      h->channels = 4;
      h->dtype = 0;
      h->image_bytes = uint64_t(16384) * 16384 * 4;
    }
    ::munmap(p, size_t(st.st_size));
    if (::send(kSocketFd, &ok, ok_bytes, MSG_NOSIGNAL) != ssize_t(ok_bytes)) return 1;
  }
}
