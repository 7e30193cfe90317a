// pipeline/plan.cc: where the cache sits and what it keeps, what it depends on, and which
// steps are fused (plan.h). Runs once, at Pipeline::Open, on the opening thread.
#include "pipeline/plan.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include "cache/format.h"
#include "codec/codec.h"
#include "flowfeed/source_registry.h"
#include "pipeline/cache_choice.h"
#include "flowfeed/util/clock.h"
#include "flowfeed/util/file.h"

namespace flowfeed {
namespace {

// Whether a stored fingerprint names the same contents, leaving out the fusion note (added
// after placement, and implied by the stages).
bool SameContents(const CacheFingerprint& a, const CacheFingerprint& b) {
  auto strip = [](const CacheFingerprint& f) {
    std::vector<std::pair<std::string, std::string>> parts;
    for (const auto& p : f.parts)
      if (p.first != "fused") parts.push_back(p);
    return parts;
  };
  return strip(a) == strip(b);
}

// The probe's images live in mappings of their own, given back when the samples go. Freed
// through malloc, blocks this large would raise glibc's dynamic mmap threshold for the whole
// run, and the pipeline's per-sample buffers would then come from, and fragment, the heap
// (measured: +40 MiB of peak RSS beside a 128 MiB cache). Only the pages an image touches are
// resident.
void MapProbeImages(Sample* s, Sample* f) {
  for (Image* img : {&s->image, &s->scratch, &f->image, &f->scratch}) {
    const size_t size = size_t(64) << 20;
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) continue;
    *img = Image::Wrap(std::shared_ptr<uint8_t[]>(static_cast<uint8_t*>(p),
                                                  [size](uint8_t* q) { ::munmap(q, size); }),
                       size, 0, 0, 0, DType::kUInt8);
  }
}

// One probed sample's figures.
struct ProbeTimes {
  double read = 0, whole = 0, rerun = 0;  // seconds
  size_t file = 0, pixels = 0;            // bytes
};

// Measures the sample at `index` into *out (s: the whole-image run, f: the file hit's rerun);
// false when it cannot be read or a step fails.
bool ProbeSample(const PipelineOptions& options, const Source& source, std::vector<Step>& steps,
                 int stages, const RegionDecoder* decoder, const RegionConsumer* consumer,
                 int64_t index, Sample& s, Sample& f, FreshMemoryProbe& fill, ProbeTimes* out) {
  s.index = f.index = index;
  s.label = f.label = source.label(index);
  s.source = f.source = source.key(index);
  s.encoded.clear();
  s.image.Clear();
  const uint64_t t0 = NowNs();
  if (!source.Read(index, &s).ok() || s.encoded.empty()) return false;
  const uint64_t t1 = NowNs();
  f.encoded = s.encoded;
  const size_t file = s.encoded.size();
  bool ok = true;
  uint64_t t2 = t1, t_rerun = t1, t3 = t1;
  try {
    for (int i = 1; i <= stages && ok; ++i)
      ok = steps[size_t(i)].stage->Process(s, StageContext(options.seed, 0, index, i)).ok();
    t2 = NowNs();
    if (ok) fill.Copy(s.image.data(), s.image.size_bytes());
    t_rerun = NowNs();
    // A file hit: the same steps, the decode fused into the region consumer after it.
    int next = 1;
    if (ok && consumer) {
      RegionPlan plan;
      DecodedRegion region;
      bool done = false;
      ok = decoder->DecodeRegion(f, *consumer, StageContext(options.seed, 0, index, 2), &plan,
                                 &region, &done).ok();
      if (ok && done) {
        next = 2;
        if (stages >= 2) {  // the consumer is cached too: it runs on the region
          ok = consumer->ProcessRegion(f, region, plan).ok();
          next = 3;
        }
      }
    }
    for (int i = next; i <= stages && ok; ++i)
      ok = steps[size_t(i)].stage->Process(f, StageContext(options.seed, 0, index, i)).ok();
    t3 = NowNs();
  } catch (...) {
    ok = false;
  }
  if (!ok) return false;
  out->read = double(t1 - t0) * 1e-9;
  out->whole = double(t2 - t1) * 1e-9;
  out->rerun = double(t3 - t_rerun) * 1e-9;
  out->file = file;
  out->pixels = s.image.size_bytes();
  return true;
}

// Per-sample costs of the cached prefix (cache_choice.h), measured on up to 16 samples spread
// over the dataset: read; the first `stages` steps on the whole image (what filling a pixel
// cache computes); and those steps as a file hit reruns them, with the fused region decode
// where fusion applies. Medians, so one slow first call (a decoder's handle created, a page
// faulted) does not decide.
CacheCosts ProbeCacheCosts(const PipelineOptions& options, const Source& source,
                           std::vector<Step>& steps, int stages) {
  CacheCosts c;
  const int64_t n = source.size();
  const int k = int(std::min<int64_t>(16, n));
  auto* decoder = options.fuse ? dynamic_cast<const RegionDecoder*>(steps[1].stage.get()) : nullptr;
  auto* consumer = decoder && steps.size() > 2
                       ? dynamic_cast<const RegionConsumer*>(steps[2].stage.get())
                       : nullptr;
  std::vector<double> read, whole, rerun;
  double file_bytes = 0, pixel_bytes = 0;
  Sample s, f;
  FreshMemoryProbe fill(size_t(96) << 20);
  MapProbeImages(&s, &f);
  for (int j = 0; j < k; ++j) {
    ProbeTimes t;
    if (!ProbeSample(options, source, steps, stages, decoder, consumer, n * j / k, s, f, fill, &t))
      continue;
    read.push_back(t.read);
    whole.push_back(t.whole);
    rerun.push_back(t.rerun);
    file_bytes += double(t.file);
    pixel_bytes += double(t.pixels);
  }
  if (read.empty()) return c;
  auto median = [](std::vector<double>& v) {
    std::nth_element(v.begin(), v.begin() + ptrdiff_t(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  c.probed = int(read.size());
  c.read_seconds = median(read);
  c.compute_seconds = median(whole);
  c.rerun_seconds = median(rerun);
  c.file_bytes = file_bytes / double(c.probed);
  c.pixel_bytes = pixel_bytes / double(c.probed);
  c.fresh_bytes_per_second = fill.SlowestBytesPerSecond();
  return c;
}

}  // namespace

std::vector<std::string> StageNames(const std::vector<StageSpec>& pipeline) {
  std::vector<std::string> names;
  std::map<std::string, int> count;
  count["read"] = count["batch"] = count["collate"] = count["cache"] = count["cache_fill"] = 1;
  for (const StageSpec& spec : pipeline) {
    std::string name = spec.name.empty() ? spec.type : spec.name;
    if (int n = ++count[name]; n > 1) name += "#" + std::to_string(n);
    names.push_back(name);
  }
  return names;
}

Result<CachePlacement> PlanCache(const PipelineOptions& options, const StageRegistry& registry) {
  CachePlacement plan;
  const std::vector<std::string> names = StageNames(options.pipeline);
  int prefix = 0;  // leading deterministic entries
  while (prefix < int(options.pipeline.size())) {
    const StageInfo* info = registry.Find(options.pipeline[size_t(prefix)].type);
    if (!info || !info->traits.deterministic) break;
    ++prefix;
  }
  int stages = prefix;
  const CacheOptions& c = options.cache;
  if (!c.after.empty()) {
    int found = -1;
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == c.after || options.pipeline[i].name == c.after) found = int(i);
    if (found < 0 && c.after != "read") {
      std::string all = "read";
      for (const auto& n : names) all += ", " + n;
      return Status::InvalidArgument("cache.after: no stage named '" + c.after +
                                     "' (stages: " + all + ")");
    }
    stages = found + 1;  // "read" -> 0
    if (stages > prefix) {
      const std::string& random = names[size_t(prefix)];
      std::string safe = prefix == 0 ? "read" : names[size_t(prefix) - 1];
      if (!c.allow_frozen_augmentation)
        return Status::InvalidArgument(
            "cache.after: '" + c.after + "' comes after the random stage '" + random +
            "': caching there would replay epoch 1's draws of '" + random +
            "' in every epoch. Cache after '" + safe +
            "' (the default), or set cache.allow_frozen_augmentation: true to do it anyway");
      plan.frozen = true;
      plan.note = "the cache sits after the random stage '" + random +
                  "' (allow_frozen_augmentation): its epoch-1 draws are replayed in every epoch";
    }
  }
  plan.stages = stages;
  plan.after = stages == 0 ? "read" : names[size_t(stages) - 1];
  if (c.mode == CacheMode::kOff) {
    plan.note = "cache.mode is off";
    return plan;
  }
  if (stages == 0 && SourceGivesPixels(options.source.type)) {
    plan.note = "nothing to cache: no deterministic stage comes before the first random one, "
                "and the source's pixels are in memory already";
    return plan;
  }
  plan.enabled = true;
  return plan;
}

// "NAME: FILE (N bytes, xxh3 HEX)" for a stage from a plugin file.
Result<std::string> PluginCode(const Step& step) {
  std::vector<uint8_t> bytes;
  const Status read = ReadFile(step.origin, &bytes);
  if (!read.ok())
    return Status::IoError("cache fingerprint: cannot read the plugin of stage '" + step.name +
                           "': " + read.message());
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits(bytes.data(), bytes.size())));
  return step.name + ": " + step.origin + " (" + std::to_string(bytes.size()) + " bytes, xxh3 " +
         hex + ")";
}

Result<CacheFingerprint> PrefixFingerprint(const Source& source, const PipelineOptions& options,
                                           const CachePlacement& plan,
                                           const std::vector<Step>& steps) {
  CacheFingerprint fp;
  fp.parts.emplace_back("format", std::to_string(cache::kFormat));  // the disk store's layout
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  std::vector<std::string> files = source.Files();
  int64_t total = 0;
  for (const std::string& f : files) {
    struct stat sb;
    // A listed file that cannot be stat'd (a dangling symlink) is skipped when read, so nothing
    // cached depends on it: it enters the fingerprint as its error. ctime and inode besides size
    // and mtime: a file replaced by another of the same size, its mtime set back (touch -r,
    // rsync -t, cp -p), has a new ctime, and a new inode unless written in place.
    int64_t meta[4] = {-1, 0, 0, 0};
    if (::stat(f.c_str(), &sb) == 0) {
      meta[0] = int64_t(sb.st_size);
      meta[1] = int64_t(sb.st_mtim.tv_sec) * 1000000000 + sb.st_mtim.tv_nsec;
      meta[2] = int64_t(sb.st_ctim.tv_sec) * 1000000000 + sb.st_ctim.tv_nsec;
      meta[3] = int64_t(sb.st_ino);
    } else {
      meta[1] = errno;
    }
    total += std::max<int64_t>(meta[0], 0);
    XXH3_64bits_update(st, f.data(), f.size() + 1);
    XXH3_64bits_update(st, meta, sizeof meta);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits_digest(st)));
  XXH3_freeState(st);
  fp.parts.emplace_back("listing", options.source.type + ", " + std::to_string(source.size()) +
                                       " samples, " + std::to_string(files.size()) + " files, " +
                                       std::to_string(total) +
                                       " bytes, paths/sizes/mtimes/ctimes/inodes " + hex);
  std::string stages, plugins;
  for (int i = 0; i < plan.stages; ++i) {
    const StageSpec& spec = options.pipeline[size_t(i)];
    stages += (i ? " -> " : "") + spec.type + "(" + spec.params.ToString() + ")";
    const size_t at = size_t(i) + 1;  // steps[0] is read
    if (at < steps.size() && steps[at].origin != "built-in") {
      Result<std::string> code = PluginCode(steps[at]);
      if (!code.ok()) return code.status();
      plugins += (plugins.empty() ? "" : "; ") + code.value();
    }
  }
  fp.parts.emplace_back("stages", stages);
  // Only when a plugin stage is cached, so that caches of built-in stages keep their key.
  if (!plugins.empty()) fp.parts.emplace_back("plugin code", plugins);
  fp.parts.emplace_back("codecs", CodecVersions());
  return fp;
}

int PlanFusion(const PipelineOptions& options, const CachePlacement& placement,
               std::vector<Step>* steps) {
  if (!options.fuse) return 0;
  const int n = int(steps->size());
  const int cached = placement.enabled ? placement.stages : -1;  // last step whose output is kept
  int region_in_cache = 0;
  for (int i = 1; i + 1 < n; ++i) {
    Step& d = (*steps)[size_t(i)];
    Step& c = (*steps)[size_t(i) + 1];
    auto* decoder = dynamic_cast<const RegionDecoder*>(d.stage.get());
    auto* consumer = dynamic_cast<const RegionConsumer*>(c.stage.get());
    // Not where the cache keeps the decoded image itself: that needs the whole image.
    if (!decoder || !consumer || i == cached) continue;
    d.region_decoder = decoder;
    c.region_consumer = consumer;
    if (i + 1 <= cached) region_in_cache = i + 1;
  }
  // The trailing run of flip/normalize after the cache point, with at most one normalize.
  int values = 0;
  for (int i = n - 1; i > std::max(cached, 0); --i) {
    Step& st = (*steps)[size_t(i)];
    auto* fusable = dynamic_cast<const OutputFusable*>(st.stage.get());
    if (!fusable || st.region_consumer) break;
    if (fusable->MapsValues() && ++values > 1) break;
    st.fused_output = fusable;
  }
  return region_in_cache;
}

Status KeepFilesUnderDctScaling(const PipelineOptions& options, const std::vector<Step>& steps,
                                CachePlacement* plan) {
  if (!plan->enabled || plan->stages == 0 || !options.fuse ||
      SourceGivesPixels(options.source.type))
    return Status::Ok();
  const size_t at = size_t(plan->stages);  // steps[0] is read
  auto* decoder = dynamic_cast<const RegionDecoder*>(steps[at].stage.get());
  if (!decoder || !decoder->ScalesInDct() || at + 1 >= steps.size() ||
      !dynamic_cast<const RegionConsumer*>(steps[at + 1].stage.get()))
    return Status::Ok();
  const std::string why = "'" + steps[at].name + "' decodes each crop of '" + steps[at + 1].name +
                          "' at a DCT scale chosen for that crop (dct_scaling: true, fuse: true)";
  if (!options.cache.after.empty())
    return Status::InvalidArgument(
        "cache.after: '" + options.cache.after + "' would keep whole decoded images, but " + why +
        ", so uncached samples would differ from cached ones. Cache after 'read' (the encoded "
        "files), set dct_scaling: false on '" + steps[at].name + "', or set fuse: false");
  plan->stages = 0;
  plan->after = "read";
  plan->decision = "the cache keeps the encoded files: " + why;
  return Status::Ok();
}

// cache.mode says only where the cache lives, not what it keeps: that is decided here.
Status ChooseWhatToKeep(const PipelineOptions& options, const Source& source,
                        std::vector<Step>& steps, CachePlacement* plan) {
  if (!plan->enabled || !options.cache.after.empty() || plan->stages == 0 ||
      source.in_memory() || SourceGivesPixels(options.source.type))
    return Status::Ok();
  // A disk store the last run filled with one of the two keeps being used: choosing anew could
  // flip on a close call and throw away a warm cache.
  const bool on_disk = options.cache.mode == CacheMode::kDisk ||
                       (options.cache.mode == CacheMode::kAuto && !options.cache.path.empty());
  if (on_disk) {
    const CacheFingerprint stored = StoredCacheFingerprint(options.cache.path);
    for (int stages : {0, plan->stages}) {
      CachePlacement candidate = *plan;
      candidate.stages = stages;
      Result<CacheFingerprint> fp = PrefixFingerprint(source, options, candidate, steps);
      if (!stored.parts.empty() && fp.ok() && SameContents(fp.value(), stored)) {
        const char* what = stages == 0 ? "the encoded files" : "decoded pixels";
        plan->decision = std::string("keeping ") + what + ", as the disk cache at " +
                         options.cache.path + " already does";
        if (stages == 0) plan->after = "read";
        plan->stages = stages;
        return Status::Ok();
      }
    }
  }
  const CacheCosts costs = ProbeCacheCosts(options, source, steps, plan->stages);
  const int64_t budget = options.cache.budget_bytes > 0 ? options.cache.budget_bytes
                                                        : PhysicalMemoryBytes() / 4;
  const CacheChoice choice =
      ChooseCacheStore(costs, source.size(), options.epochs - options.start_epoch,
                       options.cache.mode == CacheMode::kDisk ? 0 : budget, on_disk, plan->after);
  plan->decision = choice.reason;
  if (!choice.keep_pixels) {
    plan->stages = 0;
    plan->after = "read";
  }
  return Status::Ok();
}

}  // namespace flowfeed
