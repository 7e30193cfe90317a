// pipeline/stats_table.cc: merging and summing the per-thread tables (stats_table.h).
#include "pipeline/stats_table.h"

namespace flowfeed {

StatsTable::StatsTable(int slots, int epochs, int steps) : epochs_(epochs), steps_(steps) {
  for (int i = 0; i <= slots; ++i) {
    slots_.emplace_back(new std::atomic<EpochTable*>[size_t(epochs)]);
    for (int e = 0; e < epochs; ++e) slots_.back()[e].store(nullptr);
  }
}

StatsTable::~StatsTable() {
  for (auto& s : slots_)
    for (int e = 0; e < epochs_; ++e) delete s[e].load();
}

std::vector<StepAcc> StatsTable::Merged(int epoch) {
  std::vector<StepAcc> out(static_cast<size_t>(steps_));
  std::lock_guard<std::mutex> lock(overflow_mu_);
  for (auto& s : slots_) {
    const EpochTable* t = s[epoch].load(std::memory_order_acquire);
    if (!t) continue;
    for (int i = 0; i < steps_; ++i) {
      out[size_t(i)].hist.Merge(t->acc[size_t(i)].hist);
      out[size_t(i)].errors += t->acc[size_t(i)].errors;
      out[size_t(i)].bytes += t->acc[size_t(i)].bytes;
      out[size_t(i)].hits += t->acc[size_t(i)].hits;
    }
  }
  return out;
}

std::vector<LiveTotal> StatsTable::LiveTotals(int epoch) const {
  std::vector<LiveTotal> out(static_cast<size_t>(steps_));
  if (epoch < 0) return out;
  for (const auto& s : slots_) {
    const EpochTable* t = s[epoch].load(std::memory_order_acquire);
    if (!t) continue;
    for (int i = 0; i < steps_; ++i) {
      const LiveAcc& l = t->live[i];
      out[size_t(i)].busy_ns += l.busy_ns.load(std::memory_order_relaxed);
      out[size_t(i)].count += l.count.load(std::memory_order_relaxed);
      out[size_t(i)].hits += l.hits.load(std::memory_order_relaxed);
    }
  }
  return out;
}

StageStats StageStatsOf(const StepAcc& a, const std::string& name, const std::string& type) {
  StageStats st;
  st.name = name;
  st.type = type;
  st.count = int64_t(a.hist.count());
  st.errors = a.errors;
  st.bytes = a.bytes;
  st.busy_seconds = double(a.hist.sum_ns()) * 1e-9;
  st.p50_ms = a.hist.Quantile(0.50) * 1e-6;
  st.p95_ms = a.hist.Quantile(0.95) * 1e-6;
  st.p99_ms = a.hist.Quantile(0.99) * 1e-6;
  st.max_ms = double(a.hist.max_ns()) * 1e-6;
  return st;
}

}  // namespace flowfeed
