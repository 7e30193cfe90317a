// The resume fingerprint (resume_fingerprint.h): its items, their text form in the checkpoint
// and the changes between two of them.
//
// Threads: pure functions; any thread.
#include "resume_fingerprint.h"

#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "flowfeed/image.h"

namespace flowfeed {

namespace {

// The shortest decimal that reads back as `v` ("0.1", not "0.10000000000000001").
std::string Num(double v) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

const char* Bool(bool b) { return b ? "true" : "false"; }

// XXH3-64 over every sample's key (relative to the root, so that a moved dataset keeps its
// digest) and label, in index order: what the sampler's order and the labels depend on.
std::string ListingDigest(const Source& source, const std::string& root) {
  XXH3_state_t* h = XXH3_createState();
  XXH3_64bits_reset(h);
  const std::string prefix = root.empty() || root.back() == '/' ? root : root + "/";
  for (int64_t i = 0; i < source.size(); ++i) {
    std::string_view key = source.key(i);
    if (!prefix.empty() && key.substr(0, prefix.size()) == prefix) key.remove_prefix(prefix.size());
    const int64_t label = source.label(i);
    XXH3_64bits_update(h, key.data(), key.size());
    XXH3_64bits_update(h, "", 1);  // ends the key: ("ab", 1) and ("a", ...) differ
    XXH3_64bits_update(h, &label, sizeof label);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(XXH3_64bits_digest(h)));
  XXH3_freeState(h);
  return std::string("xxh3 ") + hex;
}

}  // namespace

ResumeFingerprint MakeResumeFingerprint(const PipelineOptions& o, const Source& source,
                                        const std::string& model_signature) {
  ResumeFingerprint fp;
  auto add = [&](const std::string& name, const std::string& value) {
    fp.items.emplace_back(name, value);
  };
  const SourceOptions& s = o.source;
  add("data.source.type", s.type);
  for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"root", &s.root},
                                   {"list", &s.list},
                                   {"images", &s.images},
                                   {"labels", &s.labels},
                                   {"shards", &s.shards}})
    if (!value->empty()) add(std::string("data.source.") + key, *value);
  add("data.samples", std::to_string(source.size()));
  add("data.listing", ListingDigest(source, s.root));

  add("sampler.seed", std::to_string(o.seed));
  add("sampler.shuffle", Bool(o.shuffle));
  add("sampler.batch.drop_last", Bool(o.batch.drop_last));
  add("sampler.distributed.policy", ShardPolicyName(o.distributed.policy));
  add("sampler.distributed.uneven", UnevenPolicyName(o.distributed.uneven));
  if (source.num_shards() > 0)
    add("sampler.source.shuffle_buffer", std::to_string(s.shuffle_buffer));

  std::string stages;
  for (const StageSpec& spec : o.pipeline)
    stages += (stages.empty() ? "" : " -> ") + spec.type + "(" + spec.params.ToString() + ")";
  add("pipeline.stages", stages.empty() ? "(none)" : stages);
  add("pipeline.batch.size", std::to_string(o.batch.size));
  add("pipeline.batch.dtype", DTypeName(o.batch.dtype));
  add("pipeline.fuse", Bool(o.fuse));

  const OptimizerOptions& opt = o.train.optimizer;
  add("optimizer.type", opt.type);
  add("optimizer.lr", Num(opt.lr));
  add("optimizer.weight_decay", Num(opt.weight_decay));
  if (opt.type == "sgd") {
    add("optimizer.momentum", Num(opt.momentum));
    add("optimizer.nesterov", Bool(opt.nesterov));
  } else {
    add("optimizer.beta1", Num(opt.beta1));
    add("optimizer.beta2", Num(opt.beta2));
  }
  const ScheduleOptions& sch = o.train.schedule;
  add("optimizer.schedule.type", sch.type);
  add("optimizer.schedule.warmup_epochs", Num(sch.warmup_epochs));
  if (sch.type == "cosine") add("optimizer.schedule.min_lr", Num(sch.min_lr));
  if (sch.type == "step") {
    add("optimizer.schedule.step_epochs", std::to_string(sch.step_epochs));
    add("optimizer.schedule.gamma", Num(sch.gamma));
  }
  add("optimizer.loss.label_smoothing", Num(o.train.label_smoothing));

  add("model.signature", model_signature);
  return fp;
}

std::string ResumeFingerprint::ToText() const {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& [name, value] : items) j.push_back({name, value});
  return j.dump();
}

Result<ResumeFingerprint> ResumeFingerprint::FromText(const std::string& text,
                                                      const std::string& where) {
  ResumeFingerprint fp;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    for (const auto& item : j)
      fp.items.emplace_back(item.at(0).get<std::string>(), item.at(1).get<std::string>());
  } catch (const std::exception& e) {
    return Status::Corrupt(where + ": its record of the run's settings is unreadable: " + e.what());
  }
  return fp;
}

std::string FingerprintChange::ToString() const { return name + ": " + before + " -> " + now; }

std::vector<FingerprintChange> ChangesSince(const ResumeFingerprint& stored,
                                            const ResumeFingerprint& now) {
  auto find = [](const ResumeFingerprint& fp, const std::string& name) -> const std::string* {
    for (const auto& item : fp.items)
      if (item.first == name) return &item.second;
    return nullptr;
  };
  std::vector<FingerprintChange> out;
  for (const auto& [name, value] : now.items) {
    const std::string* old = find(stored, name);
    if (!old || *old != value) out.push_back({name, old ? *old : "(none)", value});
  }
  for (const auto& [name, value] : stored.items)
    if (!find(now, name)) out.push_back({name, value, "(none)"});
  return out;
}

}  // namespace flowfeed
