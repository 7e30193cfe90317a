// pipeline/activity.h (internal): what each pipeline thread is doing now, kept where a fatal
// signal handler (crash_report.cc) can read it, and where exit() called inside a step is seen.
//
// Each thread that runs pipeline work claims one record of a fixed, process-wide table on its
// first sample and keeps it until it ends. The record holds fixed char buffers only (the
// sample's path is copied, the step's label is an interned, never-freed StepLabel), so reading
// it needs no lock, no allocation and touches no memory that can be freed: a handler may read
// any record at any time, even one whose thread is writing it or has just ended.
//
// Threads: a record is written only by its own thread. BeginSample() brackets its stores with a
// sequence counter (odd while writing), so a reader sees a consistent sample or knows it is torn;
// the step is one atomic pointer. The readers below are async-signal-safe and may run on any
// thread at any time.
//
// Cost on the hot path: Enter()/Leave() are one release store of a pointer each; a sample's
// name is copied once per segment (Run call) on the thread that runs it, and not at all when the
// same thread already holds that sample (measured: docs/reliability.md, "Crash forensics").
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "flowfeed/sample.h"

namespace flowfeed {

// What a step is, for the forensics line: its name in the pipeline, its stage type and, for a
// plugin stage, the plugin file. Interned by InternStepLabel and never freed.
struct StepLabel {
  char name[64];
  char type[64];
  char plugin[256];  // "" for built-in steps
};

// The label for (name, type, origin), made once per distinct triple for the life of the
// process; `origin` is StageInfo::origin ("built-in" or the plugin file). Strings longer than
// the buffers are cut (names keep their head, plugin paths their tail). Any thread; locks.
const StepLabel* InternStepLabel(const std::string& name, const std::string& type,
                                 const std::string& origin);

class ThreadActivity {
 public:
  // The calling thread's record, claimed on the first call and released when the thread ends.
  // Never null: when the table is full the thread writes a record of its own that no reader
  // sees (WriteActivityLines says how many threads went unrecorded).
  static ThreadActivity* Mine();

  // The sample this thread is now working on (copied: index, epoch, source name).
  void BeginSample(const Sample& s) {
    if (s.sequence == sequence_ && has_sample_) return;
    seq_.fetch_add(1, std::memory_order_relaxed);  // odd: being written
    std::atomic_thread_fence(std::memory_order_release);
    SetSample(s);
    seq_.fetch_add(1, std::memory_order_release);
  }
  // Inside step `label` until Leave().
  void Enter(const StepLabel* label) { step_.store(label, std::memory_order_release); }
  void Leave() { step_.store(nullptr, std::memory_order_release); }

 private:
  friend struct ActivityAccess;  // activity.cc: the table, the readers
  void SetSample(const Sample& s);

  std::atomic<int> state_{0};  // 0 free, 1 held
  std::atomic<int> tid_{0};
  std::atomic<uint32_t> seq_{0};
  std::atomic<const StepLabel*> step_{nullptr};
  bool has_sample_ = false;  // the owner's own, like sequence_: which sample the rest describe
  uint64_t sequence_ = 0;
  std::atomic<int64_t> index_{-1};
  std::atomic<int> epoch_{0};
  char source_[256] = {0};  // NUL-terminated; a long name keeps its tail
  void* alt_stack_ = nullptr;  // this thread's signal stack, when the record made one
  size_t alt_stack_size_ = 0;
};

// Wanted from now on: each thread that claims a record also gets an alternate signal stack (if
// it has none), so that a stack overflow in a stage still runs the handler. Any thread.
void GiveWorkersSignalStacks();

// Calls `hook` with the thread's id when a thread's thread-local storage is torn down while it
// is inside a step: exit() called from a stage (or pthread_exit()). Runs on that thread, before
// exit() runs anything else; the hook may end the process. Any thread.
void SetLeftInStepHook(void (*hook)(int tid));

// Writes to `fd` one line per held record: the thread id, the step (name, type, plugin file)
// or "idle", the sample (epoch, index, source); the line of thread `culprit_tid` says
// `culprit_note`, and a record caught mid-update says so. Each line starts with "flowfeed:   ".
// Returns how many records were written. Async-signal-safe (write(2) only).
int WriteActivityLines(int fd, int culprit_tid, const char* culprit_note);

// The calling thread's kernel id (gettid). Async-signal-safe.
int CurrentTid();

// Whether thread `tid` holds a record (it runs pipeline work), and if so whether it is inside a
// step now (*in_step). Async-signal-safe.
bool HoldsRecord(int tid, bool* in_step);

}  // namespace flowfeed
