// sources/idx.cc: MNIST-format IDX files (images idx3 + labels idx1, gzipped or not), read
// completely into memory when the source is opened.
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "flowfeed/source.h"
#include "flowfeed/util/file.h"

namespace flowfeed {

namespace {

constexpr uint32_t kImageMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelMagic = 0x00000801;  // unsigned byte, 1 dimension

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string Hex32(uint32_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) s += digits[(v >> shift) & 0xF];
  return s;
}

uint32_t BigEndian32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// What a file's IDX header declares: the whole file's size in bytes, header included, or 0 when
// the header is not one this reader accepts (the caller says why).
using DeclaredSize = uint64_t (*)(const uint8_t* header);

// Inflates a gzip stream (one or more members) into *out. The first `header` bytes are handed to
// `declared`; a stream that inflates to more than the size it returns is refused before the
// excess is stored, so a crafted .gz (deflate reaches ~1032:1) costs at most what its header
// declares, and *out never grows beyond that.
Status Gunzip(const std::string& path, const std::vector<uint8_t>& in, size_t header,
              DeclaredSize declared, std::vector<uint8_t>* out) {
  out->clear();
  // The last 4 bytes of a gzip member hold its size mod 2^32: a good first guess, unless the
  // file is cut short or damaged, so it is believed only up to deflate's best ratio (~1032:1).
  size_t guess = in.size() * 4;
  if (in.size() >= 18) {
    const uint8_t* t = in.data() + in.size() - 4;
    size_t isize = size_t(t[0]) | (size_t(t[1]) << 8) | (size_t(t[2]) << 16) | (size_t(t[3]) << 24);
    if (isize > 0) guess = std::min(isize, in.size() * 1032);
  }
  uint64_t limit = header;  // until the header is in, then what it declares
  bool header_read = false;
  out->resize(header);

  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    return Status::Internal(path + ": inflateInit2 failed");
  size_t in_pos = 0, out_pos = 0;
  Status status;
  for (;;) {
    if (out_pos == limit && !header_read) {
      header_read = true;
      limit = declared(out->data());
      if (limit == 0) break;  // not a valid header: the caller reports it from these bytes
      out->resize(size_t(std::min<uint64_t>(limit, std::max<size_t>(guess, 4096))));
    }
    if (out_pos == out->size() && out_pos < limit)
      out->resize(size_t(std::min<uint64_t>(limit, uint64_t(out->size()) * 2)));
    // At the declared size, one more byte of room shows whether the stream goes on.
    uint8_t probe = 0;
    const bool at_limit = out_pos == limit;
    const size_t in_chunk = std::min<size_t>(in.size() - in_pos, std::numeric_limits<uInt>::max());
    const size_t out_chunk =
        at_limit ? 1 : std::min<size_t>(out->size() - out_pos, std::numeric_limits<uInt>::max());
    zs.next_in = const_cast<Bytef*>(in.data() + in_pos);
    zs.avail_in = uInt(in_chunk);
    zs.next_out = at_limit ? &probe : out->data() + out_pos;
    zs.avail_out = uInt(out_chunk);
    int rc = inflate(&zs, Z_NO_FLUSH);
    in_pos += in_chunk - zs.avail_in;
    if (at_limit && zs.avail_out == 0) {
      status = Status::Corrupt(path + ": the gzip stream inflates to more than the " +
                               std::to_string(limit) +
                               " bytes its IDX header declares (refused there)");
      break;
    }
    if (!at_limit) out_pos += out_chunk - zs.avail_out;
    if (rc == Z_STREAM_END) {
      // Another gzip member may follow (concatenated .gz files); trailing zeros are padding.
      size_t rest = in_pos;
      while (rest < in.size() && in[rest] == 0) ++rest;
      if (rest >= in.size()) break;
      if (in.size() - rest < 2 || in[rest] != 0x1f || in[rest + 1] != 0x8b) {
        status = Status::Corrupt(path + ": trailing garbage after the gzip stream");
        break;
      }
      in_pos = rest;
      inflateReset(&zs);
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && zs.avail_out == 0) continue;  // needs more output room
    if (rc == Z_BUF_ERROR) {  // no progress possible: the input ended early
      status = Status::Corrupt(path + ": truncated gzip stream");
      break;
    }
    if (rc == Z_MEM_ERROR) {
      status = Status::ResourceExhausted(path + ": out of memory inflating");
      break;
    }
    status = Status::Corrupt(path + ": bad gzip data" +
                             (zs.msg ? std::string(" (") + zs.msg + ")" : std::string()));
    break;
  }
  inflateEnd(&zs);
  if (!status.ok()) return status;
  out->resize(out_pos);
  return Status::Ok();
}

// Reads a file and inflates it when it starts with the gzip magic bytes (bounded by what its
// `header` bytes declare, see Gunzip).
Status ReadMaybeGzip(const std::string& path, size_t header, DeclaredSize declared,
                     std::vector<uint8_t>* out) {
  std::vector<uint8_t> raw;
  FLOWFEED_RETURN_IF_ERROR(ReadFileBytes(path, &raw));
  if (raw.size() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b)
    return Gunzip(path, raw, header, declared, out);
  *out = std::move(raw);
  return Status::Ok();
}

constexpr size_t kImageHeader = 16, kLabelHeader = 8;

// An images file's declared size: 16 + n * rows * cols, or 0 for a wrong magic or dimensions.
uint64_t DeclaredImageBytes(const uint8_t* h) {
  constexpr uint32_t kMaxSide = 1u << 16;
  const uint32_t n = BigEndian32(h + 4), rows = BigEndian32(h + 8), cols = BigEndian32(h + 12);
  if (BigEndian32(h) != kImageMagic || n == 0 || rows == 0 || cols == 0 ||
      n > uint32_t(std::numeric_limits<int32_t>::max()) || rows > kMaxSide || cols > kMaxSide)
    return 0;
  return kImageHeader + uint64_t(n) * rows * cols;  // < 2^63: no overflow
}

// A labels file's declared size: 8 + n, or 0 for a wrong magic.
uint64_t DeclaredLabelBytes(const uint8_t* h) {
  return BigEndian32(h) == kLabelMagic ? kLabelHeader + BigEndian32(h + 4) : 0;
}

// Checks a labels file's header and length, and that it labels the images file's n images.
Status CheckLabels(const std::string& labels_path, const std::vector<uint8_t>& lab,
                   const std::string& images_path, uint32_t n) {
  if (lab.size() >= 4 && BigEndian32(lab.data()) != kLabelMagic)
    return Status::Corrupt(labels_path + ": not an IDX label file (magic " +
                           Hex32(BigEndian32(lab.data())) + ")");
  if (lab.size() < 8)
    return Status::Corrupt(labels_path + ": truncated: expected an 8-byte IDX header, found " +
                           std::to_string(lab.size()) + " bytes");
  const uint32_t n_labels = BigEndian32(lab.data() + 4);
  if (lab.size() - 8 < n_labels)
    return Status::Corrupt(labels_path + ": truncated: expected " + std::to_string(n_labels) +
                           " bytes of labels, found " + std::to_string(lab.size() - 8));
  if (lab.size() - 8 > n_labels)
    return Status::Corrupt(labels_path + ": expected " + std::to_string(n_labels) +
                           " bytes of labels, found " + std::to_string(lab.size() - 8) +
                           " (trailing data)");
  if (n_labels != n)
    return Status::Corrupt(images_path + " has " + std::to_string(n) + " images but " +
                           labels_path + " has " + std::to_string(n_labels) + " labels");
  return Status::Ok();
}

class IdxSource final : public Source {
 public:
  IdxSource(std::string where, std::string labels_path, std::vector<uint8_t> pixels, size_t pixel_offset, int rows,
            int cols, std::vector<uint8_t> labels, std::string keys, std::vector<size_t> key_ends,
            std::vector<std::string> classes)
      : where_(std::move(where)),
        labels_path_(std::move(labels_path)),
        pixels_(std::move(pixels)),
        pixel_offset_(pixel_offset),
        rows_(rows),
        cols_(cols),
        labels_(std::move(labels)),
        keys_(std::move(keys)),
        key_ends_(std::move(key_ends)),
        classes_(std::move(classes)) {}

  int64_t size() const override { return int64_t(labels_.size()); }
  int64_t label(int64_t index) const override { return labels_[size_t(index)]; }
  std::string_view key(int64_t index) const override {
    const size_t begin = index == 0 ? 0 : key_ends_[size_t(index) - 1];
    return std::string_view(keys_).substr(begin, key_ends_[size_t(index)] - begin);
  }
  const std::vector<std::string>& classes() const override { return classes_; }

  Status Read(int64_t index, Sample* sample) const override {
    if (index < 0 || index >= size())
      return Status::InvalidArgument("idx " + where_ + ": sample index " + std::to_string(index) +
                                     " out of range [0, " + std::to_string(size()) + ")");
    const size_t bytes = size_t(rows_) * size_t(cols_);
    sample->encoded.clear();
    sample->image.Reshape(rows_, cols_, 1);
    std::memcpy(sample->image.data(), pixels_.data() + pixel_offset_ + size_t(index) * bytes, bytes);
    sample->index = index;
    sample->label = labels_[size_t(index)];
    sample->source = key(index);
    return Status::Ok();
  }

  std::string Describe() const override {
    return "idx " + where_ + ": " + std::to_string(size()) + " images of " +
           std::to_string(rows_) + "x" + std::to_string(cols_) + ", " +
           std::to_string(classes_.size()) + " classes";
  }

  std::vector<std::string> Files() const override { return {where_, labels_path_}; }
  bool in_memory() const override { return true; }

 private:
  std::string where_;  // the images file
  std::string labels_path_;
  std::vector<uint8_t> pixels_;  // the whole (inflated) images file
  size_t pixel_offset_;          // where the pixels start in pixels_
  int rows_, cols_;
  std::vector<uint8_t> labels_;  // one per sample (header stripped)
  std::string keys_;             // all keys, back to back
  std::vector<size_t> key_ends_;
  std::vector<std::string> classes_;
};

}  // namespace

Result<std::unique_ptr<Source>> OpenIdx(const SourceOptions& options) {
  const std::string images_name =
      options.images.empty() ? "train-images-idx3-ubyte.gz" : options.images;
  const std::string labels_name =
      options.labels.empty() ? "train-labels-idx1-ubyte.gz" : options.labels;
  const std::string images_path = JoinPath(options.root, images_name);
  const std::string labels_path = JoinPath(options.root, labels_name);

  // --- images ---
  std::vector<uint8_t> img;
  FLOWFEED_RETURN_IF_ERROR(ReadMaybeGzip(images_path, kImageHeader, DeclaredImageBytes, &img));
  if (img.size() < kImageHeader) {
    if (img.size() >= 4 && BigEndian32(img.data()) != kImageMagic)
      return Status::Corrupt(images_path + ": not an IDX image file (magic " +
                             Hex32(BigEndian32(img.data())) + ")");
    return Status::Corrupt(images_path + ": truncated: expected a 16-byte IDX header, found " +
                           std::to_string(img.size()) + " bytes");
  }
  const uint32_t magic = BigEndian32(img.data());
  if (magic != kImageMagic)
    return Status::Corrupt(images_path + ": not an IDX image file (magic " + Hex32(magic) + ")");
  const uint32_t n = BigEndian32(img.data() + 4);
  const uint32_t rows = BigEndian32(img.data() + 8);
  const uint32_t cols = BigEndian32(img.data() + 12);
  if (DeclaredImageBytes(img.data()) == 0)
    return Status::Corrupt(images_path + ": bad IDX dimensions " + std::to_string(n) + " x " +
                           std::to_string(rows) + " x " + std::to_string(cols));
  const uint64_t want_pixels = uint64_t(n) * rows * cols;  // < 2^63: no overflow
  const uint64_t have_pixels = img.size() - kImageHeader;
  if (have_pixels < want_pixels)
    return Status::Corrupt(images_path + ": truncated: expected " + std::to_string(want_pixels) +
                           " bytes of pixels, found " + std::to_string(have_pixels));
  if (have_pixels > want_pixels)
    return Status::Corrupt(images_path + ": expected " + std::to_string(want_pixels) +
                           " bytes of pixels, found " + std::to_string(have_pixels) +
                           " (trailing data)");

  // --- labels ---
  std::vector<uint8_t> lab;
  FLOWFEED_RETURN_IF_ERROR(ReadMaybeGzip(labels_path, kLabelHeader, DeclaredLabelBytes, &lab));
  FLOWFEED_RETURN_IF_ERROR(CheckLabels(labels_path, lab, images_path, n));

  // --- the samples in use ---
  size_t count = n;
  if (options.limit > 0 && uint64_t(options.limit) < count) count = size_t(options.limit);
  // Classes come from all labels, so that `limit` does not change the number of classes.
  int max_label = -1;
  for (size_t i = 0; i < n; ++i) max_label = std::max(max_label, int(lab[8 + i]));
  std::vector<uint8_t> labels(lab.begin() + 8, lab.begin() + 8 + std::ptrdiff_t(count));
  lab = {};
  std::vector<std::string> classes;
  for (int c = 0; c <= max_label; ++c) classes.push_back(std::to_string(c));

  const std::string key_base = BaseName(images_name);
  std::string keys;
  keys.reserve(count * (key_base.size() + 8));
  std::vector<size_t> key_ends;
  key_ends.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    keys += key_base;
    keys += '[';
    keys += std::to_string(i);
    keys += ']';
    key_ends.push_back(keys.size());
  }
  if (count < n) {
    img.resize(16 + count * size_t(rows) * cols);
    img.shrink_to_fit();
  }
  return std::unique_ptr<Source>(new IdxSource(images_path, labels_path, std::move(img), 16, int(rows),
                                               int(cols), std::move(labels), std::move(keys),
                                               std::move(key_ends), std::move(classes)));
}

}  // namespace flowfeed
