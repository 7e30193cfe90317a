// flowfeed/stats.h: what the pipeline measured, per epoch and per stage.
//
// Samples are attributed to the epoch they belong to, even when the pipeline prefetches them
// while the consumer is still in the previous epoch. Stage figures are measured around each
// Process() call (and around Source::Read for the "read" stage, the copy into the batch for
// "batch"); busy_seconds adds up over threads, so it can exceed the epoch's wall time.
//
// With a cache, which epoch computes a sample can shift near an epoch boundary: a sample of the
// next epoch, prefetched, may be computed (a miss) before the same sample of this epoch looks it
// up (then a hit, and this epoch runs none of the cached stages on it). So a first epoch may
// show a few hits and a few samples fewer in its cached stages (docs/cache.md). What holds for
// every epoch: cache.hits + cache.misses is its lookups, and the stages up to the cache point
// run on its misses only. The batches do not change (the cached stages being deterministic).
//
// These are plain values, safe to copy and to read from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "flowfeed/cache.h"
#include "flowfeed/status.h"

namespace flowfeed {

struct StageStats {
  std::string name;        // unique in the pipeline: "read", "decode", "resize#2", "batch"
  std::string type;        // stage type ("read" and "batch" for the engine's own steps)
  int64_t count = 0;       // samples processed (including those that failed)
  int64_t errors = 0;      // samples this stage failed
  double busy_seconds = 0;  // summed over threads
  double p50_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;
  int64_t bytes = 0;  // bytes read ("read") or bytes produced (other stages)
  // Samples this stage ran fused (`fuse: true`): for a decoder, those decoded only in the region
  // the next stage needed; for a stage fused into the batch conversion, all of them.
  int64_t fused = 0;
  // Where a fused stage's work is timed ("collate"), "" when it runs as its own pass.
  std::string fused_into;
};

struct SkippedSample {
  int64_t index = -1;
  std::string source;  // path or record name
  std::string stage;   // the stage that failed
  std::string reason;
};

struct EpochCacheStats {
  std::string mode = "off";
  int64_t hits = 0;    // samples that started from the cache
  int64_t misses = 0;  // samples that were read and computed (lookups that found nothing)
  int64_t bytes = 0;   // pixel bytes served from the cache
  // Page faults the fill took (minor faults while copying into the cache): the first touches of
  // fresh memory, which are most of what filling costs. 4 KiB each; 0 when nothing was filled.
  int64_t fill_page_faults = 0;
};

struct EpochStats {
  int epoch = 0;           // 1-based in reports
  double seconds = 0;      // wall time seen by the consumer: from the epoch's start (the end of
                           // the previous epoch, or Open()) to its last batch
  int64_t samples = 0;     // samples delivered in batches
  int64_t batches = 0;
  double samples_per_second = 0;
  double cpu_seconds = 0;            // CPU time of the whole process (all threads, user + system)
                                     // over the same span as `seconds`
  double consumer_wait_seconds = 0;  // time Next() blocked waiting for a batch
  double consumer_wait_p95_ms = 0;   // over this epoch's Next() calls that returned a batch
  double consumer_wait_max_ms = 0;
  int64_t bytes_read = 0;            // bytes the source read from storage (the "read" stage)
  EpochCacheStats cache;
  // Ready batches waiting in the queue when the consumer asked, as (seconds into the epoch,
  // batches); at most 200 points, evenly thinned. queue_mean is over every request.
  std::vector<std::pair<double, int>> queue_occupancy;
  double queue_mean = 0;
  std::vector<StageStats> stages;    // in pipeline order
  std::vector<SkippedSample> skipped;
  int64_t skipped_count = 0;  // == skipped.size(): every skipped sample is listed
  std::string batch_digest;   // XXH3-64 over each sample's XXH3-64 (its bytes in the batch) in
                              // batch order and every batch's labels (hex)
};

// The epoch in progress, so far: what Pipeline::live() and Trainer::live() return for a progress
// line, up to ten times a second, while the workers run. The counters are those EpochStats has
// at the epoch's end (the same stage names, in the same order; the same cache hits and misses,
// stage counts and busy seconds once the epoch's last batch is out), read without stopping
// anyone, so while the epoch runs they are a moment's sums, not one consistent snapshot: a
// stage's count may be a sample ahead of its busy time or of another stage's count.
//
// A plain value, safe to copy and to read from any thread.
struct LiveEpochStats {
  int epoch = 0;        // 1-based; 0 before the consumer first asked for a batch
  double seconds = 0;   // since the epoch started (as EpochStats::seconds); frozen at its end
  int64_t samples = 0;  // delivered to the consumer in this epoch so far (this process only: a
  int64_t batches = 0;  // resumed epoch counts from its resume point)
  std::string cache_mode = "off";  // as EpochCacheStats::mode
  int64_t cache_hits = 0;    // lookups of this epoch's samples so far that found the sample
  int64_t cache_misses = 0;  // and that did not
  struct Stage {
    std::string name;  // as StageStats::name
    double busy_seconds = 0;  // summed over threads
    int64_t count = 0;
  };
  std::vector<Stage> stages;  // in pipeline order, as EpochStats::stages
};

// What produced a run, so that a report can be traced back to it and rerun: the program's version
// and source, the config as resolved, the command, the machine, the time, the libraries that
// decided its pixels and its speed. Filled by Pipeline::Open (and the trainer adds LibTorch).
struct Provenance {
  std::string flowfeed_version;
  std::string git_commit;       // the checkout's HEAD when built ("<sha>-dirty" with edits); ""
  std::string started;          // Pipeline::Open's time, ISO 8601 UTC ("2026-12-05T18:01:02Z")
  std::string host;             // gethostname()
  std::string command_line;     // PipelineOptions::command_line
  std::string config_path;      // "" for options built in code or a Python dict
  std::string resolved_config;  // PipelineOptions::resolved_config
  // (name, version): oneTBB, OpenCV, libjpeg-turbo, zlib, xxHash; LibTorch for training runs.
  std::vector<std::pair<std::string, std::string>> libraries;
};

struct RunStats {
  Provenance provenance;
  std::string source;  // Source::Describe()
  int threads = 0;
  int64_t dataset_size = 0;
  double open_seconds = 0;  // Pipeline::Open: listing, stage construction, graph construction
  int64_t peak_rss_bytes = 0;  // the process's peak resident memory when stats() was called
  // Pixel and file buffers the pipeline keeps for reuse between samples when stats() was called:
  // the ring slots' (each at most 16 MiB a buffer) and the shared pool of larger ones (64 MiB a
  // thread). Buffers of samples being processed, converted samples and batches are not in it.
  int64_t retained_buffer_bytes = 0;
  // The most bytes samples in their workers held at once, as max_in_flight_bytes counts them
  // (docs/config.md): their pixel and file buffers, from start until done.
  int64_t peak_in_flight_bytes = 0;
  int prefetch = 0;         // batches kept ready ahead of the consumer
  int64_t tokens = 0;       // samples alive at once, at most (prefetched batches included)
  std::string cache_mode = "off";
  std::string cache_placement;    // the step whose output is cached ("decode"), "" when off
  std::string cache_note;         // why there is no cache, when there is none
  std::string cache_fingerprint;  // hex
  // What an entry holds: "files" (the encoded file; the cache sits after read) or "pixels" (the
  // output of the stages up to cache_placement); "" when off.
  std::string cache_store;
  std::string cache_decision;  // why, when decided at open (CachePlacement::decision)
  CacheStats cache;               // a snapshot when stats() was called
  double cache_flush_seconds = 0;  // after the last epoch: writing out the disk cache's queue
  std::vector<std::string> warnings;  // e.g. frozen augmentation, disabled disk cache
  std::vector<EpochStats> epochs;  // finished epochs only
};

// One span for a Chrome trace: a stage working on a sample, the consumer waiting, a training
// step's part. Times are steady-clock nanoseconds (the same clock everywhere in flowfeed).
struct TraceEvent {
  std::string name;   // "decode", "wait for batch", "forward"
  std::string track;  // "worker 0", "consumer", "trainer"
  uint64_t start_ns = 0;
  uint64_t duration_ns = 0;
  int epoch = 0;         // 1-based
  int64_t sample = -1;   // dataset index, or -1
};

// ChromeTraceJson and TraceFile (flowfeed/trace_file.h) write them as Chrome trace-event JSON.

// The terminal table printed at an epoch's end.
std::string FormatEpochTable(const EpochStats& epoch);

// One line that says where epoch 1's extra time went, from the stage busy times of epoch 1
// against the mean of epochs 2+: "epoch 1: 3.4x the time of epochs 2+; its extra stage time was
// 71% decode, 18% read (skipped by the cache in epochs 2+)". "" with fewer than two epochs.
std::string FirstEpochVerdict(const RunStats& run);

// The cache's own account, from the stage times: what filling it cost epoch 1 (cache_fill),
// what it saved each later epoch (the read and cached stages that later epochs skipped), and
// whether that paid for itself within the run, with what to change when it did not: "cache
// (pixels, after 'decode'): filling it cost epoch 1 5.77 s of stage time; it saved 1.41 s per
// later epoch (read, decode): it needs 4.1 later epochs to pay for itself, this run had 2; keep
// the files instead (cache.after: read), or run more epochs". "" without a cache.
std::string CacheVerdict(const RunStats& run);

// The JSON report: {"run": {...}, "epochs": [{"epoch": 1, "seconds": ..., "stages": {"decode":
// {"count": ..., "busy_seconds": ..., "p50_ms": ...}, ...}, "skipped": {"count": N, "samples":
// [{"source": ..., "stage": ..., "reason": ...}]}, "batch_digest": "..."}]}, with
// "schema_version" at the top: WriteReportJson(PipelineReportDoc(run)) (flowfeed/report.h).
std::string ReportJson(const RunStats& run);

}  // namespace flowfeed
