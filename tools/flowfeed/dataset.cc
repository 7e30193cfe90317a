// dataset.cc: `flowfeed dataset ...`, which makes or locates example datasets: `photos` (an
// ImageNet-like folder cut from real photos), `shards` (an image folder as WebDataset tar
// shards), `fashion-mnist` (Debian's IDX files, located or written as PNG folders).
//
// AddDatasetCommand() (cli.h) registers `dataset` and its three subcommands with their options.
// Exit codes: 0 success, 2 bad usage, 1 when the work itself failed.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "cli.h"
#include "flowfeed/idx_folder.h"
#include "flowfeed/photo_dataset.h"
#include "flowfeed/shards.h"
#include "flowfeed/source.h"

namespace flowfeed::cli {

namespace {

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

int Usage(const std::string& message) {
  std::cerr << "flowfeed dataset: " << message << "\n"
            << "run `flowfeed dataset --help` for usage\n";
  return kExitUsage;
}

// Refuses an empty folder name (`--out ""`), which would otherwise mean the current directory.
const CLI::Validator kFolder(
    [](std::string& value) {
      return value.empty() ? std::string("needs a folder") : std::string();
    },
    "DIR");

// [0, 1): a share of each class, and not all of it (CLI::Range includes its upper end, and
// lets NaN through).
const CLI::Validator kFraction(
    [](std::string& value) {
      char* end = nullptr;
      const double f = std::strtod(value.c_str(), &end);
      const bool ok = !value.empty() && *end == '\0' && f >= 0.0 && f < 1.0;
      return ok ? std::string() : "must be a number in [0, 1), got '" + value + "'";
    },
    "in [0, 1)");

// CLI11 reads "-1", or a number past 2^64 - 1, into an unsigned integer as a wrapped value.
const CLI::Validator kSeed(
    [](std::string& value) {
      errno = 0;
      char* end = nullptr;
      std::strtoull(value.c_str(), &end, 10);
      const bool ok =
          !value.empty() && value[0] >= '0' && value[0] <= '9' && *end == '\0' && errno == 0;
      return ok ? std::string() : "must be a non-negative integer, got '" + value + "'";
    },
    "SEED");

struct DatasetArgs {
  PhotoDatasetOptions photos;
  ShardWriterOptions shards;
  std::string shards_from;
  bool no_shuffle = false;
  IdxFolderOptions fashion = FashionMnistFolder(kFashionMnistDir, "");
  CLI::App *photos_cmd = nullptr, *shards_cmd = nullptr, *fashion_cmd = nullptr;
};

CLI::App* AddPhotos(CLI::App* dataset, PhotoDatasetOptions* o) {
  CLI::App* cmd = dataset->add_subcommand(
      "photos",
      "make an ImageNet-like image folder from real photos: one class per source photo, random "
      "crops saved as JPEG");
  cmd->add_option("--out", o->out_dir, "output folder (must be missing or empty)")
      ->required()
      ->check(kFolder);
  cmd->add_option("--count", o->count, "images in total")
      ->check(CLI::Range(1, INT_MAX))
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed; the same seed gives identical files")
      ->check(kSeed)
      ->capture_default_str();
  cmd->add_option("--source", o->source_dir, "folder searched for .jpg/.jpeg/.png photos")
      ->check(kFolder)
      ->capture_default_str();
  cmd->add_option("--quality", o->quality, "JPEG quality 1..100")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  cmd->add_option("--min-side", o->min_short_side, "smallest output short side in pixels")
      ->check(CLI::Range(1, 16384))
      ->capture_default_str();
  cmd->add_option("--max-side", o->max_short_side, "largest output short side in pixels")
      ->check(CLI::Range(1, 16384))
      ->capture_default_str();
  cmd->add_option("--val-fraction", o->val_fraction,
                  "also write DIR/train and DIR/val with this share of each class in val, in "
                  "[0, 1) (0: DIR/<class>/...)")
      ->check(kFraction)
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "worker threads (0: up to 4)")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  cmd->add_flag("--overwrite", o->overwrite,
                "write into a non-empty DIR (emptied first when an earlier `flowfeed dataset "
                "photos` made it)");
  return cmd;
}

CLI::App* AddShards(CLI::App* dataset, DatasetArgs* a) {
  CLI::App* cmd =
      dataset->add_subcommand("shards", "write an image folder as WebDataset tar shards");
  cmd->add_option("--from", a->shards_from, "image folder (class folders of images)")
      ->required()
      ->check(kFolder);
  cmd->add_option("--out", a->shards.out_dir, "output folder (must be missing or empty)")
      ->required()
      ->check(kFolder);
  cmd->add_option("--per-shard", a->shards.samples_per_shard, "samples per shard")
      ->check(CLI::Range(int64_t(1), INT64_MAX))
      ->capture_default_str();
  cmd->add_option("--prefix", a->shards.prefix, "file names P-000000.tar, ...")
      ->capture_default_str();
  cmd->add_option("--seed", a->shards.seed, "order of the samples in the shards")
      ->check(kSeed)
      ->capture_default_str();
  cmd->add_flag("--no-shuffle", a->no_shuffle, "keep the folder's order (classes stay together)");
  cmd->add_flag("--overwrite", a->shards.overwrite, "write into a non-empty DIR");
  return cmd;
}

CLI::App* AddFashionMnist(CLI::App* dataset, IdxFolderOptions* o) {
  CLI::App* cmd = dataset->add_subcommand(
      "fashion-mnist",
      "say where the Fashion-MNIST files are; with --out, write them as PNG folders "
      "DIR/train/<class>/*.png (60,000) and DIR/test/<class>/*.png (10,000), once: a complete "
      "DIR is reused, an interrupted build is redone");
  cmd->add_option("--out", o->out_dir, "write the PNG folders here")->check(kFolder);
  cmd->add_option("--from", o->idx_root, "where the four IDX files are")
      ->check(kFolder)
      ->capture_default_str();
  cmd->add_flag("--overwrite", o->overwrite, "rewrite a complete DIR");
  cmd->add_option("--threads", o->threads, "worker threads (0: every core)")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  return cmd;
}

int RunPhotos(const PhotoDatasetOptions& options) {
  if (options.min_short_side > options.max_short_side)
    return Usage("photos: --min-side (" + std::to_string(options.min_short_side) +
                 ") is larger than --max-side (" + std::to_string(options.max_short_side) + ")");
  const Status s = BuildPhotoDataset(options, std::cout);
  if (!s.ok()) {
    std::cerr << "flowfeed dataset photos: " << s.ToString() << "\n";
    return kExitRuntime;
  }
  return kExitOk;
}

int RunShards(const std::string& from, const ShardWriterOptions& options) {
  SourceOptions so;
  so.type = "image_folder";
  so.root = from;
  auto source = OpenImageFolder(so);
  if (!source.ok()) {
    std::cerr << "flowfeed dataset shards: " << source.status().ToString() << "\n";
    return kExitRuntime;
  }
  std::string pattern;
  const Status s = WriteShards(*source.value(), options, std::cout, &pattern);
  if (!s.ok()) {
    std::cerr << "flowfeed dataset shards: " << s.ToString() << "\n";
    return kExitRuntime;
  }
  std::cout << "shards: " << options.out_dir << "/" << pattern << " (" << source.value()->size()
            << " samples, " << source.value()->classes().size()
            << " classes); use it as\n  source: {type: tar, root: " << options.out_dir
            << ", shards: '" << pattern << "'}\n";
  return kExitOk;
}

bool IsFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

int RunFashionMnist(const IdxFolderOptions& options) {
  if (!options.out_dir.empty()) {
    const Status s = WriteIdxAsImageFolder(options, std::cout);
    if (!s.ok()) {
      std::cerr << "flowfeed dataset fashion-mnist: " << s.ToString() << "\n";
      if (s.code() == StatusCode::kNotFound && options.idx_root == kFashionMnistDir)
        std::cerr << "install Debian's Fashion-MNIST with: apt-get install dataset-fashion-mnist\n";
      return kExitRuntime;
    }
    return kExitOk;
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
    return kExitOk;
  }
  std::cerr << "Fashion-MNIST is not (completely) installed; install it with\n"
               "  apt-get install dataset-fashion-mnist\n";
  return kExitRuntime;
}

}  // namespace

Subcommand AddDatasetCommand(CLI::App* program) {
  auto args = std::make_shared<DatasetArgs>();
  CLI::App* cmd = program->add_subcommand(
      "dataset",
      "Build datasets from Debian's real data, write tar shards (see: flowfeed dataset "
      "--help)");
  cmd->require_subcommand(1);
  args->photos_cmd = AddPhotos(cmd, &args->photos);
  args->shards_cmd = AddShards(cmd, args.get());
  args->fashion_cmd = AddFashionMnist(cmd, &args->fashion);
  return {cmd, [args] {
            if (*args->photos_cmd) return RunPhotos(args->photos);
            if (*args->shards_cmd) {
              args->shards.shuffle = !args->no_shuffle;
              return RunShards(args->shards_from, args->shards);
            }
            return RunFashionMnist(args->fashion);
          }};
}

}  // namespace flowfeed::cli
