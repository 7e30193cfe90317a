// tar.h (internal): WebDataset-style tar shards. The reader is OpenTarShards() (source.h); this
// header adds the brace expansion that names the shards and the writer that makes them.
//
// A shard is a plain tar file (ustar, GNU or pax) whose members are grouped by key: the member
// path up to the first '.' of its file name. "00000042.jpg" and "00000042.cls" are one sample;
// the members of a sample must be next to each other. Shards let a dataset of many small files
// be read as a few large sequential files.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "flowfeed/source.h"
#include "flowfeed/status.h"

namespace flowfeed {

// Bash-like brace expansion of a shard pattern:
//   "shard-{000..002}.tar"   -> shard-000.tar shard-001.tar shard-002.tar (a range is zero-padded
//                               when an endpoint starts with 0 and has more than one digit, to
//                               the longer endpoint's width, as bash does)
//   "{train,val}-{0..1}.tar" -> train-0.tar train-1.tar val-0.tar val-1.tar (left to right)
//   "plain.tar"              -> plain.tar
// Groups nest ("{a,b{1..2}}"); a group that is neither a list nor a range ("{x}") is kept as
// text, as in bash. InvalidArgument naming the pattern: unbalanced braces, a range with a
// non-numeric endpoint or an end below its start, more than 1,000,000 results.
Result<std::vector<std::string>> ExpandBraces(const std::string& pattern);

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
