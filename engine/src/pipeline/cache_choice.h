// cache_choice.h (internal): what `cache.mode: auto` keeps, chosen from measured costs.
//
// A cache can keep a sample as its encoded file (the bytes `read` produced) or as the output of
// the deterministic stages (decoded pixels, after any deterministic resize). Files are small and
// cost epoch 1 almost nothing to keep, but every later epoch decodes them again; pixels spare
// later epochs the decode, but they are many times larger, and epoch 1 pays for every byte of
// fresh memory they occupy (the first touch of new memory is the fill's main cost: about
// 0.5 GB/s on a VM whose memory is backed lazily, against ~35 GB/s for memory already touched).
//
// The choice minimises the work the whole run spends on the cached part of the pipeline, per
// sample, over E epochs:
//
//   files:   fill(file bytes)  + E * rerun     (every epoch decodes the file again)
//   pixels:  fill(pixel bytes) + 1 * compute   (epoch 1 decodes the whole image, once)
//
//   fill(b) = b / fresh-memory rate
//   compute = the deterministic stages after read on the whole image (what a pixel entry holds)
//   rerun   = the same stages as a file hit reruns them: with fusion on, the decode reads only
//             the rows and columns of the crop after it, which costs less than `compute`
//
// over the samples the memory budget holds (with a disk path the rest is kept on disk the same
// way, and costs the same fill in page-cache memory; without one it is recomputed every epoch).
// Reading the file is saved by both, so it does not enter the comparison. The fill rate is
// measured on the probed samples themselves (FreshMemoryProbe): a few megabytes, which the
// kernel serves from pages it recycled a moment ago. A fill of gigabytes meets memory the VM
// must back anew, and has measured 2-4x slower on the development VM (docs/cache.md). So pixels
// are kept only when they win on the model *and* pay back within half the run's later epochs:
// a 3-epoch run of photos keeps files, a 10-epoch run keeps pixels, small images (Fashion-MNIST
// PNGs, where pixels cost about what the file does) keep pixels from 3 epochs on.
//
// Everything here is a pure function of its inputs, so tests give it figures directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace flowfeed {

// Per-sample costs, measured at Pipeline::Open on a few samples (ProbeCacheCosts in
// pipeline/plan.cc), the fill through a FreshMemoryProbe.
struct CacheCosts {
  int probed = 0;                  // samples measured (0: nothing could be measured)
  double read_seconds = 0;         // reading one file
  double compute_seconds = 0;      // the deterministic stages after read, on the whole image
  double rerun_seconds = 0;        // those stages as a file hit reruns them (fused region decode)
  double file_bytes = 0;           // one encoded file
  double pixel_bytes = 0;          // one sample's output of the deterministic stages
  double fresh_bytes_per_second = 0;  // copying a sample into memory never touched before
};

struct CacheChoice {
  bool keep_pixels = false;  // else the encoded files
  // Modelled seconds of work (summed over threads) the cached part costs over the run, for the
  // whole dataset, with each store; and how many epochs after the first pixels need before
  // they cost less than files (infinity when they never do).
  double files_seconds = 0, pixels_seconds = 0;
  double payback_epochs = 0;
  // One sentence for the terminal and the report: what was kept, and the figures that decided.
  std::string reason;
};

// `samples`: the dataset size; `epochs`: epochs this run will make; `budget_bytes`: the memory
// budget; `disk`: whether samples over the budget go to a disk store; `pixels_stage`: the name
// of the stage whose output pixels would be ("decode", "resize").
CacheChoice ChooseCacheStore(const CacheCosts& costs, int64_t samples, int epochs,
                             int64_t budget_bytes, bool disk, const std::string& pixels_stage);

// The fill as the memory store does it, on a few samples: each copied into memory this process
// never touched, right after it was computed. Not thread-safe.
class FreshMemoryProbe {
 public:
  explicit FreshMemoryProbe(size_t capacity);  // maps `capacity` bytes, touches none
  ~FreshMemoryProbe();
  FreshMemoryProbe(const FreshMemoryProbe&) = delete;
  FreshMemoryProbe& operator=(const FreshMemoryProbe&) = delete;
  // Copies and times; false (nothing timed) when the mapping failed or is full.
  bool Copy(const uint8_t* data, size_t size);
  // The rate of the slowest copy (0 before the first). Not the mean: the first megabytes come
  // from pages the kernel recycled a moment ago, while a fill of gigabytes mostly meets memory
  // the VM must back anew, the slow copies' rate (on the development VM the pipeline's own fill
  // ran at 0.4-1.0 GB/s where the probe's mean said 1.6-1.9 GB/s).
  double SlowestBytesPerSecond() const;

 private:
  uint8_t* base_ = nullptr;
  size_t capacity_ = 0, used_ = 0;
  double slowest_ = 0;
};

}  // namespace flowfeed
