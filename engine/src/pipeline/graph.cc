// pipeline/graph.cc: the pipeline's oneTBB flow graph. The only file that includes oneTBB.
//
//   input_node<Ticket>  (serial: draws the epoch permutation, one ticket per sample)
//     -> limiter_node   (tokens: prefetch * batch + max_in_flight; released by the consumer)
//     -> function_node  (segment 0: read + the following stages with the same concurrency)
//     -> function_node  (segment k ...)
//     -> sequencer_node (restores sampler order)
//     -> function_node  (serial batcher: skip/refill, collate, digest, epoch ends)
//     -> ready queue (mutex + condition variable) -> Pipeline::Next()
//
// Why a token lives until the consumer drops the batch: the batcher can then always find a free
// batch buffer (there are at most tokens / batch + 2 of them) and never has to block a worker
// thread waiting for the consumer, while memory stays bounded whatever the consumer does.
//
// Sample objects live in a ring of `tokens` slots indexed by sequence % tokens: a sample is done
// with its slot once the (ordered) batcher has passed it, and at most `tokens` samples past the
// batcher's position hold tokens, so two live samples never share a slot.
//
// The node bodies are the small functors below: each holds pointers to the state it works on
// (oneTBB copies bodies), and states for TSan the ordering the graph gives it
// (tsan_annotations.h).
#include "pipeline/graph.h"

#include <tbb/flow_graph.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <tbb/version.h>

#include <atomic>
#include <string>
#include <thread>
#include <utility>

#include "pipeline/batcher.h"
#include "pipeline/ready_queue.h"
#include "pipeline/sampler.h"
#include "pipeline/slot.h"
#include "pipeline/step_runner.h"
#include "pipeline/tsan_annotations.h"
#include "pipeline/worker_slot.h"

namespace flowfeed {

int DefaultThreads() { return tbb::info::default_concurrency(); }

std::string TbbVersion() { return TBB_runtime_version(); }

int CurrentWorkerSlot() { return tbb::this_task_arena::current_thread_index(); }

namespace {

namespace flow = tbb::flow;

// End of a worker body for TSan: its work on the slot happens before the next body's, and
// before wait_for_all() returns (`done`).
void HandOff(Slot* slot, const void* done) {
  HappensBefore(slot);
  HappensBefore(done);
}

// input_node body (serial): the next ticket, or the end of the stream.
struct DrawTicket {
  TicketDrawer* tickets;
  const std::atomic<bool>* stop;
  const void* done;
  Ticket operator()(tbb::flow_control& fc) const {
    HappensAfter(tickets);  // the previous call, maybe on another thread
    Ticket t;
    if (stop->load(std::memory_order_relaxed) || !tickets->Draw(&t)) {
      fc.stop();
      t = Ticket();
    }
    HappensBefore(tickets);
    HappensBefore(done);
    return t;
  }
};

// First segment's body: the ticket's ring slot, its cache lookup, then steps [begin, end).
struct FirstSegment {
  Slot* ring;
  size_t tokens;
  const void* ring_sync;
  StepRunner* runner;
  int begin, end;
  const void* done;
  Slot* operator()(const Ticket& t) const {
    HappensAfter(ring_sync);  // the token's release (ReleaseTokens): the slot is free again
    Slot* slot = &ring[t.sequence % tokens];
    runner->Begin(slot, t);
    runner->Run(slot, begin, end);
    HandOff(slot, done);
    return slot;
  }
};

// A later segment's body: steps [begin, end).
struct NextSegment {
  StepRunner* runner;
  int begin, end;
  const void* done;
  Slot* operator()(Slot* slot) const {
    HappensAfter(slot);
    runner->Run(slot, begin, end);
    HandOff(slot, done);
    return slot;
  }
};

// sequencer_node body: where the sample goes in sampler order.
struct SequenceOf {
  const void* done;
  size_t operator()(Slot* s) const {
    HappensAfter(s);
    const size_t sequence = size_t(s->sample.sequence);
    HappensBefore(done);
    return sequence;
  }
};

// Batcher node body (serial, in sampler order).
struct AddToBatch {
  Batcher* batcher;
  const void* done;
  flow::continue_msg operator()(Slot* s) const {
    HappensAfter(s);
    batcher->Add(s);
    HappensBefore(done);
    return flow::continue_msg();
  }
};

using Segments = std::vector<std::pair<int, int>>;

// Steps run as segments: maximal runs with the same concurrency share a node, so a sample
// hops between tasks only where the concurrency changes.
Segments SegmentsOf(const std::vector<Step>& steps) {
  Segments segs;
  int begin = 0;
  for (int i = 1; i <= int(steps.size()); ++i) {
    if (i == int(steps.size()) || steps[size_t(i)].concurrency != steps[size_t(begin)].concurrency) {
      segs.emplace_back(begin, i);
      begin = i;
    }
  }
  return segs;
}

size_t Concurrency(int c) { return c <= 0 ? size_t(flow::unlimited) : size_t(c); }

struct Nodes {
  Nodes(flow::graph& g, size_t tokens, DrawTicket draw, SequenceOf sequence, AddToBatch batch)
      : input(g, draw),
        limiter(g, tokens),
        sequencer(g, sequence),
        batcher(g, flow::serial, batch) {}
  flow::input_node<Ticket> input;
  flow::limiter_node<Ticket, long long> limiter;
  std::unique_ptr<flow::function_node<Ticket, Slot*>> first;
  std::vector<std::unique_ptr<flow::function_node<Slot*, Slot*>>> rest;
  flow::sequencer_node<Slot*> sequencer;
  flow::function_node<Slot*, flow::continue_msg> batcher;
};

}  // namespace

struct Graph::Impl {
  Impl(int threads, size_t tokens) : tokens(tokens), ring(tokens), arena(threads) {}

  const size_t tokens;
  std::vector<Slot> ring;  // owned by whichever node holds the slot's sample
  ReadyQueue* ready = nullptr;
  std::atomic<bool> stop{false};
  std::atomic<bool> released{false};
  tbb::task_arena arena;
  std::unique_ptr<flow::graph> graph;  // declared before nodes: nodes die first
  std::unique_ptr<Nodes> nodes;
  std::thread waiter;  // runs wait_for_all() in the arena
};

Graph::Graph(int threads, size_t tokens) : impl_(std::make_unique<Impl>(threads, tokens)) {}

Graph::~Graph() { Join(); }

void Graph::Build(const std::vector<Step>& steps, TicketDrawer* tickets, StepRunner* runner,
                  Batcher* batcher, ReadyQueue* ready) {
  Impl& m = *impl_;
  m.ready = ready;
  const void* done = &m.graph;
  // For TSan (tsan_annotations.h): the set-up so far happens before the bodies that start from
  // these addresses; oneTBB's own objects are handed to its workers inside libtbb.
  HappensBefore(&m.ring);
  HappensBefore(tickets);
  HappensBefore(batcher);
  IgnoreAccessesBegin();
  m.arena.execute([&] {
    m.graph = std::make_unique<flow::graph>();
    flow::graph& g = *m.graph;
    m.nodes = std::make_unique<Nodes>(g, m.tokens, DrawTicket{tickets, &m.stop, done},
                                      SequenceOf{done}, AddToBatch{batcher, done});
    Nodes& n = *m.nodes;
    const Segments segs = SegmentsOf(steps);
    auto [b0, e0] = segs[0];
    n.first = std::make_unique<flow::function_node<Ticket, Slot*>>(
        g, Concurrency(steps[size_t(b0)].concurrency),
        FirstSegment{m.ring.data(), m.tokens, &m.ring, runner, b0, e0, done});
    flow::make_edge(n.input, n.limiter);
    flow::make_edge(n.limiter, *n.first);
    flow::sender<Slot*>* prev = n.first.get();
    for (size_t k = 1; k < segs.size(); ++k) {
      auto [b, e] = segs[k];
      n.rest.push_back(std::make_unique<flow::function_node<Slot*, Slot*>>(
          g, Concurrency(steps[size_t(b)].concurrency), NextSegment{runner, b, e, done}));
      flow::make_edge(*prev, *n.rest.back());
      prev = n.rest.back().get();
    }
    flow::make_edge(*prev, n.sequencer);
    flow::make_edge(n.sequencer, n.batcher);
  });
  IgnoreAccessesEnd();
}

void Graph::Run() {
  Impl& m = *impl_;
  IgnoreAccessesBegin();  // TSan: see Build()
  m.graph->reserve_wait();  // released when the last epoch is batched, or on stop
  m.nodes->input.activate();
  IgnoreAccessesEnd();
  m.waiter = std::thread([&m] {
    try {
      m.arena.execute([&m] {
        m.graph->wait_for_all();
        HappensAfter(&m.graph);
      });
    } catch (const std::exception& e) {
      m.ready->PushError(Status::Internal(std::string("pipeline graph failed: ") + e.what()));
    }
  });
}

void Graph::ReleaseTokens(int64_t n) {
  Impl& m = *impl_;
  HappensBefore(&m.ring);  // the released slots' last uses happen before their reuse
  if (!m.stop.load()) m.nodes->limiter.decrementer().try_put(static_cast<long long>(n));
}

void Graph::StopProducing() {
  Impl& m = *impl_;
  m.stop.store(true);
  if (m.graph && !m.released.exchange(true)) m.graph->release_wait();
}

void Graph::Cancel() {
  StopProducing();
  if (impl_->graph) impl_->graph->cancel();
}

void Graph::Join() {
  Impl& m = *impl_;
  if (m.waiter.joinable()) m.waiter.join();
  if (!m.graph && !m.nodes) return;
  IgnoreAccessesBegin();  // TSan: see Build()
  m.arena.execute([&m] {
    m.nodes.reset();
    m.graph.reset();
  });
  IgnoreAccessesEnd();
}

}  // namespace flowfeed
