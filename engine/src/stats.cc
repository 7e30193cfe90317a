// Reports: the terminal table, the verdicts and the Chrome trace. The JSON report is written
// and read in report/ (flowfeed/report.h).

#include "flowfeed/stats.h"

#include <algorithm>
#include <cstdio>
#include <climits>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "flowfeed/util/text_format.h"
#include "flowfeed/util/strings.h"
#include "util/json_text.h"

namespace flowfeed {

namespace {

using text::Bytes;

// Latencies span microseconds to seconds: three significant digits, never in exponent form.
std::string Ms(double ms) {
  if (ms >= 100) return Fmt("%.0f", ms);
  if (ms >= 10) return Fmt("%.1f", ms);
  if (ms >= 1) return Fmt("%.2f", ms);
  if (ms >= 0.1) return Fmt("%.3f", ms);
  return Fmt("%.4f", ms);
}

std::string Pad(const std::string& s, size_t width, bool left) {
  if (s.size() >= width) return s;
  std::string pad(width - s.size(), ' ');
  return left ? s + pad : pad + s;
}

}  // namespace

std::string FormatEpochTable(const EpochStats& e) {
  std::string out;
  out += "epoch " + std::to_string(e.epoch) + ": " + std::to_string(e.samples) + " samples in " +
         Fmt("%.2f", e.seconds) + " s = " + Fmt("%.0f", e.samples_per_second) +
         " samples/s, " + std::to_string(e.batches) + " batches, consumer waited " +
         Fmt("%.2f", e.consumer_wait_seconds) + " s (" +
         Fmt("%.0f", e.seconds > 0 ? 100.0 * e.consumer_wait_seconds / e.seconds : 0) + "%)";
  if (e.skipped_count) out += ", skipped " + std::to_string(e.skipped_count);
  out += "\n  consumer wait p95 " + Ms(e.consumer_wait_p95_ms) + " ms, max " +
         Ms(e.consumer_wait_max_ms) + " ms; ready batches in queue: mean " +
         Fmt("%.1f", e.queue_mean) + "; read " + Bytes(e.bytes_read) + " from storage";
  if (e.cache.mode != "off") {
    int64_t lookups = e.cache.hits + e.cache.misses;
    out += "; cache (" + e.cache.mode + ") " + std::to_string(e.cache.hits) + " hits, " +
           std::to_string(e.cache.misses) + " misses (" +
           Fmt("%.0f", lookups ? 100.0 * double(e.cache.hits) / double(lookups) : 0) + "% hit), " +
           Bytes(e.cache.bytes) + " served";
    if (e.cache.fill_page_faults > 0)
      out += "; the fill took " + std::to_string(e.cache.fill_page_faults) +
             " page faults (fresh memory)";
  }
  out += "\n";
  double total_busy = 0;
  for (const auto& s : e.stages) total_busy += s.busy_seconds;
  const std::vector<std::string> head = {"stage", "count", "busy s", "share", "p50 ms",
                                         "p95 ms", "p99 ms", "max ms", "errors", "bytes"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : e.stages) {
    // "normalize > collate": timed inside collate; "decode (region 1480)": that many samples
    // were decoded only where the next stage needed them.
    std::string name = s.name;
    if (!s.fused_into.empty()) name += " > " + s.fused_into;
    else if (s.fused > 0) name += " (region " + std::to_string(s.fused) + ")";
    rows.push_back({name, std::to_string(s.count), Fmt("%.3f", s.busy_seconds),
                    Fmt("%.1f%%", total_busy > 0 ? 100.0 * s.busy_seconds / total_busy : 0),
                    Ms(s.p50_ms), Ms(s.p95_ms), Ms(s.p99_ms), Ms(s.max_ms), std::to_string(s.errors), Bytes(s.bytes)});
  }
  std::vector<size_t> width(head.size());
  for (size_t c = 0; c < head.size(); ++c) {
    width[c] = head[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& r) {
    std::string l = " ";
    for (size_t c = 0; c < r.size(); ++c) l += " " + Pad(r[c], width[c], c == 0);
    return l + "\n";
  };
  out += line(head);
  for (const auto& r : rows) out += line(r);
  if (!e.skipped.empty()) {
    out += "  skipped samples:\n";
    size_t shown = std::min<size_t>(e.skipped.size(), 10);
    for (size_t i = 0; i < shown; ++i)
      out += "    " + e.skipped[i].source + " (" + e.skipped[i].stage + "): " +
             e.skipped[i].reason + "\n";
    if (e.skipped_count > int64_t(shown))
      out += "    ... and " + std::to_string(e.skipped_count - int64_t(shown)) +
             " more (all listed in the JSON report)\n";
  }
  return out;
}

// A stage's busy seconds and count summed over epochs 2+.
std::pair<double, int64_t> LaterEpochs(const RunStats& run, const std::string& stage) {
  double busy = 0;
  int64_t count = 0;
  for (size_t i = 1; i < run.epochs.size(); ++i)
    for (const StageStats& t : run.epochs[i].stages)
      if (t.name == stage) {
        busy += t.busy_seconds;
        count += t.count;
      }
  return {busy, count};
}

std::string FirstEpochVerdict(const RunStats& run) {
  if (run.epochs.size() < 2) return "";
  const EpochStats& first = run.epochs[0];
  const double n_later = double(run.epochs.size() - 1);
  double later_seconds = 0;
  for (size_t i = 1; i < run.epochs.size(); ++i) later_seconds += run.epochs[i].seconds;
  later_seconds /= n_later;
  struct Extra {
    std::string name;
    double seconds;
    bool gone;  // the stage did not run at all in epochs 2+
  };
  std::vector<Extra> extra;
  double total_extra = 0;
  for (const StageStats& s : first.stages) {
    const auto [later, later_count] = LaterEpochs(run, s.name);
    double d = s.busy_seconds - later / n_later;
    if (d > 0) {
      extra.push_back({s.name, d, later_count == 0 && s.count > 0});
      total_extra += d;
    }
  }
  std::sort(extra.begin(), extra.end(),
            [](const Extra& a, const Extra& b) { return a.seconds > b.seconds; });
  std::string out = "epoch 1 took " + Fmt("%.2f", first.seconds) + " s, epochs 2+ " +
                    Fmt("%.2f", later_seconds) + " s each (" +
                    Fmt("%.1f", later_seconds > 0 ? first.seconds / later_seconds : 0) + "x)";
  if (total_extra <= 0) return out + "; no stage did more work in epoch 1";
  out += "; epoch 1's extra stage time: ";
  int listed = 0;
  std::vector<std::string> gone;
  for (const Extra& e : extra) {
    double share = 100.0 * e.seconds / total_extra;
    if (listed == 4 || share < 3) break;
    out += (listed ? ", " : "") + Fmt("%.0f%% ", share) + e.name;
    if (e.gone) gone.push_back(e.name);
    ++listed;
  }
  if (!gone.empty()) {
    out += " (";
    for (size_t i = 0; i < gone.size(); ++i) out += (i ? ", " : "") + gone[i];
    out += " skipped in epochs 2+)";
  }
  double later_wait = 0;
  for (size_t i = 1; i < run.epochs.size(); ++i)
    later_wait += run.epochs[i].seconds > 0
                      ? run.epochs[i].consumer_wait_seconds / run.epochs[i].seconds
                      : 0;
  later_wait /= n_later;
  out += "; epochs 2+: consumer waited " + Fmt("%.0f", 100.0 * later_wait) + "% of the time";
  return out;
}

std::string CacheVerdict(const RunStats& run) {
  if (run.cache_placement.empty() || run.epochs.empty()) return "";
  const EpochStats& first = run.epochs[0];
  const size_t later_epochs = run.epochs.size() - 1;
  double fill = 0, saved = 0;
  std::vector<std::string> skipped;
  for (const StageStats& s : first.stages) {
    if (s.name == "cache_fill") {
      fill = s.busy_seconds;
      continue;
    }
    if (s.name == "cache" || later_epochs == 0) continue;
    const auto [later, later_count] = LaterEpochs(run, s.name);
    const double d = s.busy_seconds - later / double(later_epochs);
    // Saved: the stages cache hits skip (read and the cached ones), which ran fewer times later.
    if (d > 0 && double(later_count) / double(later_epochs) < 0.99 * double(s.count)) {
      saved += d;
      skipped.push_back(s.name);
    }
  }
  std::string out = "cache (" + (run.cache_store.empty() ? run.cache_mode : run.cache_store) +
                    ", after '" + run.cache_placement + "'): filling it cost epoch 1 " +
                    Fmt("%.2f", fill) + " s of stage time";
  if (first.cache.hits == first.samples && first.samples > 0)
    out = "cache (" + run.cache_store + ", after '" + run.cache_placement +
          "'): epoch 1 was served from a reused cache";
  if (later_epochs == 0) return out + "; a single epoch: nothing to serve in this run";
  out += "; it saved " + Fmt("%.2f", saved) + " s per later epoch";
  if (!skipped.empty()) out += " (" + text::Join(skipped, ", ") + ")";
  if (saved <= 0) return out + ": it did not pay for itself; set cache.mode: off";
  const double payback = fill / saved;
  if (payback <= double(later_epochs))
    return out + ": paid for itself after " + Fmt("%.1f", payback) + " later epochs";
  out += ": it needs " + Fmt("%.1f", payback) + " later epochs to pay for itself, this run had " +
         std::to_string(later_epochs);
  if (run.cache_store == "pixels") out += "; keep the files instead (cache.after: read), or run more epochs";
  return out;
}


}  // namespace flowfeed
