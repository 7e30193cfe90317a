// outputs.cc: loading a run's config and writing what a run leaves behind (cli.h). Runs on the
// command's main thread.
#include <limits.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <system_error>

#include "cli.h"
#include "flowfeed/report_html.h"
#include "flowfeed/util/clock.h"
#include "flowfeed/util/file.h"
#include "flowfeed/util/strings.h"

namespace flowfeed::cli {

std::string ProgramPath() {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "";
  return std::string(self, size_t(n));
}

std::vector<std::string> ProgramPluginDirs() {
  namespace fs = std::filesystem;
  const std::string program = ProgramPath();
  if (program.empty()) return {};
  const fs::path dir = fs::path(program).parent_path();
  std::vector<std::string> dirs;
  for (const fs::path& d : {dir / "plugins", dir / FLOWFEED_INSTALLED_PLUGIN_DIR}) {
    std::error_code ec;
    // Normalised, so that messages say prefix/lib/... rather than prefix/bin/../lib/...
    if (fs::is_directory(d, ec)) dirs.push_back(d.lexically_normal().string());
  }
  return dirs;
}

bool Load(const std::string& path, const std::vector<std::string>& sets,
          StageRegistry* registry, PipelineOptions* out) {
  auto r = LoadConfigWithPlugins(path, sets, registry, nullptr, nullptr, ProgramPluginDirs());
  if (!r.ok()) {
    std::cerr << "flowfeed: " << r.status().message() << "\n";
    return false;
  }
  *out = std::move(r.value());
  return true;
}

bool LoadRun(const RunArgs& args, StageRegistry* registry, PipelineOptions* out) {
  if (!Load(args.config, args.sets, registry, out)) return false;
  Status env = ApplyDistributedEnvironment(out);
  if (!env.ok()) {
    std::cerr << "flowfeed: " << env.message() << "\n";
    return false;
  }
  if (args.epochs > 0) out->epochs = args.epochs;
  out->cold = args.cold;
  out->trace = !args.trace.empty();
  out->command_line = args.command_line;
  return true;
}

std::string MiB(int64_t bytes) { return Fmt("%.0f MiB", double(bytes) / (1024.0 * 1024.0)); }

void PrintCacheHeader(const RunStats& head, bool cold) {
  if (!head.cache_placement.empty()) {
    std::cerr << "cache: " << head.cache_mode << ", after '" << head.cache_placement
              << "', memory budget " << MiB(head.cache.budget_bytes) << ", fingerprint "
              << head.cache_fingerprint << "\n";
    if (!head.cache_decision.empty()) std::cerr << "cache: " << head.cache_decision << "\n";
  } else {
    std::cerr << "cache: none (" << head.cache_note << ")\n";
  }
  for (const std::string& m : head.cache.messages) std::cerr << "cache: " << m << "\n";
  for (const std::string& w : head.warnings) std::cerr << "warning: " << w << "\n";
  if (cold) std::cerr << "cold: the dataset's files were evicted from the page cache\n";
}

int WriteOutput(const std::string& what, const std::string& path, const std::string& text) {
  // Durable like checkpoints and the cache: a report is what a user compares runs by, and a
  // power cut after "report: PATH" must not leave an empty file under that name.
  const Status s = WriteFileAtomically(nullptr, path, text, Durability::kFileAndDir);
  if (!s.ok()) {
    std::cerr << "flowfeed: cannot write " << what << " " << path << " (" << s.message()
              << ")\n";
    return kExitRuntime;
  }
  std::cerr << what << ": " << path << "\n";
  return kExitOk;
}

int WriteReport(const std::string& json_path, const std::string& html_path,
                const std::string& json, const std::string& label) {
  int code = kExitOk;
  if (!json_path.empty()) code = WriteOutput("report", json_path, json);
  if (!html_path.empty()) {
    auto page = RenderHtmlReport({{label, json_path, json}});
    if (!page.ok()) {
      std::cerr << "flowfeed: " << html_path << ": " << page.status().message() << "\n";
      return kExitRuntime;
    }
    if (WriteOutput("html report", html_path, page.value()) != kExitOk) code = kExitRuntime;
  }
  return code;
}

std::string RunLabel(const std::string& config) {
  size_t slash = config.find_last_of('/');
  std::string base = slash == std::string::npos ? config : config.substr(slash + 1);
  size_t dot = base.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

namespace {
// The time base of every trace: no span starts before the program did.
const uint64_t g_program_start_ns = NowNs();
}  // namespace

TraceStream::TraceStream(std::string path, std::function<std::vector<TraceEvent>()> take)
    : path_(std::move(path)), take_(std::move(take)) {}

TraceStream::~TraceStream() { Stop(); }

bool TraceStream::Start() {
  file_ = std::make_unique<TraceFile>(path_, g_program_start_ns);
  const Status s = file_->Open();
  if (!s.ok()) {
    std::cerr << "flowfeed: cannot write trace " << path_ << " (" << s.message() << ")\n";
    return false;
  }
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
      lock.unlock();
      // A write error is kept by the file and reported by Finish().
      (void)file_->Append(take_());
      lock.lock();
    }
  });
  return true;
}

void TraceStream::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int TraceStream::Finish() {
  Stop();
  Status s = file_->Append(take_());
  if (s.ok()) s = file_->Finish();
  if (!s.ok()) {
    std::cerr << "flowfeed: cannot write trace " << path_ << " (" << s.message() << ")\n";
    return kExitRuntime;
  }
  std::cerr << "trace: " << file_->spans()
            << " spans; open it in https://ui.perfetto.dev or chrome://tracing\ntrace: " << path_
            << "\n";
  return kExitOk;
}

}  // namespace flowfeed::cli
