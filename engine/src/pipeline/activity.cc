// pipeline/activity.cc: the per-thread activity records and their async-signal-safe readers
// (activity.h).
#include "pipeline/activity.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "pipeline/safe_line.h"
#include "pipeline/tsan_annotations.h"

namespace flowfeed {

// The table is static storage, never freed: a handler may read a record whose thread is gone.
// 512 threads is far above any pipeline's arena (one per core plus a few).
constexpr int kMaxRecords = 512;

struct ActivityAccess {
  static ThreadActivity g_records[kMaxRecords];
  static std::atomic<int> g_unrecorded;  // threads that found the table full

  static ThreadActivity* Claim();
  static void Release(ThreadActivity* r);
  static int WriteLine(int fd, const ThreadActivity& r, int culprit_tid, const char* note);
  static bool Holds(int tid, bool* in_step);
  static bool InStep(const ThreadActivity& r) {
    return r.step_.load(std::memory_order_relaxed) != nullptr;
  }
};

ThreadActivity ActivityAccess::g_records[kMaxRecords];
std::atomic<int> ActivityAccess::g_unrecorded{0};

namespace {

std::atomic<bool> g_want_alt_stacks{false};
std::atomic<void (*)(int)> g_left_in_step{nullptr};

// Copies `from` into `to` (NUL-terminated); a string that does not fit keeps its head, or its
// tail after "..." when `keep_tail`.
template <size_t N>
void CopyCut(char (&to)[N], const char* from, size_t len, bool keep_tail) {
  if (len < N) {
    std::memcpy(to, from, len);
    to[len] = 0;
  } else if (keep_tail) {
    std::memcpy(to, "...", 3);
    std::memcpy(to + 3, from + len - (N - 4), N - 4);
    to[N - 1] = 0;
  } else {
    std::memcpy(to, from, N - 1);
    to[N - 1] = 0;
  }
}

// Releases the thread's record when the thread ends. A thread cannot end inside a step, except
// by exit() (glibc runs the calling thread's thread_local destructors first thing in exit(),
// before any atexit handler or static destructor has torn anything down) or pthread_exit().
struct Holder {
  ThreadActivity* record = nullptr;
  ~Holder() {
    if (!record) return;
    if (ActivityAccess::InStep(*record))
      if (void (*hook)(int) = g_left_in_step.load()) hook(CurrentTid());
    ActivityAccess::Release(record);
  }
};

}  // namespace

int CurrentTid() { return int(::syscall(SYS_gettid)); }

const StepLabel* InternStepLabel(const std::string& name, const std::string& type,
                                 const std::string& origin) {
  static std::mutex mu;
  static auto* labels = new std::vector<std::unique_ptr<StepLabel>>;  // never freed (header)
  const std::string plugin = origin == "built-in" ? "" : origin;
  auto label = std::make_unique<StepLabel>();
  CopyCut(label->name, name.c_str(), name.size(), false);
  CopyCut(label->type, type.c_str(), type.size(), false);
  CopyCut(label->plugin, plugin.c_str(), plugin.size(), true);
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& l : *labels)
    if (std::strcmp(l->name, label->name) == 0 && std::strcmp(l->type, label->type) == 0 &&
        std::strcmp(l->plugin, label->plugin) == 0)
      return l.get();
  labels->push_back(std::move(label));
  return labels->back().get();
}

void GiveWorkersSignalStacks() { g_want_alt_stacks.store(true); }

void SetLeftInStepHook(void (*hook)(int tid)) { g_left_in_step.store(hook); }

ThreadActivity* ThreadActivity::Mine() {
  thread_local Holder holder;
  thread_local ThreadActivity unrecorded;
  thread_local ThreadActivity* mine = nullptr;
  if (!mine) {
    holder.record = ActivityAccess::Claim();
    mine = holder.record ? holder.record : &unrecorded;
  }
  return mine;
}

void ThreadActivity::SetSample(const Sample& s) {
  has_sample_ = true;
  sequence_ = s.sequence;
  index_.store(s.index, std::memory_order_relaxed);
  epoch_.store(s.epoch, std::memory_order_relaxed);
  CopyCut(source_, s.source.data(), s.source.size(), true);
}

ThreadActivity* ActivityAccess::Claim() {
  for (ThreadActivity& r : g_records) {
    int free = 0;
    if (!r.state_.compare_exchange_strong(free, 1, std::memory_order_acq_rel)) continue;
    r.has_sample_ = false;
    r.step_.store(nullptr, std::memory_order_relaxed);
    r.alt_stack_ = nullptr;
    // A stack overflow in a stage is a SIGSEGV with no stack left to run the handler on.
    stack_t old{};
    if (g_want_alt_stacks.load() && ::sigaltstack(nullptr, &old) == 0 &&
        (old.ss_flags & SS_DISABLE)) {
      const size_t size = std::max<size_t>(size_t(64) << 10, size_t(SIGSTKSZ));
      void* mem = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mem != MAP_FAILED) {
        stack_t ss{};
        ss.ss_sp = mem;
        ss.ss_size = size;
        if (::sigaltstack(&ss, nullptr) == 0) {
          r.alt_stack_ = mem;
          r.alt_stack_size_ = size;
        } else {
          ::munmap(mem, size);
        }
      }
    }
    r.tid_.store(CurrentTid(), std::memory_order_release);
    return &r;
  }
  g_unrecorded.fetch_add(1);
  return nullptr;
}

void ActivityAccess::Release(ThreadActivity* r) {
  if (r->alt_stack_) {
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    ::sigaltstack(&off, nullptr);
    ::munmap(r->alt_stack_, r->alt_stack_size_);
    r->alt_stack_ = nullptr;
  }
  r->step_.store(nullptr, std::memory_order_relaxed);
  r->tid_.store(0, std::memory_order_relaxed);
  r->state_.store(0, std::memory_order_release);
}

// One record's line. The sample fields are read between two loads of the sequence counter: if
// it was odd or moved, the thread was switching samples and the line says "torn".
int ActivityAccess::WriteLine(int fd, const ThreadActivity& r, int culprit_tid, const char* note) {
  if (r.state_.load(std::memory_order_acquire) != 1) return 0;
  const int tid = r.tid_.load(std::memory_order_acquire);
  if (tid == 0) return 0;
  const uint32_t before = r.seq_.load(std::memory_order_acquire);
  const StepLabel* step = r.step_.load(std::memory_order_acquire);
  const int64_t index = r.index_.load(std::memory_order_relaxed);
  const int epoch = r.epoch_.load(std::memory_order_relaxed);
  char source[sizeof r.source_];
  // Races the owner's copy on purpose: the sequence counter tells (TSan is told to look away).
  IgnoreAccessesBegin();
  std::memcpy(source, r.source_, sizeof source);
  IgnoreAccessesEnd();
  source[sizeof source - 1] = 0;
  std::atomic_thread_fence(std::memory_order_acquire);
  const bool torn = (before & 1) || r.seq_.load(std::memory_order_relaxed) != before;

  SafeLine line;
  line << "flowfeed:   thread " << int64_t(tid);
  if (tid == culprit_tid) line << " (" << note << ")";
  line << ": ";
  if (!step) {
    line << "idle (between samples)";
  } else {
    line << "stage '" << step->name << "' (type " << step->type;
    if (step->plugin[0]) line << ", plugin " << step->plugin;
    line << ") on sample " << index << " (" << source << "), epoch " << int64_t(epoch) + 1;
    if (torn) line << " [record torn: the thread was switching samples]";
  }
  line.WriteTo(fd);
  return 1;
}

int WriteActivityLines(int fd, int culprit_tid, const char* culprit_note) {
  int written = 0;
  for (const ThreadActivity& r : ActivityAccess::g_records)
    written += ActivityAccess::WriteLine(fd, r, culprit_tid, culprit_note);
  if (const int lost = ActivityAccess::g_unrecorded.load()) {
    SafeLine line;
    line << "flowfeed:   (" << int64_t(lost) << " more threads not recorded: the table is full)";
    line.WriteTo(fd);
  }
  return written;
}

bool HoldsRecord(int tid, bool* in_step) { return ActivityAccess::Holds(tid, in_step); }

bool ActivityAccess::Holds(int tid, bool* in_step) {
  for (const ThreadActivity& r : g_records) {
    if (r.state_.load(std::memory_order_acquire) != 1 ||
        r.tid_.load(std::memory_order_acquire) != tid)
      continue;
    *in_step = r.step_.load(std::memory_order_acquire) != nullptr;
    return true;
  }
  *in_step = false;
  return false;
}

}  // namespace flowfeed
