// shard_writer.cc: WriteShards(), turning any source of encoded files into WebDataset tar shards
// that OpenTarShards() (and GNU tar, and Python's webdataset) read.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "flowfeed/sample.h"
#include "flowfeed/shards.h"
#include "flowfeed/util/file.h"

namespace flowfeed {

namespace {

namespace fs = std::filesystem;

constexpr size_t kBlock = 512;
constexpr size_t kRecord = 10240;  // GNU tar's default record (20 blocks)
constexpr size_t kFlushBytes = size_t(4) << 20;
constexpr int64_t kMaxShards = 1000000;  // shard numbers are 6 digits

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The written order. Written out rather than std::shuffle with a distribution, whose results
// differ between standard libraries: the same seed must give the same shards everywhere.
std::vector<int64_t> WriteOrder(int64_t n, bool shuffle, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  if (!shuffle) return order;
  uint64_t state = seed;
  for (int64_t i = n - 1; i > 0; --i) {
    // Modulo bias is below 2^-40 for any dataset that fits on a disk.
    const int64_t j = int64_t(SplitMix64(&state) % uint64_t(i + 1));
    std::swap(order[size_t(i)], order[size_t(j)]);
  }
  return order;
}

std::string ShardName(const std::string& prefix, int64_t number) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%06lld.tar", static_cast<long long>(number));
  return prefix + buf;
}

// The number of a file named <prefix>-NNNNNN.tar or .<prefix>-NNNNNN.tar.tmp, or -1.
int64_t ShardNumber(const std::string& name, const std::string& prefix) {
  std::string rest;
  if (name.size() > prefix.size() + 1 && name.compare(0, prefix.size(), prefix) == 0) {
    rest = name.substr(prefix.size());
    if (rest.size() != 11 || rest.compare(7, 4, ".tar") != 0) return -1;
  } else if (name.size() > prefix.size() + 2 && name[0] == '.' &&
             name.compare(1, prefix.size(), prefix) == 0) {
    rest = name.substr(prefix.size() + 1);
    if (rest.size() != 15 || rest.compare(7, 8, ".tar.tmp") != 0) return -1;
  } else {
    return -1;
  }
  if (rest[0] != '-') return -1;
  int64_t v = 0;
  for (size_t i = 1; i < 7; ++i) {
    if (rest[i] < '0' || rest[i] > '9') return -1;
    v = v * 10 + (rest[i] - '0');
  }
  return v;
}

// The member extension for a sample: its file's, lower case, "jpg" when it has none.
std::string MemberExtension(std::string_view key) {
  const size_t slash = key.rfind('/');
  const std::string_view base = slash == std::string_view::npos ? key : key.substr(slash + 1);
  const size_t dot = base.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == base.size()) return "jpg";
  std::string ext(base.substr(dot + 1));
  for (char& c : ext)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return ext;
}

// Writes `v` as zero-padded octal filling width-1 bytes, then a NUL (ustar's numeric form).
void PutOctal(uint8_t* field, size_t width, uint64_t v) {
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = uint8_t('0' + (v & 7));
    v >>= 3;
  }
  field[width - 1] = 0;
}

// A ustar header for a regular file. Sizes past ustar's 8 GiB use GNU's base-256 form, which
// GNU tar, bsdtar and our reader accept.
void MakeHeader(const std::string& name, uint64_t size, uint8_t* h) {
  std::memset(h, 0, kBlock);
  std::memcpy(h, name.data(), name.size());
  PutOctal(h + 100, 8, 0644);  // mode
  PutOctal(h + 108, 8, 0);     // uid
  PutOctal(h + 116, 8, 0);     // gid
  if (size < (uint64_t(1) << 33)) {
    PutOctal(h + 124, 12, size);
  } else {
    h[124] = 0x80;
    for (int i = 11; i >= 1; --i, size >>= 8) h[124 + i] = uint8_t(size & 0xff);
  }
  PutOctal(h + 136, 12, 0);  // mtime: fixed, so that the same inputs give the same bytes
  h[156] = '0';
  std::memcpy(h + 257, "ustar", 6);  // with its NUL
  h[263] = '0';
  h[264] = '0';
  PutOctal(h + 329, 8, 0);  // devmajor
  PutOctal(h + 337, 8, 0);  // devminor
  std::memset(h + 148, ' ', 8);
  uint32_t sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += h[i];
  PutOctal(h + 148, 7, sum);  // six digits and a NUL, then the space already there
}

// One shard being written: buffered, under a temporary name until Commit().
class ShardFile {
 public:
  ShardFile(Env* env, std::string tmp, std::string final_path)
      : file_(env, std::move(final_path), std::move(tmp)) {}

  Status Open() { return file_.Open(); }

  Status AddMember(const std::string& name, const uint8_t* data, size_t size) {
    uint8_t h[kBlock];
    MakeHeader(name, size, h);
    buf_.insert(buf_.end(), h, h + kBlock);
    buf_.insert(buf_.end(), data, data + size);
    buf_.resize(buf_.size() + (kBlock - size % kBlock) % kBlock, 0);
    return buf_.size() >= kFlushBytes ? Flush() : Status::Ok();
  }

  // Ends the archive, makes it durable and gives it its final name. The folder is synced once,
  // after the last shard (WriteShards), rather than once per shard: kFile.
  Status Commit() {
    buf_.resize(buf_.size() + 2 * kBlock, 0);
    const uint64_t total = written_ + buf_.size();
    buf_.resize(buf_.size() + (kRecord - total % kRecord) % kRecord, 0);
    FLOWFEED_RETURN_IF_ERROR(Flush());
    return file_.Commit(Durability::kFile);
  }

  uint64_t bytes() const { return written_ + buf_.size(); }

 private:
  Status Flush() {
    FLOWFEED_RETURN_IF_ERROR(file_.Append(buf_.data(), buf_.size()));
    written_ += buf_.size();
    buf_.clear();
    return Status::Ok();
  }

  AtomicFile file_;  // a ShardFile destroyed before Commit() removes its temporary file
  std::vector<uint8_t> buf_;
  uint64_t written_ = 0;
};

// Reads one sample for a shard, refusing what a shard cannot hold.
Status ReadForShard(const Source& source, int64_t index, Sample* sample) {
  FLOWFEED_RETURN_IF_ERROR(source.Read(index, sample));
  if (sample->encoded.empty() && !sample->image.empty())
    return Status::InvalidArgument(source.Describe() +
                                   ": shards hold encoded files, and this source gives decoded "
                                   "pixels (sample " +
                                   std::string(source.key(index)) + ")");
  if (sample->label < 0)
    return Status::InvalidArgument(std::string(source.key(index)) +
                                   ": has no label, and every shard sample needs one");
  return Status::Ok();
}

}  // namespace

Status WriteShards(const Source& source, const ShardWriterOptions& options, std::ostream& log,
                   std::string* pattern) {
  const std::string& out = options.out_dir;
  if (out.empty()) return Status::InvalidArgument("out_dir: required");
  if (options.prefix.empty() || options.prefix.find('/') != std::string::npos ||
      options.prefix[0] == '.')
    return Status::InvalidArgument("prefix: '" + options.prefix +
                                   "' must be a non-empty file name not starting with '.'");
  if (options.samples_per_shard < 1)
    return Status::InvalidArgument("samples_per_shard: must be >= 1, got " +
                                   std::to_string(options.samples_per_shard));
  const int64_t n = source.size();
  if (n == 0) return Status::InvalidArgument(source.Describe() + ": no samples to write");
  const int64_t num_shards = (n + options.samples_per_shard - 1) / options.samples_per_shard;
  if (num_shards > kMaxShards)
    return Status::InvalidArgument(
        "samples_per_shard: " + std::to_string(options.samples_per_shard) + " makes " +
        std::to_string(num_shards) + " shards (max " + std::to_string(kMaxShards) + ")");

  const std::vector<int64_t> order = WriteOrder(n, options.shuffle, options.seed);
  // One sample first, so that a source of pixels fails before anything is created.
  Sample sample;
  FLOWFEED_RETURN_IF_ERROR(ReadForShard(source, order[0], &sample));

  std::error_code ec;
  if (fs::exists(out, ec)) {
    if (!fs::is_directory(out, ec))
      return Status::InvalidArgument("out_dir: " + out + " exists and is not a directory");
    const bool empty = fs::is_empty(out, ec);
    if (ec) return Status::IoError("out_dir: " + out + ": " + ec.message());
    if (!empty && !options.overwrite)
      return Status::InvalidArgument("out_dir: " + out +
                                     " exists and is not empty (set overwrite to write into it)");
  } else {
    fs::create_directories(out, ec);
    if (ec) return Status::IoError("out_dir: " + out + ": " + ec.message());
  }

  Env* const env = Env::Default();
  for (int64_t s = 0; s < num_shards; ++s) {
    const std::string name = ShardName(options.prefix, s);
    const std::string path = out + "/" + name;
    ShardFile file(env, out + "/." + name + ".tmp", path);
    FLOWFEED_RETURN_IF_ERROR(file.Open());
    const int64_t begin = s * options.samples_per_shard;
    const int64_t end = std::min(n, begin + options.samples_per_shard);
    for (int64_t k = begin; k < end; ++k) {
      if (k > 0) FLOWFEED_RETURN_IF_ERROR(ReadForShard(source, order[size_t(k)], &sample));
      char key[32];
      std::snprintf(key, sizeof key, "%08lld", static_cast<long long>(k));
      const std::string member =
          std::string(key) + "." + MemberExtension(source.key(order[size_t(k)]));
      if (member.size() > 100)
        return Status::InvalidArgument(std::string(source.key(order[size_t(k)])) +
                                       ": file extension too long for a tar member name");
      FLOWFEED_RETURN_IF_ERROR(
          file.AddMember(member, sample.encoded.data(), sample.encoded.size()));
      const std::string label = std::to_string(sample.label);
      FLOWFEED_RETURN_IF_ERROR(file.AddMember(
          std::string(key) + ".cls", reinterpret_cast<const uint8_t*>(label.data()), label.size()));
    }
    const uint64_t bytes = file.bytes();
    FLOWFEED_RETURN_IF_ERROR(file.Commit());
    char mib[32];
    std::snprintf(mib, sizeof mib, "%.1f", double(bytes) / (1 << 20));
    log << "shards: wrote " << path << " (" << (end - begin) << " samples, " << mib << " MiB)"
        << std::endl;
  }

  if (options.overwrite) {
    // Shards of an earlier, larger run would otherwise be picked up by a pattern or glob for
    // this prefix and mix two datasets.
    std::vector<std::string> stale;
    if (DIR* d = ::opendir(out.c_str())) {
      while (struct dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        const int64_t number = ShardNumber(name, options.prefix);
        if (number >= num_shards || (number >= 0 && name[0] == '.')) stale.push_back(name);
      }
      ::closedir(d);
    }
    for (const std::string& name : stale) {
      const std::string path = out + "/" + name;
      errno = 0;
      if (env->Unlink(path) != 0) return Status::IoError(ErrnoMessage(path, errno ? errno : EIO));
      log << "shards: removed stale " << path << std::endl;
    }
  }
  FLOWFEED_RETURN_IF_ERROR(SyncDir(env, out));

  *pattern = num_shards == 1 ? ShardName(options.prefix, 0)
                             : options.prefix + "-{000000.." +
                                   ShardName("", num_shards - 1).substr(1, 6) + "}.tar";
  return Status::Ok();
}

}  // namespace flowfeed
