// flowfeed/options.h: everything a run is configured with, as typed structs.
//
// Defaults are written here, in the struct bodies; a YAML config (config.h) only overrides what
// it names. The config parser guarantees the invariants stated in the comments (ranges, known
// stage types), so code that receives options from LoadConfig() need not check them again; code
// that builds options by hand gets the same checks from Validate() (below) and Pipeline::Open().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flowfeed/batch_memory.h"
#include "flowfeed/image.h"
#include "flowfeed/registry.h"
#include "flowfeed/status.h"

namespace flowfeed {

// Where a value came from, for error messages: "configs/a.yaml:14:9" or "--set batch.size".
struct SourceLocation {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
  std::string ToString() const;
};

enum class OnError { kSkip, kFail };

struct SourceOptions {
  // image_folder: root/<class>/<file>, classes sorted by name (torchvision's ImageFolder).
  // file_list:    a CSV file of `path,label` lines (`list`), paths relative to `root`.
  // idx:          MNIST-format IDX files (`images`, `labels`, gzipped or not) under `root`.
  // tar:          WebDataset-style tar shards (`shards`): members grouped by key (the member
  //               path up to the first '.' of its file name), one image member (an extension
  //               in `extensions`) and one label member (`label_extension`, a decimal class
  //               number) per key.
  std::string type = "image_folder";
  // Relative paths are taken from the current directory, so `--set source.root=DIR` means the
  // same thing in every config.
  std::string root;
  std::string list;    // file_list only
  std::string images;  // idx only; default train-images-idx3-ubyte.gz
  std::string labels;  // idx only; default train-labels-idx1-ubyte.gz
  // tar only: the shard files, relative to `root` when that is set; brace ranges and lists
  // expand: "shard-{000000..000099}.tar", "{train,extra}-{0..3}.tar".
  std::string shards;
  std::string label_extension = "cls";  // tar only
  // tar only: with shuffling, the sampler shuffles the shard order and then the samples within a
  // window of this many (WebDataset's shuffle buffer); 0: a full permutation (random reads).
  int64_t shuffle_buffer = 1000;
  // image_folder only: file name endings that count as images (case-insensitive).
  std::vector<std::string> extensions = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif",
                                         ".tiff"};
  int64_t limit = 0;             // use only the first `limit` samples (0: all)
  OnError on_error = OnError::kSkip;  // for unreadable files
  SourceLocation where;
};

// One entry of `pipeline:`.
struct StageSpec {
  std::string type;    // a registered stage type
  std::string name;    // label in reports; defaults to type (made unique with #2, #3 ...)
  StageParams params;  // checked against the type's schema, defaults filled in
  OnError on_error = OnError::kSkip;
  int concurrency = 0;  // samples this stage processes at once; 0: unlimited (all threads)
  SourceLocation where;
  // "none": the stage runs in this process. "process": in a pool of worker processes
  // (flowfeed-stage-worker) over shared memory, so that a crash or a hang inside it is an error
  // for that one sample (docs/plugins.md, "Isolating a stage"). The pool has `concurrency`
  // workers, or one per pipeline thread when that is 0.
  std::string isolate = "none";
  // isolate: process only: a sample whose stage has not answered within this many milliseconds
  // fails (its worker is killed and replaced).
  int64_t timeout_ms = 10000;
};

enum class CacheMode { kOff, kMemory, kDisk, kAuto };
const char* CacheModeName(CacheMode m);  // "off", "memory", "disk", "auto"

// The first-epoch cache: what the pipeline's deterministic prefix produced, kept so that later
// epochs skip reading, decoding and deterministic preprocessing.
struct CacheOptions {
  // off:    nothing is kept.
  // memory: up to `budget` bytes in memory; samples beyond it are recomputed every epoch.
  // disk:   every sample in a file under `path`, reused by the next run whose fingerprint
  //         (dataset listing, cached stages and parameters, codec versions) matches.
  // auto:   memory up to `budget`, the rest in the file under `path` (memory only without one).
  CacheMode mode = CacheMode::kMemory;
  // Memory budget in bytes; 0: a quarter of physical memory.
  int64_t budget_bytes = 0;
  std::string path;  // folder of the disk cache (created)
  // The stage whose output is cached (its `name`); "": the end of the longest deterministic
  // prefix (read, decode, deterministic stages), which is always safe.
  std::string after;
  // A cache point after a random stage freezes that stage's first-epoch draw for every epoch;
  // refused unless this is true (then reported as a warning).
  bool allow_frozen_augmentation = false;
  // Disk: how often written records are made durable (fsync, then an index segment).
  double commit_seconds = 1.0;
  // Disk: bytes of records waiting for the writer thread; past this, samples are not cached
  // (they are recomputed next epoch) rather than stalling the pipeline.
  int64_t write_queue_bytes = int64_t(256) << 20;
  SourceLocation where;
};

enum class Layout { kNCHW, kNHWC };
const char* LayoutName(Layout l);

struct BatchOptions {
  int size = 64;           // samples per batch, >= 1
  bool drop_last = false;  // drop an epoch's last, smaller batch
  Layout layout = Layout::kNCHW;
  DType dtype = DType::kFloat32;  // uint8 images are scaled to [0,1] only by `normalize`
};

// --- Training (flowfeed train); the pipeline alone (flowfeed bench) ignores these. ---

struct ModelOptions {
  // mlp: flatten -> hidden layers -> classes; cnn: two 3x3 conv blocks for small (28x28) inputs;
  // resnet18: ResNet-18 with the ImageNet stem (7x7/2 conv + max pool) or the CIFAR stem
  // (3x3/1 conv, no pool) for small inputs.
  std::string type = "cnn";
  std::string stem = "imagenet";    // resnet18 only: imagenet | cifar
  std::vector<int> hidden = {256};  // mlp only: widths of the hidden layers
  int num_classes = 0;              // 0: from the data (the source's class count)
};

struct OptimizerOptions {
  std::string type = "sgd";  // sgd | adamw
  double lr = 0.05;
  double momentum = 0.9;     // sgd
  bool nesterov = true;      // sgd
  double weight_decay = 5e-4;
  double beta1 = 0.9, beta2 = 0.999;  // adamw
};

struct ScheduleOptions {
  double warmup_epochs = 0;   // linear warm-up from 0, per step
  std::string type = "cosine";  // cosine | step | constant (after warm-up)
  double min_lr = 0;          // cosine: the floor
  int step_epochs = 30;       // step: multiply by gamma every this many epochs
  double gamma = 0.1;         // step
};

struct EvalOptions {
  bool enabled = false;  // true when the config has an `eval:` section
  SourceOptions source;
  std::vector<StageSpec> pipeline;  // deterministic stages only (no augmentation)
  int batch_size = 0;               // 0: the training batch size
};

struct TrainOptions {
  ModelOptions model;
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
  double label_smoothing = 0;
  EvalOptions eval;
  std::string checkpoint;      // written atomically after every epoch ("": none)
  // Also every this many steps within an epoch (0: at epoch ends only); with the position in
  // the epoch's sample order, so that --resume continues mid-epoch with the very next batch.
  int64_t checkpoint_every = 0;
  // The report lists the dataset index of every sample each epoch trained on (audits of the
  // rank sharding; large for big datasets).
  bool record_indices = false;
  std::string device = "auto";  // auto | cpu | cuda
  // bf16 autocast around the forward pass and the loss (weights, gradients and the optimiser
  // stay float32), on CUDA or the CPU.
  bool amp = false;
  // Weights and inputs of a convolutional model in NHWC memory order: auto | true | false;
  // auto: on CUDA only (tensor cores want NHWC; CPU kernels differ by model).
  std::string channels_last = "auto";
  // cuDNN tries the convolution algorithms for each new shape and keeps the fastest (CUDA only;
  // the choice, and so the last bits of the results, may differ between runs).
  bool cudnn_benchmark = true;
  // A trailing `normalize` stage runs on the device: batches travel as uint8 (a quarter of the
  // float32 bytes, and a uint8 cache) and are normalised after the copy. auto | true | false;
  // auto: on CUDA, where the pipeline allows it (docs/training.md).
  std::string normalize_on_device = "auto";
};

// Data-parallel runs (several processes, one per rank): which part of every epoch this process
// reads, and how the processes reach each other. rank, world_size, local_rank, master_addr and
// master_port come from the environment that torchrun-style launchers set (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT; see ApplyDistributedEnvironment in config.h); the
// config's `distributed:` section sets the rest.
enum class ShardPolicy {
  // Every epoch's permutation covers the whole dataset and is dealt out to the ranks
  // (DistributedSampler): sample i of the epoch goes to rank i % world_size. Each rank sees
  // different samples every epoch, so its first-epoch cache covers about 1/world_size of a later
  // epoch. With the same global batch, the ranks' batches together are exactly the batches a
  // single process would train on.
  kGlobal,
  // The dataset is split between the ranks once (a seeded permutation, or whole shards first for
  // tar sources) and each rank shuffles only its own part every epoch: its first-epoch cache
  // covers every later epoch, at the price of never mixing samples across ranks.
  kStable,
};
const char* ShardPolicyName(ShardPolicy p);  // "global", "stable"

// When the dataset does not divide by world_size: `pad` repeats the epoch's first samples so
// every rank gets ceil(n / world_size) (a few samples count twice, as in DistributedSampler);
// `drop` leaves the last n % world_size samples out of the epoch.
// `all` (not a config value; evaluation uses it) deals every sample out exactly once: the first
// n % world_size ranks get one more.
enum class UnevenPolicy { kPad, kDrop, kAll };
const char* UnevenPolicyName(UnevenPolicy p);  // "pad", "drop", "all"

struct DistributedOptions {
  int rank = 0;         // 0 .. world_size-1
  int world_size = 1;   // >= 1; 1: not distributed
  int local_rank = 0;   // rank among the processes of this host (picks the GPU)
  std::string master_addr = "127.0.0.1";  // where rank 0 serves the rendezvous store
  int master_port = 29500;
  ShardPolicy policy = ShardPolicy::kGlobal;
  UnevenPolicy uneven = UnevenPolicy::kPad;
  std::string backend = "auto";  // auto | gloo | nccl (auto: nccl on CUDA where built, else gloo)
  // How long a collective (or the rendezvous) may wait for the other ranks before the run fails
  // with an error naming the operation; a rank that exits breaks its connections at once.
  double timeout_seconds = 300;
  // Ranks other than 0 also write their report, as report.rank<N>.json next to rank 0's.
  bool rank_reports = false;
  SourceLocation where;
};

// The error budget: how many samples one epoch may skip (on_error: skip) before the run stops
// as a whole, because data that is mostly unreadable (a wrong folder, a broken mount, a format
// the decoder does not know) should fail loudly rather than train on what is left.
struct SkipBudget {
  int64_t count = -1;     // >= 0: at most this many skipped samples per epoch (-1: see fraction)
  double fraction = 0.5;  // when count < 0: at most this share of the epoch's samples (>= 1: none)
  // The largest number of skips an epoch of `epoch_length` samples may have.
  int64_t Limit(int64_t epoch_length) const;
};

// Upper bounds of config values. The config reader and Validate refuse a larger value, naming
// the key, so that no config reaches an allocation or an integer overflow nobody meant: each
// bound sits far above real use and well below where the engine's memory or arithmetic fails
// (docs/config.md lists them with their keys).
inline constexpr int kMaxThreads = 1024;   // threads (the TBB arena; 4 per thread in flight)
inline constexpr int kMaxEpochs = 10000;   // epochs, schedule.step_epochs, warmup_epochs
inline constexpr int kMaxPrefetch = 1024;  // prefetch (batches)
inline constexpr int kMaxBatchSize = 65536;  // batch.size, eval.batch_size
// Samples alive at once: prefetch x batch.size + max_in_flight (for training and for the eval
// pipeline), and max_in_flight and a stage's concurrency alone. Each holds a slot of the
// pipeline's ring and its image buffers.
inline constexpr int kMaxSamplesInFlight = 131072;
inline constexpr int64_t kMaxCacheBytes = int64_t(1) << 50;  // cache.budget, write_queue: 1 PiB
inline constexpr double kMaxSeconds = 7 * 24 * 3600.0;  // commit_seconds, timeout_seconds
inline constexpr int kMaxWidth = 65536;    // model.hidden widths and num_classes
inline constexpr double kMaxRate = 1000;   // optimizer.lr, weight_decay, schedule.min_lr

struct PipelineOptions {
  // --- Affects results ---
  uint64_t seed = 0;   // keys the sampler's permutation and every random stage
  int epochs = 1;      // >= 1
  bool shuffle = true;  // a seeded permutation per epoch; false: dataset order
  SourceOptions source;
  std::vector<StageSpec> pipeline;
  BatchOptions batch;
  CacheOptions cache;
  // Let the engine fuse neighbouring built-in stages. `decode` followed by `random_resized_crop`
  // or `resize` decodes only the rows and columns the crop needs, at a reduced DCT scale (1/2,
  // 1/4, 1/8) when the output size allows: pixels within interpolation tolerance of decoding the
  // whole image, not identical (not used where the cache keeps the decoded image). Trailing
  // `random_horizontal_flip` / `normalize` stages run inside the conversion into the batch:
  // bit-identical. false: every stage is its own pass over whole images.
  bool fuse = true;
  // Config `max_skipped: 100` (a count), `max_skipped: 5%` or `0.05` (a share of the epoch);
  // the default stops a run once more than half of an epoch was skipped.
  SkipBudget max_skipped;

  // --- Affects performance only (never the batches) ---
  int threads = 0;   // TBB arena size; 0: every core
  int prefetch = 4;  // finished batches kept ready ahead of the consumer (>= 1)
  // Samples being worked on beyond the prefetched batches; 0: 4 per thread.
  int max_in_flight = 0;
  // Bytes the samples being worked on may hold at once (their pixel and file buffers); past it
  // new samples wait. A sample larger than this still runs, alone.
  int64_t max_in_flight_bytes = int64_t(4) << 30;
  bool digest = true;  // hash every batch into EpochStats::batch_digest
  // Record spans for a Chrome trace (Pipeline::trace()): every stage of every k-th sample,
  // k chosen so that at most trace_max_events spans are kept.
  bool trace = false;
  int64_t trace_max_events = 200000;
  // Before epoch 1, evict the dataset's files (and the disk cache's) from the OS page cache, so
  // epoch 1 measures real storage reads. For benchmarks (`flowfeed bench --cold`).
  bool cold = false;

  // First epoch to produce (0-based): a resumed run starts where its checkpoint ended, with
  // that epoch's permutation and random draws.
  int start_epoch = 0;
  // Mid-epoch resume: samples of start_epoch's order (EpochOrder) already consumed, and the
  // batches they made; the run continues with exactly the batches an uninterrupted run would
  // have produced next (Batch::end_position and Batch::number give both).
  int64_t start_position = 0;
  int64_t start_batch = 0;

  DistributedOptions distributed;

  TrainOptions train;

  // The config file these options came from ("" when built in code).
  std::string config_path;
  // The config's YAML after the overrides, as text: what the run actually read (the loader sets
  // it; "" when built in code). Reports show it as provenance.resolved_config.
  std::string resolved_config;
  // How the run was started (the CLI's arguments, Python's sys.argv), for the report's
  // provenance; "" when the caller does not say. Not a config key.
  std::string command_line;
  // Where batches are collated (flowfeed/batch_memory.h): null for the heap; the CUDA trainer
  // gives pinned memory. Not a config key.
  std::shared_ptr<BatchAllocator> batch_memory;
};

// Checks `options` as a whole: every key's range or choices (the same tables the config reader
// reads them with, so options from LoadConfig() always pass), Pipeline::Open's rules for a run
// (batch.size, epochs, prefetch >= 1; threads, max_in_flight >= 0; start_epoch in [0, epochs);
// the samples in flight within kMaxSamplesInFlight;
// start_position, start_batch >= 0; distributed rank in [0, world_size)), and the rules between
// keys (file_list needs list, tar needs shards, a disk cache needs a path, nesterov needs
// momentum). A field left at its default always passes. Does not look at stage parameters or
// stage types (they need the registry: Pipeline::Open and the config reader check those).
// InvalidArgument listing every problem, one per line ("batch.size must be >= 1"); thread-safe.
Status Validate(const PipelineOptions& options);

}  // namespace flowfeed
