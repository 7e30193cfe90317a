#include "progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "flowfeed/progress.h"

namespace flowfeed::cli {

Progress::Progress(int epochs, LiveFn live, std::FILE* out)
    : tty_(isatty(fileno(out)) != 0),
      epochs_(epochs),
      live_(std::move(live)),
      out_(out),
      last_draw_(Clock::now()),
      epoch_mark_(last_draw_) {}

void Progress::Start(int epoch, int64_t total_batches, int64_t epoch_samples) {
  epoch_ = epoch;
  total_ = total_batches;
  epoch_samples_ = epoch_samples;
  batches_ = 0;
  last_draw_ = Clock::now();
}

void Progress::Update() {
  ++batches_;
  const Clock::time_point now = Clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(tty_ ? 100 : 5000)) return;
  last_draw_ = now;
  Draw(false);
}

void Progress::Finish() {
  const Clock::time_point now = Clock::now();
  last_epoch_seconds_ = std::chrono::duration<double>(now - epoch_mark_).count();
  finished_seconds_ += last_epoch_seconds_;
  epoch_mark_ = now;
  Draw(true);
}

void Progress::Draw(bool done) {
  ProgressView v;
  v.epoch = epoch_ + 1;
  v.epochs = epochs_;
  v.batches = batches_;
  v.total_batches = total_;
  v.epoch_samples = epoch_samples_;
  v.live = live_();
  // Before the epoch's first batch was asked for, live() still holds the previous epoch.
  if (v.live.epoch != v.epoch) v.live = LiveEpochStats();
  v.finished_seconds = finished_seconds_;
  v.last_epoch_seconds = last_epoch_seconds_;
  v.done = done;
  std::string line = FormatProgressLine(v, tty_);
  if (tty_) {
    // A line wider than the terminal would wrap, and "\r" would then redraw only its last row.
    struct winsize ws {};
    if (ioctl(fileno(out_), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && line.size() >= ws.ws_col)
      line.resize(size_t(ws.ws_col) - 1);
    line = "\r" + line + "\033[K";
    if (done) line += "\n";
  } else {
    line += "\n";
  }
  std::fputs(line.c_str(), out_);
  std::fflush(out_);
}

}  // namespace flowfeed::cli
