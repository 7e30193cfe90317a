// pipeline/worker_slot.h (internal): which per-thread slot the calling thread writes.
//
// The stats table and the trace keep one slot per worker of the pipeline's task arena, so that
// recording takes no lock. Defined in graph.cc, the one file that knows oneTBB.
#pragma once

namespace flowfeed {

// The calling thread's index in the pipeline's task arena, in [0, threads); a negative number
// or one >= threads for a thread outside it (the caller then uses its shared, locked slot). Any
// thread; no lock.
int CurrentWorkerSlot();

}  // namespace flowfeed
