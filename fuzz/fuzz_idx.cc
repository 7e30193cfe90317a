// fuzz/fuzz_idx.cc: the IDX (MNIST-format) reader, OpenIdx, on files made from the input.
//
// Input: one flags byte, then the images file, kSeparator, the labels file. Flags:
//   bit 0: gzip the images file before writing it (bit 1: the labels file), so that the
//          fuzzer reaches the parser through valid gzip streams too (raw input already covers
//          damaged ones: a seed can hold gzip bytes itself)
//   bits 2-3: source.limit = 0, 1, 2 or 3
// Every sample is then read. Invariants: each Read succeeds, gives a rows x cols 1-channel
// uint8 image holding exactly the file's bytes for that record, and the label byte.
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "flowfeed/source.h"
#include "fuzz_util.h"

namespace flowfeed {
namespace {

std::string Gzip(std::string_view in) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::string out(deflateBound(&zs, uLong(in.size())) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = uInt(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

uint32_t BigEndian32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace
}  // namespace flowfeed

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flowfeed;
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const std::vector<std::string_view> parts = fuzz::SplitParts(data + 1, size - 1);
  const std::string_view images = parts[0];
  const std::string_view labels = parts.size() > 1 ? parts[1] : std::string_view();

  const std::string& dir = fuzz::ProcessTempDir();
  SourceOptions o;
  o.type = "idx";
  o.root = dir;
  o.images = "images-idx3-ubyte";
  o.labels = "labels-idx1-ubyte";
  o.limit = (flags >> 2) & 3;
  fuzz::WriteFile(dir + "/" + o.images, (flags & 1) ? Gzip(images) : std::string(images));
  if (parts.size() > 1)
    fuzz::WriteFile(dir + "/" + o.labels, (flags & 2) ? Gzip(labels) : std::string(labels));
  else
    fuzz::RemoveFile(dir + "/" + o.labels);  // a missing labels file

  Result<std::unique_ptr<Source>> opened = OpenIdx(o);
  const Source* checked = fuzz::CheckOpened(opened, o.limit);
  if (!checked) return 0;
  const Source& source = *checked;
  const size_t classes = source.classes().size();
  // The pixels as the file holds them, when the images file was written as given.
  const bool raw = !(flags & 1) && images.size() >= 16 &&
                   !(uint8_t(images[0]) == 0x1f && uint8_t(images[1]) == 0x8b);
  const uint8_t* file = reinterpret_cast<const uint8_t*>(images.data());
  Sample sample;
  for (int64_t i = 0; i < source.size(); ++i) {
    const Status s = source.Read(i, &sample);
    FUZZ_CHECK(s.ok(), "Read(%lld) failed: %s", (long long)i, s.ToString().c_str());
    FUZZ_CHECK(sample.index == i && sample.label == source.label(i), "index or label mismatch");
    FUZZ_CHECK(sample.label >= 0 && size_t(sample.label) < classes, "label %lld of %zu classes",
               (long long)sample.label, classes);
    FUZZ_CHECK(!sample.image.empty() && sample.image.channels() == 1 &&
                   sample.image.dtype() == DType::kUInt8,
               "image %s", sample.image.ShapeString().c_str());
    FUZZ_CHECK(!sample.source.empty() && sample.source == source.key(i), "key");
    if (raw) {
      const uint32_t rows = BigEndian32(file + 8), cols = BigEndian32(file + 12);
      FUZZ_CHECK(uint32_t(sample.image.height()) == rows && uint32_t(sample.image.width()) == cols,
                 "image %s, header says %ux%u", sample.image.ShapeString().c_str(), rows, cols);
      const size_t bytes = size_t(rows) * cols;
      FUZZ_CHECK(std::memcmp(sample.image.data(), file + 16 + size_t(i) * bytes, bytes) == 0,
                 "pixels of sample %lld differ from the file", (long long)i);
    }
  }
  Sample out_of_range;
  FUZZ_CHECK(!source.Read(source.size(), &out_of_range).ok(), "read past the end");
  FUZZ_CHECK(!source.Read(-1, &out_of_range).ok(), "read before the start");
  return 0;
}
