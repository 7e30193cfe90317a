// flowfeed/photo_dataset.h: makes example image datasets for demos, tests and benchmarks. Part of
// the datasets library (flowfeed::datasets), not of the engine.
//
// BuildPhotoDataset() turns a handful of real photographs (by default the MATE desktop
// backgrounds) into an ImageNet-like image folder: every source photo becomes a class, and the
// class's images are random windows of it (random size, aspect ratio, position and flip),
// resized so that the short side is in [min_short_side, max_short_side], saved as JPEG.
//
// Deterministic: the same options (seed included) give byte-identical files, whatever the number
// of threads. Each class draws from its own std::mt19937_64 keyed by (seed, class name), and the
// random numbers are turned into sizes without the standard library's distributions (whose
// output differs between standard libraries).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "flowfeed/status.h"

namespace flowfeed {

struct PhotoDatasetOptions {
  // Searched recursively for .jpg/.jpeg/.png files (case-insensitive; hidden files skipped).
  std::string source_dir = "/usr/share/backgrounds/mate";
  // Required. Created (with parents) when missing. An existing, non-empty folder is refused
  // unless `overwrite`; with `overwrite`, a folder that an earlier build made (it holds the
  // marker file .flowfeed-photos) is emptied first, any other folder is written into as it is.
  std::string out_dir;
  int count = 2000;  // images to write in total, spread round-robin over the classes
  uint64_t seed = 0;
  int min_short_side = 333, max_short_side = 500;  // output short side, uniform in [min, max]
  int quality = 90;                                // JPEG quality, 1..100
  // > 0: out_dir/train/<class>/... and out_dir/val/<class>/... with this fraction of each
  // class's images (rounded) in val; 0: out_dir/<class>/...
  double val_fraction = 0.0;
  bool overwrite = false;
  int threads = 0;  // worker threads (classes are built in parallel); 0: min(4, cores)
};

// Writes out_dir/<class>/<class>_<00042>.jpg files and logs progress lines to `log`.
// NotFound: source_dir missing or without photos. InvalidArgument: bad options, or a non-empty
// out_dir without `overwrite`. Corrupt: a source photo that does not decode. IoError: writing.
Status BuildPhotoDataset(const PhotoDatasetOptions& options, std::ostream& log);

}  // namespace flowfeed
