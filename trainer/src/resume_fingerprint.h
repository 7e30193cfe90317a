// resume_fingerprint.h (internal; no LibTorch): what a resumed run depends on, recorded in
// every checkpoint so that --resume can tell a continuation from a different run. A mid-epoch
// resume with another seed used to train part of the epoch twice and part never, silently.
//
// What it is: ordered named items, "<part>.<key>" = value, in five parts: data (the source's
// type and place, the number of samples, a digest of the listing: each sample's key relative to
// the root and its label), sampler (seed, shuffle, drop_last, shard policy, uneven policy, a
// tar source's shuffle buffer), pipeline (the stages with their parameters, batch size and
// dtype, fusion), optimizer (type and the hyper-parameters that type uses, the schedule, label
// smoothing) and model (its signature). The keys are the config's where there is one
// ("sampler.seed", "optimizer.lr", "optimizer.schedule.type"). Not recorded, because a resume
// may change them freely: epochs, threads, device, precision, memory format, checkpoint
// settings, evaluation, reports, the world size (checked on its own).
//
// Threads: pure functions of their arguments; any thread (Source's const methods are).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "flowfeed/options.h"
#include "flowfeed/source.h"
#include "flowfeed/status.h"

namespace flowfeed {

struct ResumeFingerprint {
  std::vector<std::pair<std::string, std::string>> items;  // (name, value), in part order

  // As stored in the checkpoint (a JSON array of [name, value] pairs), and back; Corrupt
  // naming `where` for text that is not one.
  std::string ToText() const;
  static Result<ResumeFingerprint> FromText(const std::string& text, const std::string& where);
};

// The fingerprint of a run configured by `options` (as the config says, before the trainer
// moves a normalize to the device) over `source`, for a model of `model_signature`.
ResumeFingerprint MakeResumeFingerprint(const PipelineOptions& options, const Source& source,
                                        const std::string& model_signature);

// One item whose value differs between a checkpoint's fingerprint and this run's.
struct FingerprintChange {
  std::string name, before, now;  // "(none)" for an item one side lacks
  std::string ToString() const;   // "sampler.seed: 1 -> 2"
};
std::vector<FingerprintChange> ChangesSince(const ResumeFingerprint& stored,
                                            const ResumeFingerprint& now);

}  // namespace flowfeed
