// pipeline/ready_queue.cc: the queue between the batcher and the consumer (ready_queue.h).
#include "pipeline/ready_queue.h"

#include <algorithm>

#include "flowfeed/util/clock.h"

namespace flowfeed {

void ReadyQueue::Push(ReadyItem item) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (item.kind == ReadyItem::kBatch) ++ready_batches_;
    queue_.push_back(std::move(item));
  }
  cv_.notify_one();
}

void ReadyQueue::Cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (final_status_.ok() && !(!queue_.empty() && queue_.back().kind == ReadyItem::kDone))
      final_status_ = Status::Cancelled("the pipeline was cancelled");
  }
  cv_.notify_all();
}

Status ReadyQueue::Take(int epoch_now, int epochs, uint64_t epoch_start_ns, Taken* out,
                        int64_t timeout_ns) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!final_status_.ok()) return final_status_;
  const bool resumed = pending_t0_ != 0;  // a timed-out call's wait goes on
  const uint64_t t0 = resumed ? pending_t0_ : NowNs();
  if (!resumed) {
    if (live_epoch_ != epoch_now && epoch_now < epochs) {
      // The first call of an epoch: Live() moves on to it.
      live_epoch_ = epoch_now;
      live_start_ns_ = epoch_start_ns;
      live_end_ns_ = 0;
      live_samples_ = live_batches_ = 0;
    }
    occupancy_.emplace_back(double(t0 - epoch_start_ns) * 1e-9, ready_batches_);
    occupancy_sum_ += double(ready_batches_);
  }
  auto ready = [this] { return !queue_.empty() || !final_status_.ok(); };
  if (timeout_ns < 0) {
    cv_.wait(lock, ready);
  } else if (!cv_.wait_for(lock, std::chrono::nanoseconds(timeout_ns), ready)) {
    pending_t0_ = t0;
    out->timed_out = true;
    return Status::Ok();
  }
  pending_t0_ = 0;
  out->t0 = t0;
  out->waited = NowNs() - t0;
  if (!final_status_.ok()) return final_status_;
  ReadyItem& front = queue_.front();
  out->kind = front.kind;
  switch (front.kind) {
    case ReadyItem::kDone:
      return Status::Ok();  // stays queued: every later call also ends here
    case ReadyItem::kError:
      final_status_ = front.status;
      return final_status_;
    case ReadyItem::kBatch:
      out->batch = std::move(front.batch);
      queue_.pop_front();
      --ready_batches_;
      live_samples_ += out->batch->size;
      ++live_batches_;
      return Status::Ok();
    case ReadyItem::kEpochEnd:
      out->epoch = front.epoch;
      queue_.pop_front();
      out->end_ns = NowNs();
      live_end_ns_ = out->end_ns;
      return Status::Ok();
  }
  return Status::Internal("unreachable");
}

ReadyQueue::Live ReadyQueue::LiveNow() const {
  Live out;
  std::lock_guard<std::mutex> lock(mu_);
  out.epoch = live_epoch_;
  if (out.epoch >= 0) {
    out.seconds = double((live_end_ns_ ? live_end_ns_ : NowNs()) - live_start_ns_) * 1e-9;
    out.samples = live_samples_;
    out.batches = live_batches_;
  }
  return out;
}

void ReadyQueue::TakeOccupancy(double* mean, std::vector<std::pair<double, int>>* points) {
  std::lock_guard<std::mutex> lock(mu_);
  *mean = occupancy_.empty() ? 0 : occupancy_sum_ / double(occupancy_.size());
  size_t stride = (occupancy_.size() + 199) / 200;
  for (size_t i = 0; i < occupancy_.size(); i += std::max<size_t>(stride, 1))
    points->push_back(occupancy_[i]);
  occupancy_.clear();
  occupancy_sum_ = 0;
}

}  // namespace flowfeed
