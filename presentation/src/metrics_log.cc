// metrics_log.cc: the three metrics sinks (TensorBoard event file, JSON Lines, CSV) over one
// buffered file that hands its bytes to the OS at epoch records and every two seconds.
#include "flowfeed/metrics_log.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "flowfeed/util/clock.h"
#include "flowfeed/util/file.h"
#include "tfrecord.h"

namespace flowfeed {
namespace {

constexpr double kFlushEverySeconds = 2.0;

Status MakeFolder(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError(dir + ": cannot make the folder: " + ec.message());
  return Status::Ok();
}

// One output file: appends, flushes to the OS, and remembers its first failure.
class LogFile {
 public:
  ~LogFile() { (void)Close(); }

  // `mode` as fopen's ("ab", "wb").
  Status Open(const std::string& path, const char* mode) {
    path_ = path;
    f_ = std::fopen(path.c_str(), mode);
    if (!f_) return failed_ = ErrnoStatus(path, errno);
    last_flush_ = SteadyClock::now();
    return Status::Ok();
  }

  Status Append(std::string_view bytes, bool flush_now) {
    if (!failed_.ok()) return failed_;
    if (!f_) return failed_ = Status::IoError(path_ + ": not open");
    if (std::fwrite(bytes.data(), 1, bytes.size(), f_) != bytes.size())
      return failed_ = ErrnoStatus(path_, errno ? errno : EIO);
    if (flush_now || SecondsSince(last_flush_) >= kFlushEverySeconds) return Flush();
    return Status::Ok();
  }

  Status Flush() {
    if (!failed_.ok() || !f_) return failed_;
    last_flush_ = SteadyClock::now();
    if (std::fflush(f_) != 0) return failed_ = ErrnoStatus(path_, errno ? errno : EIO);
    return Status::Ok();
  }

  Status Close() {
    if (!f_) return failed_;
    Status st = Flush();
    if (std::fclose(f_) != 0 && st.ok()) st = failed_ = ErrnoStatus(path_, errno ? errno : EIO);
    f_ = nullptr;
    return st;
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  Status failed_;
  SteadyClock::time_point last_flush_;
};

class TensorBoardSink : public MetricsSink {
 public:
  Status Open(const std::string& dir, const Provenance& run) {
    FLOWFEED_RETURN_IF_ERROR(MakeFolder(dir));
    const double now = WallSeconds();
    // TensorBoard's own naming: time, host, pid; the suffix says who wrote it.
    const std::string name = "events.out.tfevents." + std::to_string(int64_t(now)) + "." +
                             (run.host.empty() ? "localhost" : run.host) + "." +
                             std::to_string(::getpid()) + ".flowfeed";
    FLOWFEED_RETURN_IF_ERROR(file_.Open(JoinPath(dir, name), "wb"));
    std::string bytes;
    tfrecord::AppendRecord(tfrecord::FileVersionEvent(now), &bytes);
    return file_.Append(bytes, /*flush_now=*/true);
  }

  Status Write(const MetricsRecord& r) override {
    const bool epoch = r.kind == MetricsRecord::Kind::kEpoch;
    const std::string prefix = std::string(MetricsKindName(r.kind)) + "/";
    std::vector<std::pair<std::string, float>> scalars;
    scalars.reserve(r.values.size());
    for (const auto& [name, value] : r.values) scalars.emplace_back(prefix + name, float(value));
    std::string bytes;
    tfrecord::AppendRecord(
        tfrecord::ScalarsEvent(r.wall_time, epoch ? r.epoch : r.global_step, scalars), &bytes);
    return file_.Append(bytes, epoch);
  }
  Status Flush() override { return file_.Flush(); }
  Status Close() override { return file_.Close(); }
  std::string path() const override { return file_.path(); }

 private:
  LogFile file_;
};

class JsonLinesSink : public MetricsSink {
 public:
  Status Open(const std::string& path, const Provenance& run) {
    const std::string dir = DirName(path);
    if (dir != "." && dir != "/") FLOWFEED_RETURN_IF_ERROR(MakeFolder(dir));
    FLOWFEED_RETURN_IF_ERROR(file_.Open(path, "ab"));
    nlohmann::ordered_json j;
    j["kind"] = "run";
    j["started"] = run.started;
    j["host"] = run.host;
    j["command_line"] = run.command_line;
    j["config"] = run.config_path;
    j["wall_time"] = WallSeconds();
    return file_.Append(Line(j), /*flush_now=*/true);
  }

  Status Write(const MetricsRecord& r) override {
    nlohmann::ordered_json j;
    j["kind"] = MetricsKindName(r.kind);
    j["epoch"] = r.epoch;
    if (r.kind == MetricsRecord::Kind::kStep) j["step"] = r.step;
    j["global_step"] = r.global_step;
    j["wall_time"] = r.wall_time;
    for (const auto& [name, value] : r.values) {
      if (!std::isfinite(value))
        j[name] = nullptr;  // JSON has no NaN or infinity
      else if (value == std::floor(value) && std::fabs(value) < 9e15)
        j[name] = int64_t(value);  // counts read as counts ("samples": 128, not 128.0)
      else
        j[name] = value;
    }
    return file_.Append(Line(j), r.kind == MetricsRecord::Kind::kEpoch);
  }
  Status Flush() override { return file_.Flush(); }
  Status Close() override { return file_.Close(); }
  std::string path() const override { return file_.path(); }

 private:
  // Invalid UTF-8 (a file name in a record) is replaced rather than failing the line.
  static std::string Line(const nlohmann::ordered_json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }

  LogFile file_;
};

// One CSV file per kind, its header taken from the kind's first record.
class CsvSink : public MetricsSink {
 public:
  Status Open(const std::string& dir) {
    FLOWFEED_RETURN_IF_ERROR(MakeFolder(dir));
    dir_ = dir;
    return Status::Ok();
  }

  Status Write(const MetricsRecord& r) override {
    const bool epoch = r.kind == MetricsRecord::Kind::kEpoch;
    Table& t = epoch ? epochs_ : steps_;
    if (!t.failed.ok()) return t.failed;
    std::string header = epoch ? "epoch,global_step,wall_time" : "epoch,step,global_step,wall_time";
    for (const auto& [name, value] : r.values) header += "," + Field(name);
    if (!t.open) FLOWFEED_RETURN_IF_ERROR(t.failed = OpenTable(epoch, header, &t));
    if (header != t.header)
      return t.failed = Status::InvalidArgument(
                 t.file.path() + ": a record's columns (" + header +
                 ") differ from the file's header (" + t.header + ")");
    char buf[64];
    std::string row = std::to_string(r.epoch);
    if (!epoch) row += "," + std::to_string(r.step);
    row += "," + std::to_string(r.global_step);
    std::snprintf(buf, sizeof buf, ",%.3f", r.wall_time);
    row += buf;
    for (const auto& [name, value] : r.values) {
      // The shortest text that reads back as the same double ("0.1", not "0.10000000000000001").
      buf[0] = ',';
      row.append(buf, size_t(std::to_chars(buf + 1, buf + sizeof buf, value).ptr - buf));
    }
    row += "\n";
    return t.failed = t.file.Append(row, epoch);
  }

  Status Flush() override {
    Status a = steps_.open ? steps_.file.Flush() : Status::Ok();
    Status b = epochs_.open ? epochs_.file.Flush() : Status::Ok();
    return a.ok() ? b : a;
  }
  Status Close() override {
    Status a = steps_.file.Close();
    Status b = epochs_.file.Close();
    return a.ok() ? b : a;
  }
  std::string path() const override {
    return JoinPath(dir_, "steps.csv") + ", " + JoinPath(dir_, "epochs.csv");
  }

 private:
  struct Table {
    bool open = false;
    std::string header;
    LogFile file;
    Status failed;
  };

  // A name with a comma or a quote is quoted, as RFC 4180 says.
  static std::string Field(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  }

  // Opens DIR/<kind>s.csv for appending: a new (or empty) file gets the header; an existing one
  // must already have it.
  Status OpenTable(bool epoch, const std::string& header, Table* t) {
    const std::string path = JoinPath(dir_, epoch ? "epochs.csv" : "steps.csv");
    std::string existing;
    const Status read = ReadFile(path, &existing);
    if (!read.ok() && read.code() != StatusCode::kNotFound) return read;
    if (!existing.empty()) {
      const std::string first = existing.substr(0, existing.find('\n'));
      if (first != header)
        return Status::InvalidArgument(path + ": exists with other columns (" + first +
                                       "); this run writes (" + header +
                                       "): give --csv another folder, or move the file away");
    }
    FLOWFEED_RETURN_IF_ERROR(t->file.Open(path, "ab"));
    t->open = true;
    t->header = header;
    // A file cut short by a crash may end mid-row: the next row starts on a line of its own.
    if (!existing.empty() && existing.back() != '\n') return t->file.Append("\n", false);
    if (existing.empty()) return t->file.Append(header + "\n", false);
    return Status::Ok();
  }

  std::string dir_;
  Table steps_, epochs_;
};

}  // namespace

const char* MetricsKindName(MetricsRecord::Kind kind) {
  return kind == MetricsRecord::Kind::kEpoch ? "epoch" : "step";
}

Result<std::unique_ptr<MetricsSink>> OpenTensorBoardLog(const std::string& dir,
                                                        const Provenance& run) {
  auto sink = std::make_unique<TensorBoardSink>();
  FLOWFEED_RETURN_IF_ERROR(sink->Open(dir, run));
  return std::unique_ptr<MetricsSink>(std::move(sink));
}

Result<std::unique_ptr<MetricsSink>> OpenJsonLinesLog(const std::string& path,
                                                      const Provenance& run) {
  auto sink = std::make_unique<JsonLinesSink>();
  FLOWFEED_RETURN_IF_ERROR(sink->Open(path, run));
  return std::unique_ptr<MetricsSink>(std::move(sink));
}

Result<std::unique_ptr<MetricsSink>> OpenCsvLog(const std::string& dir) {
  auto sink = std::make_unique<CsvSink>();
  FLOWFEED_RETURN_IF_ERROR(sink->Open(dir));
  return std::unique_ptr<MetricsSink>(std::move(sink));
}

Status MetricsSinks::Open(const MetricsDestinations& where, const Provenance& run) {
  Close();
  struct Want {
    const std::string& where;
    const char* option;
    Result<std::unique_ptr<MetricsSink>> (*open)(const std::string&, const Provenance&);
  };
  const Want wants[] = {
      {where.tensorboard, "--tensorboard", &OpenTensorBoardLog},
      {where.jsonl, "--jsonl", &OpenJsonLinesLog},
      {where.csv, "--csv",
       [](const std::string& dir, const Provenance&) { return OpenCsvLog(dir); }},
  };
  for (const Want& w : wants) {
    if (w.where.empty()) continue;
    auto sink = w.open(w.where, run);
    if (!sink.ok()) {
      sinks_.clear();
      return Status(sink.status().code(), std::string(w.option) + ": " + sink.status().message());
    }
    sinks_.push_back(std::move(sink.value()));
  }
  return Status::Ok();
}

void MetricsSinks::Drop(size_t i, const Status& error) {
  const std::string path = sinks_[i]->path();
  sinks_.erase(sinks_.begin() + long(i));
  if (on_failure_) on_failure_(path, error);
}

void MetricsSinks::Write(const MetricsRecord& record) {
  for (size_t i = sinks_.size(); i-- > 0;)
    if (Status st = sinks_[i]->Write(record); !st.ok()) Drop(i, st);
}

void MetricsSinks::Close() {
  for (size_t i = sinks_.size(); i-- > 0;)
    if (Status st = sinks_[i]->Close(); !st.ok()) Drop(i, st);
  sinks_.clear();
}

void AppendPipelineEpochValues(const EpochStats& e,
                               std::vector<std::pair<std::string, double>>* values) {
  auto put = [values](std::string name, double v) { values->emplace_back(std::move(name), v); };
  put("pipeline_seconds", e.seconds);
  put("pipeline_samples_per_second", e.samples_per_second);
  put("pipeline_wait_seconds", e.consumer_wait_seconds);
  put("pipeline_wait_share", e.seconds > 0 ? e.consumer_wait_seconds / e.seconds : 0);
  put("cpu_seconds", e.cpu_seconds);
  put("bytes_read", double(e.bytes_read));
  put("skipped", double(e.skipped_count));
  if (e.cache.mode != "off") {
    const int64_t lookups = e.cache.hits + e.cache.misses;
    put("cache_hit_rate", lookups > 0 ? double(e.cache.hits) / double(lookups) : 0);
  }
  for (const StageStats& s : e.stages) put("stage_" + s.name + "_seconds", s.busy_seconds);
}

MetricsRecord PipelineEpochRecord(const EpochStats& e, int64_t global_step) {
  MetricsRecord r;
  r.kind = MetricsRecord::Kind::kEpoch;
  r.epoch = e.epoch;
  r.global_step = global_step;
  r.wall_time = WallSeconds();
  r.values.emplace_back("samples", double(e.samples));
  r.values.emplace_back("batches", double(e.batches));
  AppendPipelineEpochValues(e, &r.values);
  return r;
}

}  // namespace flowfeed
