// Writing the JSON report. With report_read.cc, the only place that knows the report's keys.
//
// nlohmann::json keeps object keys sorted, so the text does not depend on the order fields are
// set in here, and the trainer's sections land where they did when it re-parsed the pipeline's
// report to add them.

#include <nlohmann/json.hpp>
#include <utility>

#include "flowfeed/report.h"
#include "util/json_text.h"

namespace flowfeed {

namespace {

using nlohmann::json;

json RunJson(const ReportDoc& doc) {
  const RunStats& run = doc.run;
  json j = {{"source", run.source},
            {"threads", run.threads},
            {"dataset_size", run.dataset_size},
            {"open_seconds", run.open_seconds},
            {"peak_rss_bytes", run.peak_rss_bytes},
            {"retained_buffer_bytes", run.retained_buffer_bytes},
            {"peak_in_flight_bytes", run.peak_in_flight_bytes},
            {"prefetch", run.prefetch},
            {"tokens", run.tokens},
            {"warnings", run.warnings}};
  if (!doc.tool.empty()) j["tool"] = doc.tool;
  return j;
}

json ProvenanceJson(const Provenance& p) {
  json libraries = json::object();
  for (const auto& [name, version] : p.libraries) libraries[name] = version;
  return {{"flowfeed_version", p.flowfeed_version}, {"git_commit", p.git_commit},
          {"started", p.started},                   {"host", p.host},
          {"command_line", p.command_line},         {"config_path", p.config_path},
          {"resolved_config", p.resolved_config},   {"libraries", libraries}};
}

json CacheJson(const RunStats& run) {
  const CacheStats& c = run.cache;
  return {{"mode", run.cache_mode},
          {"placement", run.cache_placement},
          {"store", run.cache_store},
          {"decision", run.cache_decision},
          {"note", run.cache_note},
          {"fingerprint", run.cache_fingerprint},
          {"flush_seconds", run.cache_flush_seconds},
          {"budget_bytes", c.budget_bytes},
          {"memory_entries", c.memory_entries},
          {"memory_bytes", c.memory_bytes},
          {"disk_entries", c.disk_entries},
          {"disk_bytes", c.disk_bytes},
          {"reused_entries", c.reused_entries},
          {"overhead_bytes", c.overhead_bytes},
          {"overhead_bytes_per_sample",
           run.dataset_size ? double(c.overhead_bytes) / double(run.dataset_size) : 0.0},
          {"dropped", c.dropped},
          {"corrupt", c.corrupt},
          {"disk_disabled", c.disk_disabled},
          {"messages", c.messages}};
}

json StageJson(const StageStats& s) {
  return {{"type", s.type},     {"count", s.count},   {"errors", s.errors},
          {"busy_seconds", s.busy_seconds},
          {"p50_ms", s.p50_ms}, {"p95_ms", s.p95_ms}, {"p99_ms", s.p99_ms},
          {"max_ms", s.max_ms}, {"bytes", s.bytes},   {"fused", s.fused},
          {"fused_into", s.fused_into}};
}

// The pipeline's side of an epoch: what ReportJson() has always written.
json PipelineEpochJson(const EpochStats& e) {
  json je;
  je["epoch"] = e.epoch;
  je["seconds"] = e.seconds;
  je["samples"] = e.samples;
  je["batches"] = e.batches;
  je["samples_per_second"] = e.samples_per_second;
  je["cpu_seconds"] = e.cpu_seconds;
  je["consumer_wait_seconds"] = e.consumer_wait_seconds;
  je["consumer_wait_p95_ms"] = e.consumer_wait_p95_ms;
  je["consumer_wait_max_ms"] = e.consumer_wait_max_ms;
  je["bytes_read"] = e.bytes_read;
  je["cache"] = {{"mode", e.cache.mode},
                 {"hits", e.cache.hits},
                 {"misses", e.cache.misses},
                 {"bytes", e.cache.bytes},
                 {"fill_page_faults", e.cache.fill_page_faults}};
  json occupancy = json::array();
  for (const auto& [t, n] : e.queue_occupancy) occupancy.push_back({t, n});
  je["queue"] = {{"mean", e.queue_mean}, {"occupancy", occupancy}};
  json stages = json::object();
  json order = json::array();
  for (const auto& s : e.stages) {
    stages[s.name] = StageJson(s);
    order.push_back(s.name);
  }
  je["stages"] = stages;
  je["stage_order"] = order;
  json skipped = json::array();
  for (const auto& s : e.skipped)
    skipped.push_back({{"index", s.index}, {"source", s.source}, {"stage", s.stage},
                       {"reason", s.reason}});
  je["skipped"] = {{"count", e.skipped_count}, {"samples", skipped}};
  je["batch_digest"] = e.batch_digest;
  return je;
}

json TrainerEpochJson(const ReportTrainerEpoch& t) {
  json j = {{"steps", t.steps},
            {"samples", t.samples},
            {"seconds", t.seconds},
            {"samples_per_second", t.samples_per_second},
            {"data_wait_seconds", t.data_wait_seconds},
            {"h2d_seconds", t.h2d_seconds},
            {"forward_seconds", t.forward_seconds},
            {"backward_seconds", t.backward_seconds},
            {"optimizer_seconds", t.optimizer_seconds},
            {"first_step_seconds", t.first_step_seconds},
            {"median_step_seconds", t.median_step_seconds},
            {"loss", t.loss},
            {"accuracy", t.accuracy},
            {"lr", t.lr},
            {"checkpoint_seconds", t.checkpoint_seconds},
            {"allreduce_seconds", t.allreduce_seconds},
            {"global_samples", t.global_samples},
            {"model_digest", t.model_digest},
            {"resumed_at", t.resumed_at}};
  if (!t.indices.empty()) j["indices"] = t.indices;
  return j;
}

json EpochJson(const ReportEpoch& e) {
  json je = PipelineEpochJson(e.pipeline);
  if (e.trainer) je["trainer"] = TrainerEpochJson(*e.trainer);
  if (!e.cache_hit_rate_per_rank.empty())
    je["distributed"] = {{"cache_hit_rate_per_rank", e.cache_hit_rate_per_rank}};
  if (e.eval)
    je["eval"] = {{"loss", e.eval->loss},
                  {"accuracy", e.eval->accuracy},
                  {"samples", e.eval->samples},
                  {"seconds", e.eval->seconds}};
  return je;
}

// A part list as an object keyed by name; `wrap` says whether each value is {"seconds": x}
// (set-up parts) or the number itself (the gap's parts).
json PartsJson(const std::vector<ReportPart>& parts, bool wrap) {
  json j = json::object();
  for (const ReportPart& p : parts) {
    if (wrap) j[p.name] = {{"seconds", p.seconds}};
    else j[p.name] = p.seconds;
  }
  return j;
}

void AddTrainerSections(const ReportDoc& doc, json* j) {
  if (doc.setup)
    (*j)["setup"] = {{"parts", PartsJson(doc.setup->parts, true)},
                     {"seconds", doc.setup->seconds}};
  if (doc.first_epoch_gap)
    (*j)["first_epoch_gap"] = {{"seconds", doc.first_epoch_gap->seconds},
                               {"parts", PartsJson(doc.first_epoch_gap->parts, false)}};
  if (doc.ledger)
    (*j)["ledger"] = {{"wall_seconds", doc.ledger->wall_seconds},
                      {"setup_seconds", doc.ledger->setup_seconds},
                      {"epochs_seconds", doc.ledger->epochs_seconds},
                      {"unexplained_seconds", doc.ledger->unexplained_seconds}};
  if (const auto& t = doc.trainer)
    (*j)["trainer"] = {{"device", t->device},
                       {"torch_threads", t->torch_threads},
                       {"model", t->model},
                       {"synchronized_timing", t->synchronized_timing},
                       {"start_epoch", t->start_epoch},
                       {"start_position", t->start_position},
                       {"wall_seconds", t->wall_seconds},
                       {"precision", t->precision},
                       {"memory_format", t->memory_format},
                       {"normalize_on_device", t->normalize_on_device},
                       {"timing", t->timing},
                       {"device_memory", t->device_memory}};
  if (const auto& d = doc.distributed)
    (*j)["distributed"] = {{"rank", d->rank},
                           {"world_size", d->world_size},
                           {"backend", d->backend},
                           {"policy", d->policy},
                           {"uneven", d->uneven}};
}

}  // namespace

ReportDoc PipelineReportDoc(const RunStats& run) {
  ReportDoc doc;
  doc.run = run;
  doc.run.epochs.clear();
  doc.epochs.reserve(run.epochs.size());
  for (const EpochStats& e : run.epochs) {
    ReportEpoch re;
    re.pipeline = e;
    doc.epochs.push_back(std::move(re));
  }
  return doc;
}

std::string WriteReportJson(const ReportDoc& doc) {
  json j;
  j["schema_version"] = kReportSchemaVersion;
  j["run"] = RunJson(doc);
  // Written by flowfeed's own runs; documents from other tools (no version) leave it out.
  if (!doc.run.provenance.flowfeed_version.empty())
    j["provenance"] = ProvenanceJson(doc.run.provenance);
  j["cache"] = CacheJson(doc.run);
  json epochs = json::array();
  for (const ReportEpoch& e : doc.epochs) epochs.push_back(EpochJson(e));
  j["epochs"] = std::move(epochs);
  AddTrainerSections(doc, &j);
  return DumpJson(std::move(j), 2) + "\n";  // any file name, whatever its bytes
}

std::string ReportJson(const RunStats& run) { return WriteReportJson(PipelineReportDoc(run)); }

}  // namespace flowfeed
