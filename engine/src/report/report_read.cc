// Reading the JSON report back (the page, tests, tools): tolerant of what other tools and older
// versions leave out, strict only about what makes a file a report. See flowfeed/report.h.

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "flowfeed/report.h"

namespace flowfeed {

namespace {

using nlohmann::json;

// Field access that never throws: a missing key, a non-object parent or a value of another type
// reads as the fallback.
const json& Get(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}
bool HasNum(const json& j, const char* key) { return Get(j, key).is_number(); }
double Num(const json& j, const char* key, double fallback = 0) {
  const json& v = Get(j, key);
  return v.is_number() ? v.get<double>() : fallback;
}
// Integers are read exactly when written as integers (byte counts may pass 2^53); other tools
// may write them as floats, which round.
int64_t Int(const json& j, const char* key) {
  const json& v = Get(j, key);
  if (v.is_number_integer()) return v.get<int64_t>();
  return int64_t(std::llround(Num(j, key)));
}
std::string Str(const json& j, const char* key) {
  const json& v = Get(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}
bool Bool(const json& j, const char* key) {
  const json& v = Get(j, key);
  return v.is_boolean() && v.get<bool>();
}
std::vector<std::string> Strings(const json& list) {
  std::vector<std::string> out;
  for (const json& s : list)
    if (s.is_string()) out.push_back(s.get<std::string>());
  return out;
}

void ReadProvenance(const json& j, Provenance* p) {
  const json& v = Get(j, "provenance");
  p->flowfeed_version = Str(v, "flowfeed_version");
  p->git_commit = Str(v, "git_commit");
  p->started = Str(v, "started");
  p->host = Str(v, "host");
  p->command_line = Str(v, "command_line");
  p->config_path = Str(v, "config_path");
  p->resolved_config = Str(v, "resolved_config");
  const json& libs = Get(v, "libraries");
  if (libs.is_object())
    for (const auto& [name, version] : libs.items())
      if (version.is_string()) p->libraries.emplace_back(name, version.get<std::string>());
}

void ReadRun(const json& j, ReportDoc* doc) {
  ReadProvenance(j, &doc->run.provenance);
  const json& run = Get(j, "run");
  RunStats& r = doc->run;
  r.source = Str(run, "source");
  doc->tool = Str(run, "tool");
  r.threads = int(Int(run, "threads"));
  r.dataset_size = Int(run, "dataset_size");
  r.open_seconds = Num(run, "open_seconds");
  r.peak_rss_bytes = Int(run, "peak_rss_bytes");
  r.retained_buffer_bytes = Int(run, "retained_buffer_bytes");
  r.peak_in_flight_bytes = Int(run, "peak_in_flight_bytes");
  r.prefetch = int(Int(run, "prefetch"));
  r.tokens = Int(run, "tokens");
  r.warnings = Strings(Get(run, "warnings"));
  const json& cache = Get(j, "cache");
  if (!Str(cache, "mode").empty()) r.cache_mode = Str(cache, "mode");
  r.cache_placement = Str(cache, "placement");
  r.cache_store = Str(cache, "store");
  r.cache_decision = Str(cache, "decision");
  r.cache_note = Str(cache, "note");
  r.cache_fingerprint = Str(cache, "fingerprint");
  r.cache_flush_seconds = Num(cache, "flush_seconds");
  CacheStats& c = r.cache;
  c.budget_bytes = Int(cache, "budget_bytes");
  c.memory_entries = Int(cache, "memory_entries");
  c.memory_bytes = Int(cache, "memory_bytes");
  c.disk_entries = Int(cache, "disk_entries");
  c.disk_bytes = Int(cache, "disk_bytes");
  c.reused_entries = Int(cache, "reused_entries");
  c.overhead_bytes = Int(cache, "overhead_bytes");
  c.dropped = Int(cache, "dropped");
  c.corrupt = Int(cache, "corrupt");
  c.disk_disabled = Bool(cache, "disk_disabled");
  c.messages = Strings(Get(cache, "messages"));
}

StageStats ReadStage(const std::string& name, const json& s) {
  StageStats st;
  st.name = name;
  st.type = Str(s, "type");
  st.fused_into = Str(s, "fused_into");
  st.count = Int(s, "count");
  st.errors = Int(s, "errors");
  st.fused = Int(s, "fused");
  st.bytes = Int(s, "bytes");
  st.busy_seconds = Num(s, "busy_seconds");
  st.p50_ms = Num(s, "p50_ms");
  st.p95_ms = Num(s, "p95_ms");
  st.p99_ms = Num(s, "p99_ms");
  st.max_ms = Num(s, "max_ms");
  return st;
}

// Stages in "stage_order" first (names that have a stage object), then any other stage objects
// by name: reports from before stage_order, or hand-made ones, still show every stage.
std::vector<StageStats> ReadStages(const json& je) {
  const json& stages = Get(je, "stages");
  std::vector<std::string> order;
  for (const json& n : Get(je, "stage_order"))
    if (n.is_string() && Get(stages, n.get<std::string>().c_str()).is_object())
      order.push_back(n.get<std::string>());
  if (stages.is_object())
    for (const auto& [name, v] : stages.items())
      if (v.is_object() && std::find(order.begin(), order.end(), name) == order.end())
        order.push_back(name);
  std::vector<StageStats> out;
  for (const std::string& name : order) out.push_back(ReadStage(name, Get(stages, name.c_str())));
  return out;
}

void ReadPipelineEpoch(const json& je, size_t index, EpochStats* e) {
  e->epoch = HasNum(je, "epoch") ? int(Int(je, "epoch")) : int(index) + 1;
  e->seconds = Num(je, "seconds");
  e->samples = Int(je, "samples");
  e->batches = Int(je, "batches");
  e->samples_per_second = HasNum(je, "samples_per_second") ? Num(je, "samples_per_second")
                          : e->seconds > 0 ? double(e->samples) / e->seconds
                                           : 0;
  e->cpu_seconds = Num(je, "cpu_seconds");
  e->consumer_wait_seconds = Num(je, "consumer_wait_seconds");
  e->consumer_wait_p95_ms = Num(je, "consumer_wait_p95_ms");
  e->consumer_wait_max_ms = Num(je, "consumer_wait_max_ms");
  e->bytes_read = Int(je, "bytes_read");
  const json& ec = Get(je, "cache");
  if (!Str(ec, "mode").empty()) e->cache.mode = Str(ec, "mode");
  e->cache.hits = Int(ec, "hits");
  e->cache.misses = Int(ec, "misses");
  e->cache.bytes = Int(ec, "bytes");
  e->cache.fill_page_faults = Int(ec, "fill_page_faults");
  const json& queue = Get(je, "queue");
  e->queue_mean = Num(queue, "mean");
  for (const json& p : Get(queue, "occupancy"))
    if (p.is_array() && p.size() == 2 && p[0].is_number() && p[1].is_number())
      e->queue_occupancy.emplace_back(p[0].get<double>(), int(std::llround(p[1].get<double>())));
  e->stages = ReadStages(je);
  const json& skipped = Get(je, "skipped");
  e->skipped_count = Int(skipped, "count");
  for (const json& s : Get(skipped, "samples")) {
    SkippedSample k;
    k.index = HasNum(s, "index") ? Int(s, "index") : -1;
    k.source = Str(s, "source");
    k.stage = Str(s, "stage");
    k.reason = Str(s, "reason");
    e->skipped.push_back(std::move(k));
  }
  e->batch_digest = Str(je, "batch_digest");
}

ReportTrainerEpoch ReadTrainerEpoch(const json& t) {
  ReportTrainerEpoch r;
  r.steps = Int(t, "steps");
  r.samples = Int(t, "samples");
  r.seconds = Num(t, "seconds");
  r.samples_per_second = Num(t, "samples_per_second");
  r.data_wait_seconds = Num(t, "data_wait_seconds");
  r.h2d_seconds = Num(t, "h2d_seconds");
  r.forward_seconds = Num(t, "forward_seconds");
  r.backward_seconds = Num(t, "backward_seconds");
  r.optimizer_seconds = Num(t, "optimizer_seconds");
  r.first_step_seconds = Num(t, "first_step_seconds");
  r.median_step_seconds = Num(t, "median_step_seconds");
  r.loss = Num(t, "loss");
  r.accuracy = Num(t, "accuracy");
  r.lr = Num(t, "lr");
  r.checkpoint_seconds = Num(t, "checkpoint_seconds");
  r.allreduce_seconds = Num(t, "allreduce_seconds");
  r.global_samples = Int(t, "global_samples");
  r.model_digest = Str(t, "model_digest");
  r.resumed_at = Int(t, "resumed_at");
  for (const json& i : Get(t, "indices"))
    if (i.is_number()) r.indices.push_back(i.is_number_integer() ? i.get<int64_t>()
                                                                 : std::llround(i.get<double>()));
  return r;
}

Result<ReportEpoch> ReadEpoch(const json& je, size_t index, const std::string& name) {
  if (!HasNum(je, "seconds"))
    return Status::InvalidArgument(name + ": epochs[" + std::to_string(index) +
                                   "] has no \"seconds\"");
  ReportEpoch e;
  ReadPipelineEpoch(je, index, &e.pipeline);
  e.has_consumer_wait = HasNum(je, "consumer_wait_seconds");
  e.has_cpu_seconds = HasNum(je, "cpu_seconds");
  const json& t = Get(je, "trainer");
  if (t.is_object()) e.trainer = ReadTrainerEpoch(t);
  const json& ev = Get(je, "eval");
  if (ev.is_object())
    e.eval = ReportEval{Num(ev, "loss"), Num(ev, "accuracy"), Int(ev, "samples"),
                        Num(ev, "seconds")};
  for (const json& v : Get(Get(je, "distributed"), "cache_hit_rate_per_rank"))
    if (v.is_number()) e.cache_hit_rate_per_rank.push_back(v.get<double>());
  return e;
}

// A part list written as an object keyed by name: `wrapped` values are {"seconds": x}, others
// the number itself; entries of another shape are left out.
std::vector<ReportPart> ReadParts(const json& parts, bool wrapped) {
  std::vector<ReportPart> out;
  if (!parts.is_object()) return out;
  for (const auto& [name, v] : parts.items()) {
    if (wrapped && HasNum(v, "seconds")) out.push_back({name, Num(v, "seconds")});
    if (!wrapped && v.is_number()) out.push_back({name, v.get<double>()});
  }
  return out;
}

void ReadTrainerSections(const json& j, ReportDoc* doc) {
  if (const json& s = Get(j, "setup"); s.is_object())
    doc->setup = ReportSetup{ReadParts(Get(s, "parts"), true), Num(s, "seconds")};
  // A gap without parts, or a ledger without its wall time, says nothing: read as absent.
  if (const json& g = Get(j, "first_epoch_gap"); Get(g, "parts").is_object() && !Get(g, "parts").empty())
    doc->first_epoch_gap = ReportGap{Num(g, "seconds"), ReadParts(Get(g, "parts"), false)};
  if (const json& l = Get(j, "ledger"); HasNum(l, "wall_seconds"))
    doc->ledger = ReportLedger{Num(l, "wall_seconds"), Num(l, "setup_seconds"),
                               Num(l, "epochs_seconds"), Num(l, "unexplained_seconds")};
  if (const json& t = Get(j, "trainer"); t.is_object()) {
    ReportTrainer& rt = doc->trainer.emplace();
    rt.device = Str(t, "device");
    rt.torch_threads = int(Int(t, "torch_threads"));
    rt.model = Str(t, "model");
    rt.synchronized_timing = Bool(t, "synchronized_timing");
    rt.start_epoch = int(Int(t, "start_epoch"));
    rt.start_position = Int(t, "start_position");
    rt.wall_seconds = Num(t, "wall_seconds");
    // Reports written before these fields existed keep the defaults.
    if (Get(t, "precision").is_string()) rt.precision = Str(t, "precision");
    if (Get(t, "memory_format").is_string()) rt.memory_format = Str(t, "memory_format");
    rt.normalize_on_device = Bool(t, "normalize_on_device");
    if (Get(t, "timing").is_string()) rt.timing = Str(t, "timing");
    else if (rt.synchronized_timing) rt.timing = "synchronized";
    if (const json& m = Get(t, "device_memory"); m.is_object())
      for (const auto& [name, v] : m.items())
        if (v.is_number()) rt.device_memory[name] = v.get<double>();
  }
  if (const json& d = Get(j, "distributed"); d.is_object())
    doc->distributed =
        ReportDistributed{int(Int(d, "rank")), HasNum(d, "world_size") ? int(Int(d, "world_size")) : 1,
                          Str(d, "backend"), Str(d, "policy"), Str(d, "uneven")};
}

}  // namespace

Result<ReportDoc> ReadReportJson(const std::string& text, const std::string& name) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(name + ": not JSON (" + e.what() + ")");
  }
  const json& epochs = Get(j, "epochs");
  if (!epochs.is_array())
    return Status::InvalidArgument(name +
                                   ": not a flowfeed report: it has no \"epochs\" list (reports "
                                   "come from flowfeed bench/train --report)");
  ReportDoc doc;
  doc.schema_version = int(Int(j, "schema_version"));
  ReadRun(j, &doc);
  for (size_t i = 0; i < epochs.size(); ++i) {
    auto e = ReadEpoch(epochs[i], i, name);
    if (!e.ok()) return e.status();
    doc.epochs.push_back(std::move(*e));
  }
  ReadTrainerSections(j, &doc);
  return doc;
}

}  // namespace flowfeed
