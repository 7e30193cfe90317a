// fuzz/fuzz_tar.cc: the tar shard reader, OpenTarShards, on shard files made from the input.
//
// Input: one flags byte, then up to 4 shard files separated by kSeparator (written as
// shard-0.tar, shard-1.tar, ...; opened with the pattern "shard-{0..N}.tar"). Flags:
//   bits 0-1: source.limit = 0, 1, 2 or 3
//   bit 2:    label extension "cls" (0) or "txt" (1)
// Every sample is then read. Invariants: each Read succeeds (the shards do not change under
// the source) and gives encoded bytes with the sample's label; labels are within classes().
#include <cstdint>
#include <memory>
#include <string>

#include "flowfeed/source.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flowfeed;
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::vector<std::string_view> parts = fuzz::SplitParts(data + 1, size - 1);
  if (parts.size() > 4) parts.resize(4);

  const std::string& dir = fuzz::ProcessTempDir();
  for (size_t i = 0; i < parts.size(); ++i)
    fuzz::WriteFile(dir + "/shard-" + std::to_string(i) + ".tar", parts[i]);
  SourceOptions o;
  o.type = "tar";
  o.root = dir;
  o.shards = parts.size() == 1 ? "shard-0.tar"
                               : "shard-{0.." + std::to_string(parts.size() - 1) + "}.tar";
  o.extensions = {"jpg", ".PNG", "webp"};
  o.label_extension = (flags & 4) ? ".txt" : "cls";
  o.limit = flags & 3;

  Result<std::unique_ptr<Source>> opened = OpenTarShards(o);
  const Source* checked = fuzz::CheckOpened(opened, o.limit);
  if (!checked) return 0;
  const Source& source = *checked;
  FUZZ_CHECK(source.num_shards() == int64_t(parts.size()), "num_shards %lld",
             (long long)source.num_shards());
  const int64_t classes = int64_t(source.classes().size());
  Sample sample;
  int64_t last_shard = 0;
  for (int64_t i = 0; i < source.size(); ++i) {
    const Status s = source.Read(i, &sample);
    FUZZ_CHECK(s.ok(), "Read(%lld) failed: %s", (long long)i, s.ToString().c_str());
    FUZZ_CHECK(sample.index == i && sample.label == source.label(i), "index or label mismatch");
    FUZZ_CHECK(sample.label >= 0 && sample.label < classes, "label %lld of %lld classes",
               (long long)sample.label, (long long)classes);
    FUZZ_CHECK(sample.image.empty(), "a tar sample with pixels");
    FUZZ_CHECK(sample.source == source.key(i) && !sample.source.empty(), "key");
    const int64_t shard = source.shard(i);
    FUZZ_CHECK(shard >= last_shard && shard < source.num_shards(), "shard %lld after %lld",
               (long long)shard, (long long)last_shard);
    last_shard = shard;
  }
  Sample out_of_range;
  FUZZ_CHECK(!source.Read(source.size(), &out_of_range).ok(), "read past the end");
  return 0;
}
