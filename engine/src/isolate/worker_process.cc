// isolate/worker_process.cc: spawning a stage worker, one sample's round trip, the worker's end.
#include "isolate/worker_process.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "flowfeed/util/clock.h"
#include "flowfeed/util/file.h"

extern char** environ;

namespace flowfeed::isolate {
namespace {

constexpr const char* kProgram = "flowfeed-stage-worker";

bool IsExecutable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

void CloseIf(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

// The worker's descriptors at numbers >= 10, so that placing them at 3 and 4 in the child
// cannot overwrite one with the other.
int Above(int fd) { return ::fcntl(fd, F_DUPFD_CLOEXEC, 10); }

}  // namespace

Result<std::string> FindStageWorker() {
  std::vector<std::string> tried;
  if (const char* env = std::getenv("FLOWFEED_STAGE_WORKER"); env && *env) {
    if (IsExecutable(env)) return std::string(env);
    return Status::NotFound(std::string("FLOWFEED_STAGE_WORKER=") + env +
                            " is not an executable file");
  }
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) tried.push_back(JoinPath(DirName(std::string(self, size_t(n))), kProgram));
  // Beside the file the engine's code was loaded from, when that is not the program: the Python
  // module (a pip install puts the worker in the package's folder, beside _flowfeed*.so).
  Dl_info info;
  if (::dladdr(reinterpret_cast<void*>(&FindStageWorker), &info) != 0 && info.dli_fname &&
      info.dli_fname[0] == '/') {
    const std::string beside = JoinPath(DirName(info.dli_fname), kProgram);
    if (std::find(tried.begin(), tried.end(), beside) == tried.end()) tried.push_back(beside);
  }
#ifdef FLOWFEED_STAGE_WORKER_BUILD_PATH
  tried.push_back(FLOWFEED_STAGE_WORKER_BUILD_PATH);
#endif
#ifdef FLOWFEED_STAGE_WORKER_INSTALL_DIR
  tried.push_back(JoinPath(FLOWFEED_STAGE_WORKER_INSTALL_DIR, kProgram));
#endif
  std::string list;
  for (const std::string& path : tried) {
    if (IsExecutable(path)) return path;
    list += (list.empty() ? "" : ", ") + path;
  }
  return Status::NotFound(std::string("the stage worker program (") + kProgram +
                          ") for isolate: process was not found; looked at FLOWFEED_STAGE_WORKER "
                          "(unset), " +
                          list);
}

Result<std::unique_ptr<WorkerProcess>> WorkerProcess::Start(const std::string& program,
                                                            const std::string& setup,
                                                            int64_t timeout_ms, int cancel_fd) {
  std::unique_ptr<WorkerProcess> w(new WorkerProcess());
  w->cancel_fd_ = cancel_fd;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return Status::IoError(ErrnoMessage("stage worker: socketpair", errno));
  w->socket_ = sv[0];
  int child_socket = Above(sv[1]);
  ::close(sv[1]);
  w->memfd_ = ::memfd_create("flowfeed-stage-worker", MFD_CLOEXEC);
  int child_memory = w->memfd_ >= 0 ? Above(w->memfd_) : -1;
  if (child_socket < 0 || child_memory < 0) {
    const Status st = Status::IoError(ErrnoMessage("stage worker: descriptors", errno));
    CloseIf(&child_socket);
    CloseIf(&child_memory);
    return st;
  }
  w->memory_ = std::make_unique<SharedMemory>(w->memfd_);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, child_socket, kSocketFd);
  ::posix_spawn_file_actions_adddup2(&actions, child_memory, kMemoryFd);
  ::posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  // Pipeline threads block signals; the worker starts with none blocked, all at their defaults,
  // in a process group of its own.
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setpgroup(&attr, 0);
  ::posix_spawnattr_setflags(
      &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> argv = {const_cast<char*>(program.c_str()), nullptr};
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  ::close(child_socket);
  ::close(child_memory);
  if (rc != 0)
    return Status::IoError("cannot start the stage worker " + program + ": " + std::strerror(rc));
  w->pid_ = pid;

  if (::send(w->socket_, setup.data(), setup.size(), MSG_NOSIGNAL) != ssize_t(setup.size()))
    return Status::IoError("stage worker " + std::to_string(pid) + ": " + w->End(true) +
                           " before it was sent its stage");
  Reply reply;
  Status st = w->Receive(&reply, timeout_ms);
  if (!st.ok()) return st.WithContext("stage worker " + std::to_string(pid) + " while starting");
  return w;
}

WorkerProcess::~WorkerProcess() {
  if (alive()) End(true);
  CloseIf(&socket_);
  memory_.reset();
  CloseIf(&memfd_);
}

std::string WorkerProcess::End(bool kill) {
  if (!alive()) return "ended";
  int wstatus = 0;
  pid_t r = 0;
  // A worker that closed its socket is normally exiting; one that closed it and carried on
  // gets two seconds, then the same end as a stuck one.
  for (int waited_ms = 0; !kill && r == 0 && waited_ms < 2000; ++waited_ms) {
    r = ::waitpid(pid_, &wstatus, WNOHANG);
    if (r == 0) ::usleep(1000);
    if (r < 0 && errno == EINTR) r = 0;
  }
  if (r == 0) {
    ::kill(pid_, SIGKILL);
    do {
      r = ::waitpid(pid_, &wstatus, 0);
    } while (r < 0 && errno == EINTR);
  }
  pid_ = -1;
  CloseIf(&socket_);
  if (r < 0) return ErrnoMessage("waitpid", errno);
  if (WIFSIGNALED(wstatus)) {
    const int sig = WTERMSIG(wstatus);
    const char* abbrev = sigabbrev_np(sig);
    return "worker killed by " +
           (abbrev ? "SIG" + std::string(abbrev) : "signal " + std::to_string(sig));
  }
  return "worker exited with status " + std::to_string(WEXITSTATUS(wstatus));
}

Status WorkerProcess::Receive(Reply* reply, int64_t timeout_ms) {
  const uint64_t deadline = NowNs() + uint64_t(timeout_ms) * 1000000;
  for (;;) {
    pollfd p[2] = {{socket_, POLLIN, 0}, {cancel_fd_, POLLIN, 0}};
    const uint64_t now = NowNs();
    const int wait_ms =
        now >= deadline ? 0 : int(std::min<uint64_t>((deadline - now + 999999) / 1000000, 1 << 30));
    const int r = ::poll(p, 2, wait_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::IoError(ErrnoMessage("stage worker: poll", errno) + "; " + End(true));
    if (p[1].revents) {
      End(true);
      return Status::Cancelled("the run was cancelled; its worker was stopped");
    }
    if (r == 0) {
      End(true);
      return Status::ResourceExhausted("no answer within " + std::to_string(timeout_ms) +
                                       " ms (timeout_ms); worker killed");
    }
    const ssize_t n = ::recv(socket_, reply, sizeof *reply, 0);
    if (n < 0 && errno == EINTR) continue;
    // The socket closed (or failed): the worker is gone or going; waitpid says how.
    if (n <= 0) return Status::Internal(End(false));
    return ReplyStatus(*reply, size_t(n));
  }
}

Status WorkerProcess::Run(Sample& s, const StageContext& ctx, int64_t timeout_ms) {
  const size_t image = s.image.empty() ? 0 : s.image.size_bytes();
  FLOWFEED_RETURN_IF_ERROR(memory_->Fit(kDataOffset + image + s.encoded.size() + s.source.size()));
  SampleHeader& h = memory_->header();
  h = SampleHeader();
  h.seed = ctx.seed();
  h.index = ctx.index();
  h.epoch = ctx.epoch();
  h.stage_index = ctx.stage_index();
  h.label = s.label;
  h.sequence = s.sequence;
  if (image) {
    h.height = s.image.height();
    h.width = s.image.width();
    h.channels = s.image.channels();
    h.dtype = uint32_t(s.image.dtype());
  }
  h.image_bytes = image;
  h.encoded_bytes = s.encoded.size();
  h.source_bytes = s.source.size();
  uint8_t* at = memory_->data() + kDataOffset;
  if (image) std::memcpy(at, s.image.data(), image);
  if (!s.encoded.empty()) std::memcpy(at + image, s.encoded.data(), s.encoded.size());
  if (!s.source.empty())
    std::memcpy(at + image + s.encoded.size(), s.source.data(), s.source.size());

  const Request request;
  if (::send(socket_, &request, sizeof request, MSG_NOSIGNAL) != ssize_t(sizeof request))
    return Status::Internal(End(true) + " (it took no request)");
  Reply reply;
  FLOWFEED_RETURN_IF_ERROR(Receive(&reply, timeout_ms));

  // The worker may have grown the memory for a larger result. Its header is copied, then
  // checked against the memory's size before anything is sized by it; a worker that sends
  // nonsense is ended (and replaced by the next sample).
  const SampleHeader r = memory_->header();
  struct stat st;
  if (::fstat(memfd_, &st) != 0) return Status::IoError(ErrnoMessage("stage worker: fstat", errno));
  if (Status bad = CheckResult(r, uint64_t(st.st_size)); !bad.ok())
    return Status(bad.code(), bad.message() + "; " + End(true));
  const size_t out = r.image_bytes;
  FLOWFEED_RETURN_IF_ERROR(memory_->Fit(kDataOffset + out));
  s.label = r.label;
  if (r.encoded_bytes == 0) s.encoded.clear();
  if (out == 0) {
    s.image.Clear();
    return Status::Ok();
  }
  s.scratch.Reshape(r.height, r.width, r.channels, DType(r.dtype));
  std::memcpy(s.scratch.data(), memory_->data() + kDataOffset, out);
  s.SwapScratch();
  return Status::Ok();
}

}  // namespace flowfeed::isolate
