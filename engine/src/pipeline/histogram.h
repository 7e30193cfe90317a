// histogram.h (internal): a fixed-size log-linear latency histogram.
//
// Values in nanoseconds; 8 buckets per power of two (relative error under 9%), up to about 18
// minutes. Adding is two shifts and an increment, so each thread keeps its own and the reader
// merges them: no lock or atomic on the hot path.
#pragma once

#include <array>
#include <cstdint>

namespace flowfeed {

class LatencyHistogram {
 public:
  static constexpr int kSub = 8;  // buckets per octave
  static constexpr int kLinear = 16;
  static constexpr int kBuckets = kLinear + (40 - 4) * kSub;

  void Add(uint64_t ns) {
    ++buckets_[Bucket(ns)];
    ++count_;
    sum_ns_ += ns;
    if (ns > max_ns_) max_ns_ = ns;
  }
  void Merge(const LatencyHistogram& o) {
    for (int i = 0; i < kBuckets; ++i) buckets_[i] += o.buckets_[i];
    count_ += o.count_;
    sum_ns_ += o.sum_ns_;
    if (o.max_ns_ > max_ns_) max_ns_ = o.max_ns_;
  }
  uint64_t count() const { return count_; }
  uint64_t sum_ns() const { return sum_ns_; }
  uint64_t max_ns() const { return max_ns_; }

  // The q-quantile (0..1) in nanoseconds: the middle of the bucket holding it, capped by max.
  double Quantile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = uint64_t(q * double(count_ - 1)) + 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (seen >= rank) {
        double mid = 0.5 * double(Lower(i) + Lower(i + 1));
        return mid < double(max_ns_) ? mid : double(max_ns_);
      }
    }
    return double(max_ns_);
  }

  static int Bucket(uint64_t v) {
    if (v < kLinear) return int(v);
    int e = 63 - __builtin_clzll(v);  // v in [2^e, 2^(e+1)), e >= 4
    if (e >= 40) return kBuckets - 1;
    int sub = int((v >> (e - 3)) & (kSub - 1));
    return kLinear + (e - 4) * kSub + sub;
  }
  // Smallest value that falls in bucket i.
  static uint64_t Lower(int i) {
    if (i < kLinear) return uint64_t(i);
    int e = (i - kLinear) / kSub + 4;
    int sub = (i - kLinear) % kSub;
    return (uint64_t(1) << e) + (uint64_t(sub) << (e - 3));
  }

 private:
  std::array<uint32_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t sum_ns_ = 0;
  uint64_t max_ns_ = 0;
};

}  // namespace flowfeed
