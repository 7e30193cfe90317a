// train_report.h (internal): the part of the train report that TorchTrainer::report() computes
// and train_report.cc keeps beside the formatters. Needs no LibTorch.
//
// Threads: a pure function of the report it is given; any thread.
#pragma once

#include "flowfeed/trainer.h"

namespace flowfeed {

// Fills report->gap and report->gap_seconds from its set-up parts, epochs and pipeline stats
// (TrainReport::gap says what the parts are).
void ComputeGap(TrainReport* report);

}  // namespace flowfeed
