// Happens-before annotations for ThreadSanitizer (FLOWFEED_SANITIZE=thread); empty otherwise.
//
// oneTBB hands a message from one flow-graph node body to the next, and runs a serial node's
// calls one after another, through its task scheduler in libtbb.so. Debian's libtbb is not
// instrumented, so TSan sees none of the ordering it provides and reports every hand-off as a
// race. The pipeline states the orderings the graph guarantees at its own hand-off points:
// HappensBefore(x) at the end of what one body did, HappensAfter(x) at the start of what the
// next one does, both on the same address x. Everything else (mutexes, atomics, std::thread)
// TSan sees by itself. See docs/reliability.md, "Sanitizers".
#pragma once

#if defined(__SANITIZE_THREAD__)
#define FLOWFEED_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FLOWFEED_TSAN 1
#endif
#endif

#ifdef FLOWFEED_TSAN
#include <sanitizer/tsan_interface.h>
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif

namespace flowfeed {

// What this thread did so far happens before whatever follows a HappensAfter(addr).
inline void HappensBefore(const void* addr) {
#ifdef FLOWFEED_TSAN
  __tsan_release(const_cast<void*>(addr));
#else
  (void)addr;
#endif
}

// Whatever preceded a HappensBefore(addr) (on any thread) happens before what this thread does.
inline void HappensAfter(const void* addr) {
#ifdef FLOWFEED_TSAN
  __tsan_acquire(const_cast<void*>(addr));
#else
  (void)addr;
#endif
}

// Until IgnoreAccessesEnd(), TSan checks no memory access of this thread (synchronisation still
// counts). For building and tearing down oneTBB's graph objects only: their hand-over to and
// from the worker threads happens inside libtbb, before and after any body could annotate it.
inline void IgnoreAccessesBegin() {
#ifdef FLOWFEED_TSAN
  __tsan_ignore_thread_begin();
#endif
}
inline void IgnoreAccessesEnd() {
#ifdef FLOWFEED_TSAN
  __tsan_ignore_thread_end();
#endif
}

}  // namespace flowfeed
