// trace_file.cc: TraceFile and ChromeTraceJson (flowfeed/trace_file.h). Each event is
// formatted on its own into a short string; no JSON tree of the whole trace is ever built
// (which tripled the peak memory of a traced run).
#include "flowfeed/trace_file.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "flowfeed/util/file.h"
#include "util/json_text.h"

namespace flowfeed {
namespace {

std::string Micros(uint64_t ns) {
  char b[48];
  std::snprintf(b, sizeof b, "%llu.%03llu", static_cast<unsigned long long>(ns / 1000),
                static_cast<unsigned long long>(ns % 1000));
  return b;
}

// One event's JSON text; a thread_name event first when `e.track` is new to `tids`. Names go
// through DumpJson, so a name that is not UTF-8 keeps its bytes as "\xNN".
void AppendEvent(const TraceEvent& e, uint64_t origin_ns, std::map<std::string, int>* tids,
                 bool* first, std::string* out) {
  auto [it, fresh] = tids->emplace(e.track, int(tids->size()) + 1);
  const std::string tid = std::to_string(it->second);
  const auto quoted = [](const std::string& s) { return DumpJson(nlohmann::json(s)); };
  if (fresh) {
    *out += *first ? "\n" : ",\n";
    *first = false;
    *out += R"({"name":"thread_name","ph":"M","pid":1,"tid":)" + tid + R"(,"args":{"name":)" +
            quoted(e.track) + "}}";
  }
  *out += *first ? "\n" : ",\n";
  *first = false;
  *out += R"({"name":)" + quoted(e.name) + R"(,"ph":"X","pid":1,"tid":)" + tid + R"(,"ts":)" +
          Micros(e.start_ns >= origin_ns ? e.start_ns - origin_ns : 0) + R"(,"dur":)" +
          Micros(e.duration_ns);
  std::string args;
  if (e.epoch > 0) args += R"("epoch":)" + std::to_string(e.epoch);
  if (e.sample >= 0) args += std::string(args.empty() ? "" : ",") + R"("sample":)" +
                             std::to_string(e.sample);
  if (!args.empty()) *out += R"(,"args":{)" + args + "}";
  *out += "}";
}

constexpr const char* kHead = R"({"displayTimeUnit":"ms","traceEvents":[)";
constexpr const char* kTail = "\n]}\n";

}  // namespace

TraceFile::TraceFile(std::string path, uint64_t origin_ns)
    : path_(std::move(path)), origin_ns_(origin_ns) {}

TraceFile::~TraceFile() = default;

Status TraceFile::Open() {
  file_ = std::make_unique<AtomicFile>(nullptr, path_, path_ + ".partial");
  error_ = file_->Open();
  if (error_.ok()) error_ = file_->Append(kHead, std::char_traits<char>::length(kHead));
  return error_;
}

Status TraceFile::Write(const std::string& text) {
  if (!error_.ok()) return error_;
  if (!file_) return error_ = Status::Internal(path_ + ": trace file not open");
  error_ = file_->Append(text.data(), text.size());
  return error_;
}

Status TraceFile::Append(const std::vector<TraceEvent>& events) {
  // Written in pieces of about 1 MiB, so a big batch of spans is never one big string.
  std::string chunk;
  for (const TraceEvent& e : events) {
    AppendEvent(e, origin_ns_, &tids_, &first_, &chunk);
    ++spans_;
    if (chunk.size() >= (1u << 20)) {
      FLOWFEED_RETURN_IF_ERROR(Write(chunk));
      chunk.clear();
    }
  }
  return chunk.empty() ? error_ : Write(chunk);
}

Status TraceFile::Finish() {
  FLOWFEED_RETURN_IF_ERROR(Write(kTail));
  error_ = file_->Commit(Durability::kFileAndDir);
  return error_;
}

std::string ChromeTraceJson(const std::vector<TraceEvent>& events) {
  uint64_t t0 = UINT64_MAX;
  for (const auto& e : events) t0 = std::min(t0, e.start_ns);
  std::map<std::string, int> tids;
  bool first = true;
  std::string out = kHead;
  for (const TraceEvent& e : events) AppendEvent(e, t0, &tids, &first, &out);
  return out + kTail;
}

}  // namespace flowfeed
