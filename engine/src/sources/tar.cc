// sources/tar.cc: WebDataset-style tar shards (OpenTarShards). The brace expansion that names
// them (ExpandBraces) is in sources/braces.cc.
//
// Opening a source reads every shard's headers once, in order, seeking past the image data, and
// keeps an index of (shard, offset, size, label) per sample; Read() then fetches one member's
// bytes with pread() on a descriptor per shard, so that many threads can read at once without
// sharing a file position. The tar parser is our own: shards need only headers and plain members,
// and the formats met in practice (ustar, GNU long names and base-256 sizes, pax path/size
// records) fit in a page of code.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "flowfeed/source.h"
#include "sources/tar.h"
#include "flowfeed/util/file.h"

namespace flowfeed {

namespace {

// ---------------------------------------------------------------- tar headers

constexpr int64_t kBlock = 512;
// Long names and pax records are read into memory; anything larger is a damaged header rather
// than a name.
constexpr int64_t kMaxMetaBytes = int64_t(1) << 20;
// A label member holds a class number; anything larger is not one, and is not read.
constexpr int64_t kMaxLabelBytes = 4096;
// Labels above this are refused: classes() names every label up to the largest.
constexpr int64_t kMaxLabel = (int64_t(1) << 24) - 1;

int64_t RoundUpToBlock(int64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

std::string Lower(std::string s) {
  for (char& c : s) c = AsciiLower(c);
  return s;
}

std::string StripDot(const std::string& ext) {
  return (!ext.empty() && ext[0] == '.') ? ext.substr(1) : ext;
}

// A NUL-terminated (or full-width) header text field.
std::string Field(const uint8_t* p, size_t n) {
  size_t len = 0;
  while (len < n && p[len] != 0) ++len;
  return std::string(reinterpret_cast<const char*>(p), len);
}

// A header name for messages: control bytes would garble the terminal.
std::string Printable(std::string s) {
  for (char& c : s)
    if (uint8_t(c) < 0x20 || uint8_t(c) == 0x7f) c = '?';
  return s;
}

// A numeric header field: octal text (leading spaces, ended by a space or NUL; all NULs is 0),
// or GNU's base-256 when the first byte's high bit is set. Negative values are refused.
bool ParseNumber(const uint8_t* p, size_t n, int64_t* out) {
  if (p[0] & 0x80) {
    if (p[0] != 0x80) return false;  // 0xff: negative
    int64_t v = 0;
    for (size_t i = 1; i < n; ++i) {
      if (v > (std::numeric_limits<int64_t>::max() >> 8)) return false;
      v = (v << 8) | p[i];
    }
    *out = v;
    return true;
  }
  size_t i = 0;
  while (i < n && p[i] == ' ') ++i;
  int64_t v = 0;
  for (; i < n && p[i] != 0 && p[i] != ' '; ++i) {
    if (p[i] < '0' || p[i] > '7') return false;
    if (v > (std::numeric_limits<int64_t>::max() >> 3)) return false;
    v = (v << 3) | (p[i] - '0');
  }
  for (; i < n; ++i)
    if (p[i] != 0 && p[i] != ' ') return false;
  *out = v;
  return true;
}

// POSIX sums the header's bytes as unsigned with the checksum field taken as spaces; some old
// tars summed signed chars, and GNU tar accepts both, so we do too.
bool ChecksumOk(const uint8_t* h) {
  int64_t stored;
  if (!ParseNumber(h + 148, 8, &stored)) return false;
  int64_t unsigned_sum = 0, signed_sum = 0;
  for (int i = 0; i < kBlock; ++i) {
    const uint8_t c = (i >= 148 && i < 156) ? uint8_t(' ') : h[i];
    unsigned_sum += c;
    signed_sum += int8_t(c);
  }
  return stored == unsigned_sum || stored == signed_sum;
}

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}

// Reads up to n bytes at `offset`, retrying short reads; returns the bytes read (fewer only at
// end of file) or -errno.
int64_t PreadFull(int fd, void* buf, size_t n, int64_t offset) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r =
        ::pread(fd, static_cast<uint8_t*>(buf) + done, n - done, off_t(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -int64_t(errno);
    }
    if (r == 0) break;
    done += size_t(r);
  }
  return int64_t(done);
}

// A regular member found by the scan: its full path and where its data lies.
struct Member {
  std::string path;
  int64_t offset;
  int64_t size;
};

// Applies a pax 'x' header's records to the next member's overrides (path, size); other keys say
// nothing we use. Records are "<length> <key>=<value>\n", the length counting the whole record.
// `data` is where the records start in the shard and where() names the header, for messages.
template <typename Where>
Status ParsePaxRecords(const std::vector<uint8_t>& meta, int64_t data, const Where& where,
                       std::string* pax_path, int64_t* pax_size) {
  size_t p = 0;
  while (p < meta.size()) {
    size_t sp = p;
    int64_t len = 0;
    while (sp < meta.size() && meta[sp] >= '0' && meta[sp] <= '9' && len < kMaxMetaBytes)
      len = len * 10 + (meta[sp++] - '0');
    if (sp >= meta.size() || meta[sp] != ' ' || len <= int64_t(sp - p) + 1 ||
        p + size_t(len) > meta.size() || meta[p + size_t(len) - 1] != '\n')
      return Status::Corrupt(where() + ": malformed pax record at byte " +
                             std::to_string(data + int64_t(p)));
    const std::string record(reinterpret_cast<const char*>(meta.data()) + sp + 1,
                             size_t(len) - (sp + 1 - p) - 1);
    const size_t eq = record.find('=');
    if (eq == std::string::npos)
      return Status::Corrupt(where() + ": malformed pax record '" + Printable(record) + "'");
    const std::string key = record.substr(0, eq), value = record.substr(eq + 1);
    if (key == "path") {
      *pax_path = value;
    } else if (key == "size") {
      if (!ParseDecimal(value, pax_size))
        return Status::Corrupt(where() + ": pax size '" + Printable(value) +
                               "' is not a number");
    }
    p += size_t(len);
  }
  return Status::Ok();
}

// Reads one shard's headers in order and calls on_member(const Member&) -> Status for every
// regular file. Long names (GNU 'L'), pax 'x' records (path, size) and the ustar prefix are
// applied; directories, links and other types are stepped over.
template <typename OnMember>
Status ScanShard(const std::string& path, int fd, int64_t file_size, OnMember on_member) {
  uint8_t h[kBlock];
  int64_t pos = 0;
  std::string long_name, pax_path;  // overrides for the next member; empty: none
  int64_t pax_size = -1;
  std::vector<uint8_t> meta;
  for (;;) {
    const int64_t r = PreadFull(fd, h, kBlock, pos);
    if (r < 0) return Status::IoError(ErrnoMessage(path, int(-r)));
    if (r < kBlock)
      return Status::Corrupt(path + ": ends at byte " + std::to_string(pos + r) +
                             " without the end-of-archive block (truncated?)");
    // Writers end with two zero blocks; the first one is the end (as for GNU tar).
    if (AllZero(h, kBlock)) return Status::Ok();

    // Built only for an error: the scan of a large shard passes here for every member.
    auto where = [&] {
      const std::string header_name = Printable(Field(h, 100));
      return path + ": header at byte " + std::to_string(pos) +
             (header_name.empty() ? std::string() : " (member '" + header_name + "')");
    };
    if (!ChecksumOk(h)) return Status::Corrupt(where() + ": bad header checksum (not a tar file?)");
    int64_t size;
    if (!ParseNumber(h + 124, 12, &size)) return Status::Corrupt(where() + ": bad size field");
    const char type = char(h[156]);
    const int64_t data = pos + kBlock;

    if (type == 'L' || type == 'x' || type == 'g' || type == 'K') {
      if (size > kMaxMetaBytes)
        return Status::Corrupt(where() + ": extended header of " + std::to_string(size) +
                               " bytes is too large");
      if (size > file_size - data)
        return Status::Corrupt(where() +
                               ": extended header runs past the end of the file "
                               "(truncated?)");
      if (type == 'L' || type == 'x') {
        meta.resize(size_t(size));
        const int64_t got = PreadFull(fd, meta.data(), meta.size(), data);
        if (got < 0) return Status::IoError(ErrnoMessage(path, int(-got)));
        if (got < size) return Status::Corrupt(where() + ": extended header is truncated");
      }
      if (type == 'L') {
        long_name = Field(meta.data(), meta.size());
      } else if (type == 'x') {
        FLOWFEED_RETURN_IF_ERROR(ParsePaxRecords(meta, data, where, &pax_path, &pax_size));
      }
      // 'g' (pax global) and 'K' (GNU long link name) say nothing we use.
      pos = data + RoundUpToBlock(size);
      continue;
    }

    std::string name;
    if (!pax_path.empty()) {
      name = pax_path;
    } else if (!long_name.empty()) {
      name = long_name;
    } else {
      name = Field(h, 100);
      // Only POSIX ustar has a prefix field; GNU's "ustar  " keeps other data there.
      if (std::memcmp(h + 257, "ustar\0", 6) == 0) {
        const std::string prefix = Field(h + 345, 155);
        if (!prefix.empty()) name = prefix + "/" + name;
      }
    }
    if (pax_size >= 0) size = pax_size;
    long_name.clear();
    pax_path.clear();
    pax_size = -1;

    // Before POSIX, a directory was a '\0' member whose name ends in '/'.
    const bool regular = (type == '0' || type == '\0') && !name.empty() && name.back() != '/';
    // Compared without forming data + size: a pax size record or a base-256 size field can hold
    // up to 2^63 - 1, and the sum overflowed (found with fuzz/fuzz_tar.cc). data <= file_size,
    // as a whole header block was read before it.
    if (size > file_size - data)
      return Status::Corrupt(path + ": member '" + Printable(name) + "' is truncated: its " +
                             std::to_string(size) + " bytes at byte " + std::to_string(data) +
                             " run past the end of the file (" + std::to_string(file_size) +
                             " bytes)");
    if (regular) FLOWFEED_RETURN_IF_ERROR(on_member(Member{std::move(name), data, size}));
    pos = data + RoundUpToBlock(size);
  }
}

// Parses a label member's text: a non-negative decimal, surrounding whitespace allowed.
bool ParseLabelText(const std::vector<uint8_t>& bytes, int64_t* out) {
  size_t b = 0, e = bytes.size();
  auto space = [](uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (b < e && space(bytes[b])) ++b;
  while (e > b && space(bytes[e - 1])) --e;
  return ParseDecimal(std::string(bytes.begin() + b, bytes.begin() + e), out);
}

// ---------------------------------------------------------------- the source

class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  UniqueFd& operator=(UniqueFd&&) = delete;
  UniqueFd(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

struct TarEntry {
  int64_t offset;  // of the image member's data in its shard
  int64_t size;
  int64_t label;
  int32_t shard;
};

class TarSource final : public Source {
 public:
  TarSource(std::string where, std::vector<std::string> shard_paths, std::vector<UniqueFd> fds,
            std::vector<TarEntry> entries, std::string keys, std::vector<size_t> key_begin,
            std::vector<std::string> classes)
      : where_(std::move(where)),
        shard_paths_(std::move(shard_paths)),
        fds_(std::move(fds)),
        entries_(std::move(entries)),
        keys_(std::move(keys)),
        key_begin_(std::move(key_begin)),
        classes_(std::move(classes)) {}

  int64_t size() const override { return int64_t(entries_.size()); }
  int64_t label(int64_t index) const override { return entries_[size_t(index)].label; }
  std::string_view key(int64_t index) const override {
    const size_t b = key_begin_[size_t(index)];
    return std::string_view(keys_).substr(b, key_begin_[size_t(index) + 1] - b);
  }
  const std::vector<std::string>& classes() const override { return classes_; }
  int64_t num_shards() const override { return int64_t(shard_paths_.size()); }
  int64_t shard(int64_t index) const override { return entries_[size_t(index)].shard; }

  Status Read(int64_t index, Sample* sample) const override {
    if (index < 0 || index >= size())
      return Status::InvalidArgument("tar shards " + where_ + ": sample index " +
                                     std::to_string(index) + " out of range [0, " +
                                     std::to_string(size()) + ")");
    const TarEntry& e = entries_[size_t(index)];
    sample->image.Clear();
    sample->index = index;
    sample->label = e.label;
    sample->source = key(index);
    sample->encoded.resize(size_t(e.size));
    const int64_t got =
        PreadFull(fds_[size_t(e.shard)].get(), sample->encoded.data(), size_t(e.size), e.offset);
    if (got == e.size) return Status::Ok();
    const std::string what = shard_paths_[size_t(e.shard)] + ": member '" + MemberName(index) + "'";
    if (got < 0) {
      sample->encoded.clear();
      return Status::IoError(what + ": " + std::strerror(int(-got)));
    }
    sample->encoded.resize(size_t(got));
    return Status::Corrupt(what + ": file ends after " + std::to_string(got) + " of " +
                           std::to_string(e.size) + " bytes (shard changed since it was opened?)");
  }

  std::vector<std::string> Files() const override { return shard_paths_; }

  std::string Describe() const override {
    return "tar shards " + where_ + ": " + std::to_string(shard_paths_.size()) + " shards, " +
           std::to_string(entries_.size()) + " samples, " + std::to_string(classes_.size()) +
           " classes";
  }

 private:
  // The key is "<shard path>:<member path>".
  std::string MemberName(int64_t index) const {
    const std::string_view k = key(index);
    return std::string(k.substr(shard_paths_[size_t(entries_[size_t(index)].shard)].size() + 1));
  }

  // Constant after construction, so every method may run on many threads at once.
  const std::string where_;
  const std::vector<std::string> shard_paths_;
  const std::vector<UniqueFd> fds_;  // one per shard, open for the source's lifetime
  const std::vector<TarEntry> entries_;
  // Every key, back to back: one allocation instead of a string per sample (ImageNet has 1.3M).
  const std::string keys_;
  const std::vector<size_t> key_begin_;  // size() + 1 entries
  const std::vector<std::string> classes_;
};

// Groups one shard's members into samples, in file order.
class SampleGrouper {
 public:
  SampleGrouper(const std::string& path, int fd, int32_t shard,
                const std::vector<std::string>& image_exts, const std::string& label_ext,
                std::vector<TarEntry>* entries, std::string* keys, std::vector<size_t>* key_begin)
      : path_(path),
        fd_(fd),
        shard_(shard),
        image_exts_(image_exts),
        label_ext_(label_ext),
        entries_(entries),
        keys_(keys),
        key_begin_(key_begin) {}

  Status Add(const Member& m) {
    const size_t slash = m.path.rfind('/');
    const size_t base = slash == std::string::npos ? 0 : slash + 1;
    // Hidden files (macOS "._x.jpg" resource forks and the like) belong to no sample.
    if (base >= m.path.size() || m.path[base] == '.') return Status::Ok();
    const size_t dot = m.path.find('.', base);
    if (dot == std::string::npos) return Status::Ok();
    std::string key = m.path.substr(0, dot);
    const std::string ext = m.path.substr(dot + 1);

    if (open_ && key != key_) FLOWFEED_RETURN_IF_ERROR(Finish());
    if (!open_) {
      if (finished_.count(key))
        return Status::Corrupt(path_ + ": sample '" + key + "' appears again at member '" + m.path +
                               "' after other samples (a sample's members must be "
                               "adjacent)");
      open_ = true;
      key_ = std::move(key);
    }

    const std::string lower_ext = Lower(ext);
    if (std::find(image_exts_.begin(), image_exts_.end(), lower_ext) != image_exts_.end()) {
      if (has_image_)
        return Status::Corrupt(path_ + ": sample '" + key_ + "' has two image members ('" +
                               image_.path + "' and '" + m.path + "')");
      has_image_ = true;
      image_ = m;
    } else if (ext == label_ext_) {
      if (has_label_)
        return Status::Corrupt(path_ + ": sample '" + key_ + "' has two ." + label_ext_ +
                               " members");
      if (m.size > kMaxLabelBytes)
        return Status::Corrupt(path_ + ": member '" + m.path + "': " + std::to_string(m.size) +
                               " bytes is not a decimal class number");
      label_bytes_.resize(size_t(m.size));
      const int64_t got = PreadFull(fd_, label_bytes_.data(), label_bytes_.size(), m.offset);
      if (got < 0) return Status::IoError(ErrnoMessage(path_, int(-got)));
      if (got < m.size) return Status::Corrupt(path_ + ": member '" + m.path + "' is truncated");
      if (!ParseLabelText(label_bytes_, &label_))
        return Status::Corrupt(path_ + ": member '" + m.path + "': label '" +
                               Printable(std::string(label_bytes_.begin(), label_bytes_.end())) +
                               "' is not a decimal integer");
      if (label_ > kMaxLabel)
        return Status::Corrupt(path_ + ": member '" + m.path + "': label " +
                               std::to_string(label_) + " is too large (max " +
                               std::to_string(kMaxLabel) + ")");
      has_label_ = true;
    }
    return Status::Ok();
  }

  // Ends the last sample; call once after the scan.
  Status Finish() {
    if (!open_) return Status::Ok();
    if (has_image_ && !has_label_)
      return Status::Corrupt(path_ + ": sample '" + key_ + "' has no ." + label_ext_ + " member");
    if (has_label_ && !has_image_) {
      std::string exts;
      for (const auto& e : image_exts_) exts += (exts.empty() ? "." : ", .") + e;
      return Status::Corrupt(path_ + ": sample '" + key_ + "' has a ." + label_ext_ +
                             " member but no image member (extensions: " + exts + ")");
    }
    if (has_image_) {
      entries_->push_back({image_.offset, image_.size, label_, shard_});
      *keys_ += path_;
      *keys_ += ':';
      *keys_ += image_.path;
      key_begin_->push_back(keys_->size());
    }
    finished_.insert(std::move(key_));
    key_.clear();
    open_ = has_image_ = has_label_ = false;
    return Status::Ok();
  }

 private:
  const std::string& path_;
  const int fd_;
  const int32_t shard_;
  const std::vector<std::string>& image_exts_;  // lower case, without the dot
  const std::string& label_ext_;
  std::vector<TarEntry>* entries_;
  std::string* keys_;
  std::vector<size_t>* key_begin_;

  std::unordered_set<std::string> finished_;  // keys of this shard's earlier samples
  bool open_ = false;                         // key_ names the sample being collected
  std::string key_;
  bool has_image_ = false, has_label_ = false;
  Member image_;
  int64_t label_ = -1;
  std::vector<uint8_t> label_bytes_;
};

// "Classes" of a source without names: "0" .. "n-1".
std::vector<std::string> NumberedClasses(int64_t n) {
  std::vector<std::string> out;
  out.reserve(size_t(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) out.push_back(std::to_string(i));
  return out;
}

}  // namespace

Result<std::unique_ptr<Source>> OpenTarShards(const SourceOptions& options) {
  if (options.shards.empty()) return Status::InvalidArgument("source.shards: required for tar");
  const std::string label_ext = StripDot(options.label_extension);
  if (label_ext.empty())
    return Status::InvalidArgument("source.label_extension: must not be empty for tar");
  std::vector<std::string> image_exts;
  for (const auto& e : options.extensions) {
    std::string ext = Lower(StripDot(e));
    if (!ext.empty()) image_exts.push_back(std::move(ext));
  }
  if (image_exts.empty())
    return Status::InvalidArgument("source.extensions: no image extensions for tar");

  auto names = ExpandBraces(options.shards);
  if (!names.ok()) return names.status().WithContext("source.shards");
  std::vector<std::string> paths;
  paths.reserve(names->size());
  for (const std::string& n : *names) paths.push_back(JoinPath(options.root, n));

  std::vector<UniqueFd> fds;
  fds.reserve(paths.size());
  std::vector<TarEntry> entries;
  std::string keys;
  std::vector<size_t> key_begin = {0};
  for (size_t s = 0; s < paths.size(); ++s) {
    const std::string& path = paths[s];
    int fd;
    do {
      // O_NONBLOCK: a FIFO named as a shard is refused below instead of waiting for a writer.
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR)
        return Status::NotFound("source.shards: " + path + " does not exist");
      return Status::IoError("source.shards: " + ErrnoMessage(path, errno));
    }
    fds.emplace_back(fd);
    struct stat st;
    if (::fstat(fd, &st) != 0)
      return Status::IoError("source.shards: " + ErrnoMessage(path, errno));
    if (!S_ISREG(st.st_mode))
      return Status::InvalidArgument("source.shards: " + path + " is not a regular file");
    SampleGrouper grouper(path, fd, int32_t(s), image_exts, label_ext, &entries, &keys, &key_begin);
    FLOWFEED_RETURN_IF_ERROR(
        ScanShard(path, fd, int64_t(st.st_size), [&](const Member& m) { return grouper.Add(m); }));
    FLOWFEED_RETURN_IF_ERROR(grouper.Finish());
  }

  const std::string where = JoinPath(options.root, options.shards);
  if (entries.empty()) {
    std::string exts;
    for (const auto& e : image_exts) exts += (exts.empty() ? "." : ", .") + e;
    return Status::NotFound("source.shards: " + where +
                            ": no samples (an image member with one of " + exts + " and a ." +
                            label_ext + " member per key)");
  }
  // Classes come from every sample, as for file lists, so `limit` does not change their count.
  int64_t max_label = -1;
  for (const TarEntry& e : entries) max_label = std::max(max_label, e.label);
  if (options.limit > 0 && int64_t(entries.size()) > options.limit) {
    entries.resize(size_t(options.limit));
    key_begin.resize(size_t(options.limit) + 1);
    keys.resize(key_begin.back());
    keys.shrink_to_fit();
  }
  return std::unique_ptr<Source>(
      new TarSource(where, std::move(paths), std::move(fds), std::move(entries), std::move(keys),
                    std::move(key_begin), NumberedClasses(max_label + 1)));
}

}  // namespace flowfeed
