// pipeline/graph.h (internal): the pipeline's oneTBB flow graph, its task arena and the thread
// that waits for it. graph.cc is the only file that includes oneTBB's headers; this one does
// not, so that the rest of the pipeline builds without them.
//
// Threads: Build() and Run() on the opening thread, once, in that order; ReleaseTokens() and
// StopProducing() from any thread (the batcher, a consumer dropping a batch, Cancel()); Cancel()
// and Join() from the pipeline's owner. The graph owns the ring of sample slots (slot.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/step.h"

namespace flowfeed {

class Batcher;
class ReadyQueue;
class StepRunner;
class TicketDrawer;

// Worker threads when options.threads is 0: what oneTBB would use on this machine.
int DefaultThreads();
// oneTBB's runtime version ("2021.8.0"), for the report's provenance.
std::string TbbVersion();

class Graph {
 public:
  // `threads` workers in the graph's own arena; `tokens` samples in flight at most.
  Graph(int threads, size_t tokens);
  // Joins (see Join()).
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Wires the nodes (see graph.cc) around the collaborators, which must outlive the graph.
  // Nothing runs yet.
  void Build(const std::vector<Step>& steps, TicketDrawer* tickets, StepRunner* runner,
             Batcher* batcher, ReadyQueue* ready);

  // Starts drawing tickets, and a thread that waits for the graph; an exception out of the
  // graph goes to `ready` as an Internal error.
  void Run();

  // Gives back `n` tokens to the limiter (no-op once stopped). Any thread.
  void ReleaseTokens(int64_t n);

  // Draws no more tickets and lets the waiting thread finish once the graph drains. Idempotent;
  // any thread.
  void StopProducing();

  // StopProducing(), and cancels the graph's tasks. Idempotent.
  void Cancel();

  // Waits for the waiting thread, then destroys the nodes inside the arena. Call after
  // Cancel() or once the run is over; idempotent.
  void Join();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flowfeed
