// pipeline/sampler.h (internal): the run's stream of tickets, drawn by the graph's input node.
//
// Threads: Draw() is the serial input node's body; oneTBB may call it from a different worker
// each time but never two at once, so the object needs no lock (graph.cc states that ordering
// for TSan).
#pragma once

#include <cstdint>
#include <vector>

#include "flowfeed/options.h"
#include "flowfeed/source.h"
#include "pipeline/slot.h"

namespace flowfeed {

class TicketDrawer {
 public:
  // `total` tickets, from options.start_epoch at options.start_position on; `options` and
  // `source` must outlive the drawer.
  TicketDrawer(const PipelineOptions& options, const Source& source, int64_t per_epoch,
               uint64_t total)
      : options_(options), source_(source), per_epoch_(per_epoch), total_(total) {}

  // The next ticket, in sampler order; false once all `total` are drawn.
  bool Draw(Ticket* t);

 private:
  const PipelineOptions& options_;
  const Source& source_;
  const int64_t per_epoch_;
  const uint64_t total_;
  uint64_t next_sequence_ = 0;
  std::vector<int64_t> order_;  // the current epoch's EpochOrder
};

}  // namespace flowfeed
