// isolate/worker_main.cc: the stage worker's side of protocol.h, the whole of the
// flowfeed-stage-worker program (tools/stage_worker/main.cc calls RunStageWorker). It builds one
// stage and runs it on one sample at a time, on one thread.
#include "isolate/worker_main.h"

#include <dirent.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "flowfeed/plugin.h"
#include "flowfeed/registry.h"
#include "isolate/protocol.h"

namespace flowfeed::isolate {
namespace {

// Whatever the host leaked without close-on-exec is not the worker's to keep open.
void CloseOtherDescriptors() {
  std::vector<int> open;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') open.push_back(std::atoi(e->d_name));
    ::closedir(d);
  }
  for (int fd : open)
    if (fd > kMemoryFd) ::close(fd);  // the directory's own descriptor is gone: EBADF, harmless
}

// The host gone (its end of the socket closed) ends the worker even while a stage is stuck.
// A thread rather than PR_SET_PDEATHSIG: that fires when the *thread* that spawned the worker
// ends, and the host spawns from pool threads that may come and go. poll() with no events still
// reports POLLHUP, so requests arriving do not wake it.
void ExitWhenTheHostIsGone() {
  std::thread([] {
    pollfd p{kSocketFd, 0, 0};
    for (;;) {
      if (::poll(&p, 1, -1) > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL))) ::_exit(0);
    }
  }).detach();
}

bool Send(const Reply& r) {
  const size_t n = offsetof(Reply, message) + r.message_bytes;
  return ::send(kSocketFd, &r, n, MSG_NOSIGNAL) == ssize_t(n);
}

Result<std::unique_ptr<Stage>> BuildStage(const std::string& text, StageRegistry* registry) {
  Result<StageSetup> setup = DecodeSetup(text);
  if (!setup.ok()) return setup.status();
  RegisterBuiltinStages(registry);
  if (!setup->plugin.empty()) {
    Result<LoadedPlugin> loaded = LoadPlugin(setup->plugin, registry);
    if (!loaded.ok()) return loaded.status();
  }
  const StageInfo* info = registry->Find(setup->type);
  if (!info)
    return Status::NotFound("stage type '" + setup->type + "' is not registered by " +
                            (setup->plugin.empty() ? "flowfeed" : setup->plugin));
  try {
    return info->factory(setup->params);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("stage could not be built: ") + e.what());
  }
}

// One sample: in from the memory, through the stage, the result back into the memory.
Status Serve(Stage& stage, SharedMemory& mem, Sample& s, std::string& source) {
  FLOWFEED_RETURN_IF_ERROR(mem.Fit(kDataOffset));
  const SampleHeader in = mem.header();
  FLOWFEED_RETURN_IF_ERROR(
      mem.Fit(kDataOffset + in.image_bytes + in.encoded_bytes + in.source_bytes));
  const uint8_t* at = mem.data() + kDataOffset;
  if (in.image_bytes == 0) {
    s.image.Clear();
  } else {
    s.image.Reshape(in.height, in.width, in.channels, DType(in.dtype));
    if (in.image_bytes != s.image.size_bytes())
      return Status::Internal("the host sent " + std::to_string(in.image_bytes) +
                              " pixel bytes for a " + s.image.ShapeString() + " image");
    std::memcpy(s.image.data(), at, in.image_bytes);
  }
  s.encoded.assign(at + in.image_bytes, at + in.image_bytes + in.encoded_bytes);
  source.assign(reinterpret_cast<const char*>(at + in.image_bytes + in.encoded_bytes),
                in.source_bytes);
  s.source = source;
  s.index = in.index;
  s.label = in.label;
  s.epoch = in.epoch;
  s.sequence = in.sequence;

  Status st;
  try {
    st = stage.Process(s, StageContext(in.seed, in.epoch, in.index, in.stage_index));
  } catch (const std::exception& e) {  // the same words as the host's step runner
    st = Status::Internal(std::string("stage threw an exception: ") + e.what());
  } catch (...) {
    st = Status::Internal("stage threw a non-standard exception");
  }
  if (!st.ok()) return st;

  const size_t out = s.image.empty() ? 0 : s.image.size_bytes();
  FLOWFEED_RETURN_IF_ERROR(mem.Fit(kDataOffset + out));
  SampleHeader& h = mem.header();
  h.label = s.label;
  h.height = s.image.empty() ? 0 : s.image.height();
  h.width = s.image.empty() ? 0 : s.image.width();
  h.channels = s.image.empty() ? 0 : s.image.channels();
  h.dtype = uint32_t(s.image.dtype());
  h.image_bytes = out;
  if (s.encoded.empty()) h.encoded_bytes = 0;
  if (out) std::memcpy(mem.data() + kDataOffset, s.image.data(), out);
  return Status::Ok();
}

}  // namespace

int RunStageWorker() {
  CloseOtherDescriptors();
  std::signal(SIGPIPE, SIG_IGN);
  ExitWhenTheHostIsGone();

  std::string setup(size_t(1) << 20, '\0');
  const ssize_t n = ::recv(kSocketFd, setup.data(), setup.size(), 0);
  if (n <= 0) return 0;  // the host went away before saying anything
  setup.resize(size_t(n));
  StageRegistry registry;
  Result<std::unique_ptr<Stage>> stage = BuildStage(setup, &registry);
  if (!Send(MakeReply(stage.ok() ? Status::Ok() : stage.status())) || !stage.ok()) return 1;

  SharedMemory mem(kMemoryFd);
  Sample sample;
  std::string source;
  for (;;) {
    Request req;
    const ssize_t got = ::recv(kSocketFd, &req, sizeof req, 0);
    if (got <= 0) return 0;  // the host closed the socket: done
    const Status st = got == ssize_t(sizeof req) && req.op == 1
                          ? Serve(*stage.value(), mem, sample, source)
                          : Status::Internal("the stage worker got a malformed request");
    if (!Send(MakeReply(st))) return 0;
  }
}

}  // namespace flowfeed::isolate
