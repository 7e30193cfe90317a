// flowfeed/shards.h: writes any source of encoded files as WebDataset tar shards, which
// OpenTarShards() (flowfeed/source.h), GNU tar and Python's webdataset read. Part of the datasets
// library (flowfeed::datasets), not of the engine.
//
// A shard is a plain ustar file whose members are grouped by key (the member path up to the first
// '.' of its file name): "00000042.jpg" and "00000042.cls" are one sample.
//
// Thread-safety: WriteShards() reads `source` from the calling thread only; concurrent calls
// must write to different folders or prefixes.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "flowfeed/source.h"
#include "flowfeed/status.h"

namespace flowfeed {

struct ShardWriterOptions {
  std::string out_dir;               // required; created with parents
  std::string prefix = "shard";      // files <prefix>-000000.tar, <prefix>-000001.tar, ...
  int64_t samples_per_shard = 1000;  // >= 1
  // Write samples in a seeded random order, so that every shard mixes the classes (a sampler
  // that shuffles shards and a window within them then still sees every class early).
  bool shuffle = true;
  uint64_t seed = 0;
  // A non-empty out_dir is refused (InvalidArgument) unless this is true; then shards are
  // written over, and earlier <prefix>-NNNNNN.tar files beyond the new count are removed so that
  // no stale shard matches a pattern for this prefix.
  bool overwrite = false;
};

// Writes every sample of `source` as WebDataset shards in options.out_dir: sample k of the
// written order becomes the members "<%08d of k>.<ext>" (the source file's extension,
// lowercased, without the dot; "jpg" when it has none) holding the encoded bytes and
// "<%08d of k>.cls" holding the decimal label.
//
// The output is deterministic: the same source and options give byte-identical shards (ustar,
// mode 0644, uid/gid 0, mtime 0, empty user and group names, two zero blocks at the end, padded
// to a multiple of 10240 bytes as GNU tar does). Each shard is written under a temporary name,
// fsynced and then renamed, so a crash never leaves a partial file under a shard's name.
//
// On success *pattern holds the brace pattern of the written files, relative to out_dir
// ("shard-{000000..000004}.tar", or the one name when there is a single shard). One line per
// shard goes to `log`.
// InvalidArgument: bad options, a non-empty out_dir without `overwrite`, a source that gives
// pixels rather than encoded files (IDX) or a sample without a label. The source's own error,
// naming the sample, when a Read fails. IoError: creating or writing the files.
Status WriteShards(const Source& source, const ShardWriterOptions& options, std::ostream& log,
                   std::string* pattern);

}  // namespace flowfeed
