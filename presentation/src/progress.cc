#include "flowfeed/progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "flowfeed/util/text_format.h"

namespace flowfeed {
namespace {

using text::Join;

// The percentage `part` is of `whole`, rounded, but 0 and 100 only when exact: 99.7% hits is not
// "100% hit".
int Percent(double part, double whole) {
  if (whole <= 0 || part <= 0) return 0;
  if (part >= whole) return 100;
  return std::clamp(int(std::lround(100 * part / whole)), 1, 99);
}

// "ETA 9s (run 1m52s)", "done in 23s (run 1m02s so far, ETA 1m09s)", or "" when the epoch's
// total is unknown.
std::string EtaPart(const ProgressView& v) {
  const LiveEpochStats& l = v.live;
  const int epochs_after = std::max(0, v.epochs - v.epoch);
  if (v.done) {
    std::string out = "done in " + FormatDuration(l.seconds) + " (run " +
                      FormatDuration(v.finished_seconds);
    if (epochs_after == 0) return out + ")";
    return out + " so far, ETA " + FormatDuration(double(epochs_after) * v.last_epoch_seconds) +
           ")";
  }
  // Samples still to come in this epoch: from the epoch's size, else from its batches at the
  // mean batch size so far.
  double remaining;
  if (v.epoch_samples > 0) {
    remaining = double(std::max<int64_t>(0, v.epoch_samples - l.samples));
  } else if (v.total_batches > 0) {
    if (v.batches <= 0) return "ETA ?";
    remaining = double(l.samples) * double(std::max<int64_t>(0, v.total_batches - v.batches)) /
                double(v.batches);
  } else {
    return "";
  }
  const double rate = l.seconds > 0 ? double(l.samples) / l.seconds : 0;
  if (rate <= 0) return "ETA ?";
  const double epoch_eta = remaining / rate;
  if (epochs_after == 0) return "ETA " + FormatDuration(epoch_eta);
  // How long each epoch after this one takes. Epochs 2+ are alike and usually faster than
  // epoch 1 (the cache spares them reading and decoding), so from epoch 2 on, once a tenth of it
  // is done, this epoch's projection (its time so far plus its ETA) is the best guess; earlier
  // in it, the last finished epoch's time; before any has finished, the projection again.
  const double projected = l.seconds + epoch_eta;
  const double along = double(l.samples) / (double(l.samples) + remaining);
  const double per_epoch =
      (v.epoch >= 2 && along >= 0.1) || v.last_epoch_seconds <= 0 ? projected : v.last_epoch_seconds;
  return "ETA " + FormatDuration(epoch_eta) + " (run " +
         FormatDuration(epoch_eta + double(epochs_after) * per_epoch) + ")";
}

// The stage with the most busy time so far and its share of all stages' busy time; false before
// any stage time is recorded. The first of equals wins.
bool Busiest(const LiveEpochStats& l, std::string* name, int* percent) {
  const LiveEpochStats::Stage* top = nullptr;
  double sum = 0;
  for (const LiveEpochStats::Stage& s : l.stages) {
    sum += s.busy_seconds;
    if (!top || s.busy_seconds > top->busy_seconds) top = &s;
  }
  if (!top || sum <= 0) return false;
  *name = top->name;
  *percent = Percent(top->busy_seconds, sum);
  return true;
}

}  // namespace

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds) || seconds > 1e12) return "?";
  const long long s = std::llround(seconds);
  char buf[48];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s % 3600 / 60);
  return buf;
}

std::string FormatProgressLine(const ProgressView& v, bool tty) {
  const LiveEpochStats& l = v.live;
  std::vector<std::string> parts;
  const std::string done = std::to_string(v.batches);
  if (v.total_batches > 0) {
    const std::string of = done + "/" + std::to_string(v.total_batches);
    if (tty) {
      const int width = 20;
      const double frac = std::clamp(double(v.batches) / double(v.total_batches), 0.0, 1.0);
      const int filled = int(std::lround(frac * width));
      parts.push_back("[" + std::string(size_t(filled), '#') +
                      std::string(size_t(width - filled), '.') + "] " + of);
    } else {
      parts.push_back(of + " batches");
    }
  } else {
    parts.push_back(done + " batches");
  }
  const int64_t rate = l.seconds > 0 ? std::llround(double(l.samples) / l.seconds) : 0;
  parts.push_back((tty ? text::Thousands(double(rate)) : std::to_string(rate)) + " img/s");
  std::string eta = EtaPart(v);
  if (!eta.empty()) parts.push_back(std::move(eta));
  const int64_t lookups = l.cache_hits + l.cache_misses;
  if (l.cache_mode != "off" && lookups > 0)
    parts.push_back("cache " +
                    std::to_string(Percent(double(l.cache_hits), double(lookups))) + "% hit");
  std::string busiest;
  int share = 0;
  if (Busiest(l, &busiest, &share))
    parts.push_back(tty ? "busiest: " + busiest + " " + std::to_string(share) + "%"
                        : "busiest stage " + busiest + " (" + std::to_string(share) +
                              "% of stage time)");
  const std::string head = "epoch " + std::to_string(v.epoch) + "/" + std::to_string(v.epochs);
  return tty ? head + " " + Join(parts, "  ") : head + ": " + Join(parts, ", ");
}

}  // namespace flowfeed
