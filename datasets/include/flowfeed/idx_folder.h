// flowfeed/idx_folder.h: writes MNIST-format IDX files as an image folder of PNGs. Part of the
// datasets library (flowfeed::datasets), not of the engine.
//
// The README's main job trains on Fashion-MNIST as files, so that epoch 1 reads and decodes
// images and later epochs are served from the cache, as with any real image dataset: Debian's
// dataset-fashion-mnist package ships IDX files, which this turns into
// out_dir/<split>/<class>/<index>.png once.
//
// Crash-safe and idempotent: everything is written under out_dir + ".partial", flushed to
// storage, and renamed to out_dir only when complete (with a marker file naming what it
// holds). A complete folder is reused as it is; a partial one left by an interrupted run (or
// a machine crash) is written again. PNG bytes are a pure function of the IDX pixels, so every
// build of the folder is identical, whatever the number of threads.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "flowfeed/status.h"

namespace flowfeed {

struct IdxSplit {
  std::string name;    // the subfolder: "train", "test"
  std::string images;  // file names under IdxFolderOptions::idx_root (gzipped or not)
  std::string labels;
};

struct IdxFolderOptions {
  std::string idx_root;  // where the IDX files are
  std::vector<IdxSplit> splits;
  // Folder names for labels 0, 1, ...; they must sort in label order (an image_folder source
  // numbers classes by sorted name), e.g. "0_tshirt_top", "1_trouser".
  std::vector<std::string> class_names;
  std::string out_dir;  // required
  // Rewrite a complete folder too. A folder this did not write (no marker) is never replaced.
  bool overwrite = false;
  int threads = 0;         // 0: every core
};

// Fashion-MNIST's two splits and ten class names, for Debian's files under `idx_root`.
IdxFolderOptions FashionMnistFolder(const std::string& idx_root, const std::string& out_dir);

// Writes the folder (or reuses a complete one, saying so on `log`). NotFound naming the file
// when an IDX file is missing; Corrupt naming it when it does not parse; InvalidArgument for a
// label with no class name, names out of order, or an existing out_dir this did not write;
// IoError naming the path when writing fails.
Status WriteIdxAsImageFolder(const IdxFolderOptions& options, std::ostream& log);

}  // namespace flowfeed
