// dataset.cc: `flowfeed dataset ...`, which makes or locates example datasets.
//
// main.cc calls RunDatasetCommand() (cli.h) with the words after `flowfeed dataset` (e.g.
// {"photos", "--out", "data/photos"}).
// Returns 0 on success, 2 for bad usage, 1 when the work itself failed.
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "cli.h"
#include "flowfeed/photo_dataset.h"
#include "flowfeed/idx_folder.h"
#include "flowfeed/source.h"
#include "flowfeed/shards.h"

namespace flowfeed::cli {

namespace {

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

void PrintUsage(std::ostream& out) {
  const PhotoDatasetOptions d;
  out << "usage: flowfeed dataset <command> [options]\n"
         "\n"
         "commands:\n"
         "  photos --out DIR [options]   make an ImageNet-like image folder from real photos:\n"
         "                               one class per source photo, random crops saved as JPEG\n"
         "      --out DIR        output folder (required; must be missing or empty)\n"
         "      --count N        images in total (default "
      << d.count << ")\n"
      << "      --seed S         random seed; the same seed gives identical files (default "
      << d.seed << ")\n"
      << "      --source DIR     folder searched for .jpg/.jpeg/.png photos\n"
         "                       (default "
      << d.source_dir << ")\n"
      << "      --quality Q      JPEG quality 1..100 (default " << d.quality << ")\n"
      << "      --min-side A     smallest output short side in pixels (default "
      << d.min_short_side << ")\n"
      << "      --max-side B     largest output short side in pixels (default "
      << d.max_short_side << ")\n"
      << "      --val-fraction F also write DIR/train and DIR/val with this share of each\n"
         "                       class in val (default 0: DIR/<class>/...)\n"
         "      --threads T      worker threads (default 0: up to 4)\n"
         "      --overwrite      write into a non-empty DIR (emptied first when an earlier\n"
         "                       `flowfeed dataset photos` made it)\n"
         "  shards --from DIR --out DIR [options]\n"
         "                               write an image folder as WebDataset tar shards\n"
         "      --from DIR       image folder (class folders of images)\n"
         "      --out DIR        output folder (required; must be missing or empty)\n"
         "      --per-shard N    samples per shard (default 1000)\n"
         "      --prefix P       file names P-000000.tar, ... (default shard)\n"
         "      --seed S         order of the samples in the shards (default 0)\n"
         "      --no-shuffle     keep the folder's order (classes stay together)\n"
         "      --overwrite      write into a non-empty DIR\n"
         "  fashion-mnist [--out DIR]    say where the Fashion-MNIST files are; with --out, write\n"
         "                               them as PNG folders DIR/train/<class>/*.png (60,000) and\n"
         "                               DIR/test/<class>/*.png (10,000), once: a complete DIR is\n"
         "                               reused, an interrupted build is redone\n"
         "      --from IDX_DIR   where the four IDX files are (default: Debian's\n"
         "                       /usr/share/datasets/fashion-mnist)\n"
         "      --overwrite      rewrite a complete DIR\n"
         "      --threads T      worker threads (default 0: every core)\n"
         "\n"
         "  --help                       this text\n";
}

int Usage(const std::string& message) {
  std::cerr << "flowfeed dataset: " << message << "\n"
            << "run `flowfeed dataset --help` for usage\n";
  return 2;
}

bool ParseInt64(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size() || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool ParseUInt64(const std::string& s, uint64_t* out) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

bool ParseDouble(const std::string& s, double* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

bool IsHelp(const std::string& a) { return a == "--help" || a == "-h" || a == "help"; }

int RunPhotos(const std::vector<std::string>& args) {
  PhotoDatasetOptions options;
  bool have_out = false;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string flag = args[i];
    std::string value;
    bool has_value = false;
    if (IsHelp(flag)) {
      PrintUsage(std::cout);
      return 0;
    }
    if (flag.rfind("--", 0) == 0) {
      const size_t eq = flag.find('=');
      if (eq != std::string::npos) {
        value = flag.substr(eq + 1);
        flag = flag.substr(0, eq);
        has_value = true;
      }
    }
    if (flag == "--overwrite") {
      if (has_value) return Usage("--overwrite takes no value");
      options.overwrite = true;
      continue;
    }
    const bool known = flag == "--out" || flag == "--count" || flag == "--seed" ||
                       flag == "--source" || flag == "--quality" || flag == "--min-side" ||
                       flag == "--max-side" || flag == "--val-fraction" || flag == "--threads";
    if (!known) {
      if (flag.rfind("-", 0) == 0) return Usage("photos: unknown option " + flag);
      return Usage("photos: unexpected argument '" + flag + "'");
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return Usage("photos: " + flag + " needs a value");
      value = args[++i];
    }
    int64_t n = 0;
    const int64_t kIntMax = std::numeric_limits<int>::max();
    if (flag == "--out") {
      if (value.empty()) return Usage("photos: --out needs a folder");
      options.out_dir = value;
      have_out = true;
    } else if (flag == "--source") {
      if (value.empty()) return Usage("photos: --source needs a folder");
      options.source_dir = value;
    } else if (flag == "--count") {
      if (!ParseInt64(value, 1, kIntMax, &n))
        return Usage("photos: --count must be a positive integer, got '" + value + "'");
      options.count = int(n);
    } else if (flag == "--seed") {
      if (!ParseUInt64(value, &options.seed))
        return Usage("photos: --seed must be a non-negative integer, got '" + value + "'");
    } else if (flag == "--quality") {
      if (!ParseInt64(value, 1, 100, &n))
        return Usage("photos: --quality must be an integer in [1, 100], got '" + value + "'");
      options.quality = int(n);
    } else if (flag == "--min-side") {
      if (!ParseInt64(value, 1, 16384, &n))
        return Usage("photos: --min-side must be an integer in [1, 16384], got '" + value + "'");
      options.min_short_side = int(n);
    } else if (flag == "--max-side") {
      if (!ParseInt64(value, 1, 16384, &n))
        return Usage("photos: --max-side must be an integer in [1, 16384], got '" + value + "'");
      options.max_short_side = int(n);
    } else if (flag == "--val-fraction") {
      double f = 0;
      if (!ParseDouble(value, &f) || !(f >= 0.0 && f < 1.0))
        return Usage("photos: --val-fraction must be a number in [0, 1), got '" + value + "'");
      options.val_fraction = f;
    } else if (flag == "--threads") {
      if (!ParseInt64(value, 0, 256, &n))
        return Usage("photos: --threads must be an integer in [0, 256], got '" + value + "'");
      options.threads = int(n);
    }
  }
  if (!have_out) return Usage("photos: --out DIR is required");
  if (options.min_short_side > options.max_short_side)
    return Usage("photos: --min-side (" + std::to_string(options.min_short_side) +
                 ") is larger than --max-side (" + std::to_string(options.max_short_side) + ")");

  const Status s = BuildPhotoDataset(options, std::cout);
  if (!s.ok()) {
    std::cerr << "flowfeed dataset photos: " << s.ToString() << "\n";
    return 1;
  }
  return 0;
}

int RunShards(const std::vector<std::string>& args) {
  ShardWriterOptions options;
  std::string from;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (IsHelp(flag)) {
      PrintUsage(std::cout);
      return 0;
    }
    if (flag == "--overwrite") {
      options.overwrite = true;
      continue;
    }
    if (flag == "--no-shuffle") {
      options.shuffle = false;
      continue;
    }
    if (flag != "--from" && flag != "--out" && flag != "--per-shard" && flag != "--prefix" &&
        flag != "--seed")
      return Usage("shards: unknown option or argument '" + flag + "'");
    if (i + 1 >= args.size()) return Usage("shards: " + flag + " needs a value");
    const std::string& value = args[++i];
    if (flag == "--from") from = value;
    else if (flag == "--out") options.out_dir = value;
    else if (flag == "--prefix") options.prefix = value;
    else if (flag == "--per-shard") {
      if (!ParseInt64(value, 1, std::numeric_limits<int64_t>::max(), &options.samples_per_shard))
        return Usage("shards: --per-shard must be a positive integer, got '" + value + "'");
    } else if (!ParseUInt64(value, &options.seed)) {
      return Usage("shards: --seed must be a non-negative integer, got '" + value + "'");
    }
  }
  if (from.empty() || options.out_dir.empty()) return Usage("shards: --from DIR and --out DIR are required");
  SourceOptions so;
  so.type = "image_folder";
  so.root = from;
  auto source = OpenImageFolder(so);
  if (!source.ok()) {
    std::cerr << "flowfeed dataset shards: " << source.status().ToString() << "\n";
    return 1;
  }
  std::string pattern;
  const Status s = WriteShards(*source.value(), options, std::cout, &pattern);
  if (!s.ok()) {
    std::cerr << "flowfeed dataset shards: " << s.ToString() << "\n";
    return 1;
  }
  std::cout << "shards: " << options.out_dir << "/" << pattern << " (" << source.value()->size()
            << " samples, " << source.value()->classes().size()
            << " classes); use it as\n  source: {type: tar, root: " << options.out_dir
            << ", shards: '" << pattern << "'}\n";
  return 0;
}

bool IsFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

int RunFashionMnist(const std::vector<std::string>& args) {
  IdxFolderOptions options = FashionMnistFolder(kFashionMnistDir, "");
  for (size_t i = 1; i < args.size(); ++i) {
    std::string flag = args[i], value;
    if (IsHelp(flag)) {
      PrintUsage(std::cout);
      return 0;
    }
    const size_t eq = flag.find('=');
    const bool has_value = flag.rfind("--", 0) == 0 && eq != std::string::npos;
    if (has_value) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    if (flag == "--overwrite" && !has_value) {
      options.overwrite = true;
      continue;
    }
    if (flag != "--out" && flag != "--from" && flag != "--threads")
      return Usage("fashion-mnist: unexpected argument '" + args[i] + "'");
    if (!has_value) {
      if (i + 1 >= args.size()) return Usage("fashion-mnist: " + flag + " needs a value");
      value = args[++i];
    }
    int64_t n = 0;
    if (flag == "--out") {
      if (value.empty()) return Usage("fashion-mnist: --out needs a folder");
      options.out_dir = value;
    } else if (flag == "--from") {
      if (value.empty()) return Usage("fashion-mnist: --from needs a folder");
      options.idx_root = value;
    } else if (!ParseInt64(value, 0, 256, &n)) {
      return Usage("fashion-mnist: --threads must be an integer in [0, 256], got '" + value + "'");
    } else {
      options.threads = int(n);
    }
  }
  if (!options.out_dir.empty()) {
    const Status s = WriteIdxAsImageFolder(options, std::cout);
    if (!s.ok()) {
      std::cerr << "flowfeed dataset fashion-mnist: " << s.ToString() << "\n";
      if (s.code() == StatusCode::kNotFound && options.idx_root == kFashionMnistDir)
        std::cerr << "install Debian's Fashion-MNIST with: apt-get install dataset-fashion-mnist\n";
      return 1;
    }
    return 0;
  }
  const std::string& dir = options.idx_root;
  const char* files[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
  int present = 0;
  std::cout << "Fashion-MNIST: " << dir << "\n";
  for (const char* f : files) {
    const bool ok = IsFile(dir + "/" + f);
    present += ok ? 1 : 0;
    std::cout << "  " << f << (ok ? "  present" : "  MISSING") << "\n";
  }
  if (present == 4) {
    std::cout << "all files present; use them with:\n"
                 "  source: {type: idx, root: "
              << dir
              << "}            # 60000 training images\n"
                 "  source: {type: idx, root: "
              << dir
              << ", images: t10k-images-idx3-ubyte.gz, labels: t10k-labels-idx1-ubyte.gz}\n";
    return 0;
  }
  std::cerr << "Fashion-MNIST is not (completely) installed; install it with\n"
               "  apt-get install dataset-fashion-mnist\n";
  return 1;
}

}  // namespace

int RunDatasetCommand(const std::vector<std::string>& args) {
  if (args.empty()) {
    PrintUsage(std::cerr);
    return 2;
  }
  const std::string& cmd = args[0];
  if (IsHelp(cmd)) {
    PrintUsage(std::cout);
    return 0;
  }
  if (cmd == "photos") return RunPhotos(args);
  if (cmd == "fashion-mnist") return RunFashionMnist(args);
  if (cmd == "shards") return RunShards(args);
  return Usage("unknown command '" + cmd + "' (expected photos or fashion-mnist)");
}

}  // namespace flowfeed::cli
