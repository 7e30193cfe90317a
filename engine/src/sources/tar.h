// tar.h (internal): WebDataset-style tar shards. The reader is OpenTarShards() (source.h,
// sources/tar.cc); this header adds the brace expansion that names the shards
// (sources/braces.cc). The writer that makes them is WriteShards() in the datasets library
// (flowfeed/shards.h).
//
// A shard is a plain tar file (ustar, GNU or pax) whose members are grouped by key: the member
// path up to the first '.' of its file name. "00000042.jpg" and "00000042.cls" are one sample;
// the members of a sample must be next to each other. Shards let a dataset of many small files
// be read as a few large sequential files.
#pragma once

#include <cstdint>
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

// A non-negative decimal that fits in int64, digits only (no sign, no spaces). Shared by brace
// ranges and the tar reader's label members and pax size records, which accept the same text.
bool ParseDecimal(const std::string& s, int64_t* out);

}  // namespace flowfeed
