// flowfeed/rng.h: the counter-based random generator that random stages draw from.
//
// The n-th output is a pure function of (seed, epoch, sample index, stream, n): a SplitMix64
// finaliser applied to a key derived from those numbers plus n times the golden-ratio increment.
// No state is shared between samples, so a run's augmentations are the same for any thread
// count, any prefetch depth and after a resume. `stream` separates stages (the engine passes the
// stage's position in the pipeline), so two random stages never see the same numbers.
//
// Thread-safety: an Rng is a small value; give each sample its own (StageContext::rng() does).
#pragma once

#include <cmath>
#include <cstdint>

namespace flowfeed {

class Rng {
 public:
  Rng(uint64_t seed, uint64_t epoch, uint64_t index, uint64_t stream) {
    uint64_t k = Mix(seed ^ 0x243F6A8885A308D3ull);
    k = Mix(k ^ (epoch + 0x13198A2E03707344ull));
    k = Mix(k ^ (index + 0xA4093822299F31D0ull));
    key_ = Mix(k ^ (stream + 0x082EFA98EC4E6C89ull));
  }

  uint64_t NextU64() { return Mix(key_ + (++counter_) * 0x9E3779B97F4A7C15ull); }

  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return double(NextU64() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform in [lo, hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [lo, hi] (inclusive); lo when hi < lo.
  int64_t UniformInt(int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    uint64_t span = uint64_t(hi - lo) + 1;
    // Multiply-shift (Lemire) maps 64 random bits onto the span with negligible bias.
    unsigned __int128 m = (unsigned __int128)NextU64() * span;
    return lo + int64_t(m >> 64);
  }
  bool Bernoulli(double p) { return Uniform() < p; }

 private:
  static uint64_t Mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t key_;
  uint64_t counter_ = 0;
};

}  // namespace flowfeed
