// flowfeed/trace_file.h: a Chrome trace (trace-event JSON, what Perfetto and chrome://tracing
// open) written to disk as a run goes.
//
// Spans are appended as they are taken from the run (Pipeline::TakeTrace, Trainer::TakeTrace)
// to PATH.partial, one JSON text line each, so neither the spans nor a JSON tree of them pile up
// in memory. Finish() closes the JSON, syncs the file and renames it to PATH (then syncs the
// folder): PATH only ever holds a whole trace. A run that crashes leaves PATH.partial: every
// span taken before the crash, its JSON lacking the closing "]}".
//
// Times are microseconds from `origin_ns` (a steady-clock time no span starts before: the
// program's start), so that spans appended in any order share one time base. One track per
// TraceEvent::track, named by a thread_name metadata event when it first appears.
//
// Thread-safety: not thread-safe; one thread appends and finishes. Failure: an IoError naming
// the file; after one, Append and Finish keep returning it and PATH is left as it was.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "flowfeed/stats.h"
#include "flowfeed/status.h"

namespace flowfeed {

class AtomicFile;

class TraceFile {
 public:
  TraceFile(std::string path, uint64_t origin_ns);
  ~TraceFile();  // not finished: PATH.partial is removed, PATH untouched
  TraceFile(const TraceFile&) = delete;
  TraceFile& operator=(const TraceFile&) = delete;

  // Creates PATH.partial and writes the JSON's head.
  Status Open();
  // Appends `events` (their order does not matter).
  Status Append(const std::vector<TraceEvent>& events);
  // Closes the JSON and renames it to PATH, durably.
  Status Finish();

  const std::string& path() const { return path_; }
  int64_t spans() const { return spans_; }

 private:
  Status Write(const std::string& text);

  const std::string path_;
  const uint64_t origin_ns_;
  std::unique_ptr<AtomicFile> file_;
  std::map<std::string, int> tids_;
  bool first_ = true;
  int64_t spans_ = 0;
  Status error_;
};

// The events as one trace-event JSON text, times from the earliest event: TraceFile's format,
// in memory (for small traces and tests).
std::string ChromeTraceJson(const std::vector<TraceEvent>& events);

}  // namespace flowfeed
