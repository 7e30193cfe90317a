// config/option_table.cc: the rows of every config section (see option_table.h).
//
// Row order is the order of the keys in the reference and the candidate order of "did you mean"
// (the first of equally close keys wins), so new keys go at the end of their section.
#include "config/option_table.h"

#include <climits>

#include "flowfeed/source_registry.h"

namespace flowfeed::config {

// A row's way to its field: a captureless lambda, converted to OptionSpec<S>::Ref.
#define FF_FIELD(member) [](auto& o) -> FieldRef { return &o.member; }
#define FF_SECTION [](auto&) -> FieldRef { return std::monostate{}; }

std::vector<std::string> OptionInfo::ChoiceNames() const {
  std::vector<std::string> names;
  for (const Choice& c : choices) names.push_back(c.name);
  return names;
}

namespace {

const std::vector<Choice> kOnErrorChoices = {{"skip", int(OnError::kSkip)},
                                             {"fail", int(OnError::kFail)}};
const std::vector<Choice> kIsolateChoices = {{"none", 0}, {"process", 1}};
// A week: a bound like every numeric key's (a stage's hang is found long before).
constexpr int64_t kMaxTimeoutMs = int64_t(7) * 24 * 3600 * 1000;

// source.type's values and the types each type-specific key is valid for come from the source
// registry, which describes each type's keys once (sources/registry.cc).
std::vector<Choice> SourceTypeChoices() {
  std::vector<Choice> out;
  // The built-in registry lives for the whole process, so its names may be borrowed.
  for (const SourceInfo* info : BuiltinSources().List()) out.push_back({info->name.c_str(), 0});
  return out;
}

std::string SourceTypesWith(const std::string& key) {
  const std::map<std::string, std::string> owners = BuiltinSources().KeyOwners();
  auto it = owners.find(key);
  return it == owners.end() ? "" : it->second;
}

}  // namespace

template <>
const std::vector<OptionSpec<PipelineOptions>>& Options<PipelineOptions>() {
  using R = OptionSpec<PipelineOptions>;
  static const std::vector<R> rows = {
      R("seed", Kind::kUInt64, FF_FIELD(seed),
        "keys the sampler's permutation and every random stage"),
      R("threads", Kind::kInt, FF_FIELD(threads), "TBB arena size; 0: every core")
          .Min(0)
          .Max(kMaxThreads),
      R("epochs", Kind::kInt, FF_FIELD(epochs), "epochs to run").Min(1).Max(kMaxEpochs),
      R("shuffle", Kind::kBool, FF_FIELD(shuffle),
        "a seeded permutation per epoch; false: dataset order"),
      R("prefetch", Kind::kInt, FF_FIELD(prefetch),
        "finished batches kept ready ahead of the consumer; prefetch x batch.size + "
        "max_in_flight is at most 131072 samples")
          .Min(1)
          .Max(kMaxPrefetch),
      R("max_in_flight", Kind::kInt, FF_FIELD(max_in_flight),
        "samples being worked on besides the prefetched batches; 0: 4 per thread")
          .Min(0)
          .Max(kMaxSamplesInFlight),
      R("max_in_flight_bytes", Kind::kBytes, FF_FIELD(max_in_flight_bytes),
        "pixel and file bytes the samples being worked on may hold at once; past it new "
        "samples wait (one larger than this runs alone)")
          .Min(int64_t(1) << 20)
          .Max(kMaxCacheBytes),
      R("digest", Kind::kBool, FF_FIELD(digest), "hash every batch into the report's batch_digest"),
      R("fuse", Kind::kBool, FF_FIELD(fuse),
        "fuse built-in stages (region JPEG decode for a following crop/resize; flip/normalize "
        "inside the batch conversion); false: one pass per stage"),
      R("max_skipped", Kind::kSkipBudget, FF_FIELD(max_skipped),
        "error budget per epoch: a count (100) or a share (5%, 0.05); 100%: none"),
      R("source", Kind::kSection, FF_SECTION, "where the samples come from (below)").Required(),
      R("pipeline", Kind::kSection, FF_SECTION,
        "stages in order: a list of `{type: STAGE, PARAM: VALUE ...}` (`flowfeed stages`)"),
      R("batch", Kind::kSection, FF_SECTION, "how samples are collated (below)"),
      R("cache", Kind::kSection, FF_SECTION, "the first-epoch cache (below; docs/cache.md)"),
      R("distributed", Kind::kSection, FF_SECTION, "data-parallel runs (below)"),
      R("model", Kind::kSection, FF_SECTION, "train: the model (below)"),
      R("optimizer", Kind::kSection, FF_SECTION, "train: the optimizer (below)"),
      R("schedule", Kind::kSection, FF_SECTION, "train: the learning-rate schedule (below)"),
      R("loss", Kind::kSection, FF_SECTION, "train: the loss (below)"),
      R("eval", Kind::kSection, FF_SECTION,
        "train: evaluated after every epoch: loss and top-1 accuracy (below)"),
      R("checkpoint", Kind::kString, FF_FIELD(train.checkpoint),
        "train: file written atomically after every epoch; \"\": none")
          .What("a file path"),
      R("checkpoint_every", Kind::kInt, FF_FIELD(train.checkpoint_every),
        "train: also every N steps, with the position in the epoch (mid-epoch resume); "
        "0: at epoch ends only")
          .Min(0)
          .Max(INT_MAX),
      R("record_indices", Kind::kBool, FF_FIELD(train.record_indices),
        "train: the report lists the sample indices each epoch trained on"),
      R("device", Kind::kChoice, FF_FIELD(train.device), "train: where the model runs")
          .Choices({{"auto", 0}, {"cpu", 0}, {"cuda", 0}}),
      R("amp", Kind::kBool, FF_FIELD(train.amp),
        "train: bf16 autocast for the forward pass and loss (CUDA or CPU)"),
      R("channels_last", Kind::kChoice, FF_FIELD(train.channels_last),
        "train: NHWC weights and inputs for convolutional models; auto: on CUDA")
          .Choices({{"auto", 0}, {"true", 0}, {"false", 0}}),
      R("cudnn_benchmark", Kind::kBool, FF_FIELD(train.cudnn_benchmark),
        "train: cuDNN picks the fastest convolution algorithm per shape (CUDA)"),
      R("normalize_on_device", Kind::kChoice, FF_FIELD(train.normalize_on_device),
        "train: a trailing normalize runs on the device, batches travel as uint8; auto: on CUDA "
        "where the pipeline allows")
          .Choices({{"auto", 0}, {"true", 0}, {"false", 0}}),
      R("plugins", Kind::kSection, FF_SECTION,
        "plugin files whose stages the pipeline may use (loaded by `flowfeed` before the rest "
        "is read)"),
  };
  return rows;
}

template <>
const std::vector<OptionSpec<SourceOptions>>& Options<SourceOptions>() {
  using R = OptionSpec<SourceOptions>;
  static const std::vector<R> rows = {
      R("type", Kind::kChoice, FF_FIELD(type), "the kind of dataset (docs: Sources)")
          .Choices(SourceTypeChoices())
          .Required(),
      R("root", Kind::kString, FF_FIELD(root),
        "the dataset folder, relative to the current directory; required except for tar")
          .What("a folder path"),
      R("list", Kind::kString, FF_FIELD(list),
        "a CSV file of `path,label` lines, paths relative to root; required")
          .What("a file path")
          .OnlyWhen(SourceTypesWith("list")),
      R("images", Kind::kString, FF_FIELD(images),
        "the images file (gzipped or plain); \"\": train-images-idx3-ubyte.gz")
          .What("a file path")
          .OnlyWhen(SourceTypesWith("images")),
      R("labels", Kind::kString, FF_FIELD(labels),
        "the labels file; \"\": train-labels-idx1-ubyte.gz")
          .What("a file path")
          .OnlyWhen(SourceTypesWith("labels")),
      R("extensions", Kind::kStringList, FF_FIELD(extensions),
        "file name endings that count as images (case-insensitive)")
          .What("a list of file endings such as [.jpg, .png]")
          .ItemWhat("a file ending such as .jpg")
          .OnlyWhen(SourceTypesWith("extensions")),
      R("limit", Kind::kInt, FF_FIELD(limit), "use only the first N samples; 0: all")
          .Min(0)
          .Max(INT_MAX),
      R("shards", Kind::kString, FF_FIELD(shards),
        "the shard files, relative to root when given; brace ranges and lists expand; required")
          .What("a shard file pattern such as shard-{000000..000099}.tar")
          .OnlyWhen(SourceTypesWith("shards")),
      R("label_extension", Kind::kString, FF_FIELD(label_extension),
        "the member holding a sample's class number")
          .What("a member extension such as cls")
          .OnlyWhen(SourceTypesWith("label_extension")),
      R("shuffle_buffer", Kind::kInt, FF_FIELD(shuffle_buffer),
        "shard order plus a shuffle within a window of this many; 0: a full permutation")
          .Min(0)
          .Max(INT_MAX)
          .OnlyWhen(SourceTypesWith("shuffle_buffer")),
      R("on_error", Kind::kChoice, FF_FIELD(on_error),
        "an unreadable file: skip (named in the report) or fail")
          .Choices(kOnErrorChoices),
  };
  return rows;
}

template <>
const std::vector<OptionSpec<BatchOptions>>& Options<BatchOptions>() {
  using R = OptionSpec<BatchOptions>;
  static const std::vector<R> rows = {
      R("size", Kind::kInt, FF_FIELD(size), "samples per batch").Min(1).Max(kMaxBatchSize),
      R("drop_last", Kind::kBool, FF_FIELD(drop_last), "drop an epoch's last, smaller batch"),
      R("layout", Kind::kChoice, FF_FIELD(layout), "the batch tensor's dimension order")
          .Choices({{"nchw", int(Layout::kNCHW)}, {"nhwc", int(Layout::kNHWC)}}),
      R("dtype", Kind::kChoice, FF_FIELD(dtype),
        "the batch's element type (uint8 pixels are scaled only by `normalize`)")
          .Choices({{"float32", int(DType::kFloat32)}, {"uint8", int(DType::kUInt8)}}),
  };
  return rows;
}

template <>
const std::vector<OptionSpec<CacheOptions>>& Options<CacheOptions>() {
  using R = OptionSpec<CacheOptions>;
  static const std::vector<R> rows = {
      R("mode", Kind::kChoice, FF_FIELD(mode),
        "off; memory up to budget; disk (a store under path); auto: memory, then disk")
          .Choices({{"off", int(CacheMode::kOff)},
                    {"memory", int(CacheMode::kMemory)},
                    {"disk", int(CacheMode::kDisk)},
                    {"auto", int(CacheMode::kAuto)}}),
      R("budget", Kind::kBytes, FF_FIELD(budget_bytes),
        "memory budget: 8GiB, 512MiB, 1.5G, a byte count, or % of RAM; 0: a quarter of RAM")
          .Min(0)
          .Max(kMaxCacheBytes),
      R("path", Kind::kString, FF_FIELD(path),
        "folder of the disk store (created); required for disk, optional for auto")
          .What("a folder path"),
      R("after", Kind::kString, FF_FIELD(after),
        "what is kept: read (the files) or a stage's output; \"\": chosen by the cost model")
          .What("a stage name"),
      R("allow_frozen_augmentation", Kind::kBool, FF_FIELD(allow_frozen_augmentation),
        "allow `after` to name a point after a random stage"),
      R("commit_seconds", Kind::kNumber, FF_FIELD(commit_seconds),
        "disk: how often written records are made durable")
          .Above(0)
          .Max(kMaxSeconds)
          .What("a number of seconds"),
      R("write_queue", Kind::kBytes, FF_FIELD(write_queue_bytes),
        "disk: records waiting to be written, at most; past it samples are not cached")
          .Min(0)
          .Max(kMaxCacheBytes),
  };
  return rows;
}

template <>
const std::vector<OptionSpec<DistributedOptions>>& Options<DistributedOptions>() {
  using R = OptionSpec<DistributedOptions>;
  static const std::vector<R> rows = {
      R("policy", Kind::kChoice, FF_FIELD(policy),
        "global: every epoch dealt out to the ranks; stable: each rank keeps its part")
          .Choices({{"global", int(ShardPolicy::kGlobal)}, {"stable", int(ShardPolicy::kStable)}}),
      R("uneven", Kind::kChoice, FF_FIELD(uneven),
        "a dataset that does not divide by the world size: pad (repeat) or drop")
          .Choices({{"pad", int(UnevenPolicy::kPad)}, {"drop", int(UnevenPolicy::kDrop)}}),
      R("backend", Kind::kChoice, FF_FIELD(backend),
        "collectives; auto: nccl on CUDA where built, else gloo")
          .Choices({{"auto", 0}, {"gloo", 0}, {"nccl", 0}}),
      R("timeout_seconds", Kind::kNumber, FF_FIELD(timeout_seconds),
        "how long a collective may wait for the other ranks")
          .Above(0)
          .Max(kMaxSeconds),
      R("rank_reports", Kind::kBool, FF_FIELD(rank_reports),
        "ranks other than 0 also write `report.rank<N>.json`"),
  };
  return rows;
}

template <>
const std::vector<OptionSpec<ModelOptions>>& Options<ModelOptions>() {
  using R = OptionSpec<ModelOptions>;
  static const std::vector<R> rows = {
      R("type", Kind::kChoice, FF_FIELD(type),
        "mlp; cnn (two conv blocks for 28x28 inputs); resnet18")
          .Choices({{"mlp", 0}, {"cnn", 0}, {"resnet18", 0}}),
      R("stem", Kind::kChoice, FF_FIELD(stem),
        "imagenet (7x7/2 conv + max pool) or cifar (3x3/1 conv, for small inputs)")
          .Choices({{"imagenet", 0}, {"cifar", 0}})
          .OnlyWhen("resnet18"),
      R("hidden", Kind::kIntList, FF_FIELD(hidden), "widths of the hidden layers")
          .Min(1)
          .Max(kMaxWidth)
          .What("a list of layer widths (integers in [1, 65536])")
          .OnlyWhen("mlp"),
      R("num_classes", Kind::kInt, FF_FIELD(num_classes),
        "0: from the data (the source's class count)")
          .Min(0)
          .Max(kMaxWidth),
  };
  return rows;
}

template <>
const std::vector<OptionSpec<OptimizerOptions>>& Options<OptimizerOptions>() {
  using R = OptionSpec<OptimizerOptions>;
  static const std::vector<R> rows = {
      R("type", Kind::kChoice, FF_FIELD(type), "the update rule")
          .Choices({{"sgd", 0}, {"adamw", 0}}),
      R("lr", Kind::kNumber, FF_FIELD(lr), "the peak learning rate").Above(0).Max(kMaxRate),
      R("momentum", Kind::kNumber, FF_FIELD(momentum), "sgd: the velocity's decay")
          .Min(0)
          .Below(1)
          .OnlyWhen("sgd"),
      R("nesterov", Kind::kBool, FF_FIELD(nesterov),
        "needs momentum > 0 (the default gives way to `momentum: 0`)")
          .OnlyWhen("sgd"),
      R("weight_decay", Kind::kNumber, FF_FIELD(weight_decay), "the weights' L2 penalty")
          .Min(0)
          .Max(kMaxRate),
      R("beta1", Kind::kNumber, FF_FIELD(beta1), "adamw: the gradient average's decay")
          .Min(0)
          .Below(1)
          .OnlyWhen("adamw"),
      R("beta2", Kind::kNumber, FF_FIELD(beta2), "adamw: the squared gradient's decay")
          .Min(0)
          .Below(1)
          .OnlyWhen("adamw"),
  };
  return rows;
}

template <>
const std::vector<OptionSpec<ScheduleOptions>>& Options<ScheduleOptions>() {
  using R = OptionSpec<ScheduleOptions>;
  static const std::vector<R> rows = {
      R("warmup_epochs", Kind::kNumber, FF_FIELD(warmup_epochs), "linear warm-up from 0, per step")
          .Min(0)
          .Max(kMaxEpochs),
      R("type", Kind::kChoice, FF_FIELD(type), "after the warm-up")
          .Choices({{"cosine", 0}, {"step", 0}, {"constant", 0}}),
      R("min_lr", Kind::kNumber, FF_FIELD(min_lr), "cosine: the floor").Min(0).Max(kMaxRate),
      R("step_epochs", Kind::kInt, FF_FIELD(step_epochs),
        "step: multiply by gamma every this many epochs")
          .Min(1)
          .Max(kMaxEpochs),
      R("gamma", Kind::kNumber, FF_FIELD(gamma), "step: the factor").Above(0).Max(1),
  };
  return rows;
}

template <>
const std::vector<OptionSpec<TrainOptions>>& Options<TrainOptions>() {
  using R = OptionSpec<TrainOptions>;
  static const std::vector<R> rows = {
      R("label_smoothing", Kind::kNumber, FF_FIELD(label_smoothing),
        "share of the target spread over all classes")
          .Min(0)
          .Below(1),
  };
  return rows;
}

template <>
const std::vector<OptionSpec<EvalOptions>>& Options<EvalOptions>() {
  using R = OptionSpec<EvalOptions>;
  static const std::vector<R> rows = {
      R("source", Kind::kSection, FF_SECTION, "like the top-level `source`").Required(),
      R("pipeline", Kind::kSection, FF_SECTION, "deterministic stages only (no augmentation)"),
      R("batch_size", Kind::kInt, FF_FIELD(batch_size), "0: the training batch size")
          .Min(1)
          .Max(kMaxBatchSize),
  };
  return rows;
}

template <>
const std::vector<OptionSpec<StageSpec>>& Options<StageSpec>() {
  using R = OptionSpec<StageSpec>;
  static const std::vector<R> rows = {
      R("type", Kind::kString, FF_SECTION, "a stage type (`flowfeed stages`)")
          .What("a stage type name")
          .Required(),
      R("name", Kind::kString, FF_FIELD(name),
        "label in reports; \"\": the type, made unique as resize#2")
          .What("a stage name"),
      R("on_error", Kind::kChoice, FF_FIELD(on_error),
        "a sample this stage cannot handle: skip or fail")
          .Choices(kOnErrorChoices),
      R("concurrency", Kind::kInt, FF_FIELD(concurrency),
        "samples this stage runs at once; 0: unlimited")
          .Min(0)
          .Max(kMaxSamplesInFlight),
      R("isolate", Kind::kChoice, FF_FIELD(isolate),
        "none, or process: run in worker processes; a crash or hang fails only that sample")
          .Choices(kIsolateChoices),
      R("timeout_ms", Kind::kInt, FF_FIELD(timeout_ms),
        "isolate: process only: a sample's time limit in the stage, in milliseconds")
          .Min(1)
          .Max(kMaxTimeoutMs),
  };
  return rows;
}

#undef FF_FIELD
#undef FF_SECTION

}  // namespace flowfeed::config
