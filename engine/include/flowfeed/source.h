// flowfeed/source.h: where samples come from.
//
// A Source is a fixed, indexed list of samples (0 .. size()-1) with labels. The listing happens
// in the factory (so a missing root fails before anything runs); Read() fetches one sample's
// bytes or pixels. Image folders and file lists give encoded bytes for the decoder; IDX files
// give pixels directly (a 1-channel uint8 image).
//
// Thread-safety: every const method may be called from many threads at once.
// Failure: factories return NotFound / Corrupt / InvalidArgument naming the path; Read() returns
// NotFound (a listed file has gone), IoError or Corrupt, naming the sample's file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flowfeed/options.h"
#include "flowfeed/sample.h"
#include "flowfeed/status.h"

namespace flowfeed {

class Source {
 public:
  virtual ~Source() = default;

  virtual int64_t size() const = 0;
  virtual int64_t label(int64_t index) const = 0;
  // A stable name for the sample: its path, or "file[index]". Valid for the Source's lifetime.
  virtual std::string_view key(int64_t index) const = 0;
  // Class names in label order ("0".."9" for IDX without names).
  virtual const std::vector<std::string>& classes() const = 0;
  // Fills sample->encoded (clearing sample->image) or sample->image; sets label and source.
  virtual Status Read(int64_t index, Sample* sample) const = 0;
  // One line for reports: "image_folder data/photos: 2000 files, 30 classes".
  virtual std::string Describe() const = 0;
  // The files the samples come from (one per sample for folders and lists; the images and labels
  // files for IDX), for the cache's fingerprint and for evicting them from the page cache.
  virtual std::vector<std::string> Files() const = 0;
  // True when Read() only copies from memory the source already holds (IDX), so caching the
  // read step alone would save nothing.
  virtual bool in_memory() const { return false; }

  // Sources kept in shard files (tar): how many shards, and which one holds a sample. A shard's
  // samples have consecutive indices, in file order. The sampler then shuffles shards and
  // samples within a bounded window (SourceOptions::shuffle_buffer), so that reads stay close
  // to sequential. 0 / -1 for sources that are not sharded.
  virtual int64_t num_shards() const { return 0; }
  virtual int64_t shard(int64_t index) const { (void)index; return -1; }
};

// Opens the source that `options.type` names.
Result<std::unique_ptr<Source>> OpenSource(const SourceOptions& options);

// The first thing opening a source checks (OpenSource, for every type that takes a root), on
// its own so that `flowfeed validate` reports a missing dataset folder exactly as a run would:
// that `options.root`, when set, is an existing folder. Reads nothing in it. A relative root is
// taken from the current directory, as the sources take it (SourceOptions::root); the message
// then also names the folder it resolved to. `key` names the option ("source.root",
// "eval.source.root"). Ok for an empty root (optional for tar; image_folder says it is
// required when opened). NotFound: "source.root: data/photos does not exist (relative to the
// current directory: /home/me/data/photos)", or "... is not a directory"; IoError naming the path
// and the system's reason when it cannot be examined (permissions).
Status CheckSourceRoot(const SourceOptions& options, const std::string& key = "source.root");

Result<std::unique_ptr<Source>> OpenImageFolder(const SourceOptions& options);
Result<std::unique_ptr<Source>> OpenFileList(const SourceOptions& options);
Result<std::unique_ptr<Source>> OpenIdx(const SourceOptions& options);
// WebDataset-style tar shards (`options.shards`, brace patterns allowed); see SourceOptions.
Result<std::unique_ptr<Source>> OpenTarShards(const SourceOptions& options);

// Reads a whole regular file into *out (reusing its capacity). IoError/NotFound naming the path;
// a FIFO, socket or device is refused at once ("not a regular file (a FIFO)"), never waited on.
Status ReadFileBytes(const std::string& path, std::vector<uint8_t>* out);

}  // namespace flowfeed
