// Every file flowfeed names as written is on storage when it says so: the report, the HTML page
// and the trace are synced before the rename that gives them their name, and their folder after
// it; a photo dataset's folder is synced before "wrote". Checked on the real program under
// strace, which sees the system calls themselves (a crash or power cut cannot be staged here).
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

// The calls one strace log recorded, in order: "openat PATH = FD", "fdatasync FD" ...
struct Call {
  std::string name;
  std::vector<std::string> args;  // quoted paths unquoted, numbers as written
  std::string result;
};

std::vector<Call> Parse(const std::string& log) {
  static const std::regex line(R"(^(?:\d+ +)?(\w+)\((.*)\)\s+= (-?\d+))");
  static const std::regex arg(R"re("([^"]*)"|([^,\s][^,]*))re");
  static const std::regex resumed(R"re(^(\d+) +<\.\.\. \w+ resumed>(.*)$)re");
  std::vector<Call> calls;
  std::map<std::string, std::string> unfinished;  // pid -> the call's first half
  std::istringstream in(log);
  for (std::string l; std::getline(in, l);) {
    // A call another thread interrupted is logged in two halves: joined here.
    const size_t cut = l.find(" <unfinished ...>");
    if (cut != std::string::npos) {
      unfinished[l.substr(0, l.find(' '))] = l.substr(0, cut);
      continue;
    }
    std::smatch r;
    if (std::regex_match(l, r, resumed) && unfinished.count(r[1])) {
      const std::string pid = r[1], rest = r[2];  // r points into l, which is replaced next
      l = unfinished[pid] + rest;
      unfinished.erase(pid);
    }
    std::smatch m;
    if (!std::regex_search(l, m, line)) continue;
    Call c{m[1], {}, m[3]};
    const std::string args = m[2];
    for (auto it = std::sregex_iterator(args.begin(), args.end(), arg); it != std::sregex_iterator();
         ++it)
      c.args.push_back((*it)[1].matched ? (*it)[1].str() : (*it)[2].str());
    calls.push_back(std::move(c));
  }
  return calls;
}

// Whether `path` was written as a durable output: opened as path + `tmp` (fd N), N synced, then
// renamed to path, then its folder opened (fd M) and M synced. Says what is missing otherwise.
std::string CheckDurable(const std::vector<Call>& calls, const std::string& path,
                         const std::string& tmp = ".tmp") {
  const std::string dir = path.substr(0, path.rfind('/'));
  enum { kOpen, kSync, kRename, kDirOpen, kDirSync, kDone } want = kOpen;
  std::string fd;
  for (const Call& c : calls) {
    const bool open = c.name == "openat" && c.args.size() >= 2;
    if (want == kOpen && open && c.args[1] == path + tmp) {
      fd = c.result;
      want = kSync;
    } else if (want == kSync && (c.name == "fdatasync" || c.name == "fsync") && c.args[0] == fd) {
      want = kRename;
    } else if (want == kSync && c.name == "rename" && c.args[1] == path) {
      return path + ": renamed into place before its data was synced";
    } else if (want == kRename && c.name == "rename" && c.args[1] == path) {
      want = kDirOpen;
    } else if (want == kDirOpen && open && c.args[1] == dir) {
      fd = c.result;
      want = kDirSync;
    } else if (want == kDirSync && c.name == "fsync" && c.args[0] == fd) {
      want = kDone;
    }
  }
  const char* missing[] = {"never opened as " , "its data never synced", "never renamed",
                           "its folder never opened to sync", "its folder never synced", ""};
  return want == kDone ? "" : path + ": " + missing[want] + (want == kOpen ? path + tmp : "");
}

// LeakSanitizer cannot run under ptrace: it is switched off for the traced program (the
// sanitizer build runs these tests too).
std::string Strace(const std::string& log, const std::string& command) {
  return "ASAN_OPTIONS=\"${ASAN_OPTIONS}:detect_leaks=0\" strace -f -qq -e "
         "trace=openat,fdatasync,fsync,syncfs,rename -o " + log + " " + command;
}

bool HaveStrace() { return test::Shell("strace -V").code == 0; }

TEST(DurableOutputs, ReportPageAndTraceAreSyncedBeforeAndAfterTheirRename) {
  if (!HaveStrace()) GTEST_SKIP() << "strace is not installed (tools/run.sh installs it)";
  TempDir dir;
  test::WriteIdx(dir / "i.idx", dir / "l.idx", 32, 4, 4);
  test::WriteText(dir / "c.yaml", "source: {type: idx, root: " + dir.path() +
                                      ", images: i.idx, labels: l.idx}\nbatch: {size: 8}\n");
  const test::ShellRun r = test::Shell(Strace(
      dir / "log", std::string(FLOWFEED_BINARY) + " bench " + (dir / "c.yaml") + " --report " +
                       (dir / "r.json") + " --html " + (dir / "r.html") + " --trace " +
                       (dir / "t.json")));
  ASSERT_EQ(r.code, 0) << r.output;
  const std::vector<Call> calls = Parse(test::ReadText(dir / "log"));
  ASSERT_GT(calls.size(), 10u);
  for (const char* name : {"r.json", "r.html"}) EXPECT_EQ(CheckDurable(calls, dir / name), "");
  EXPECT_EQ(CheckDurable(calls, dir / "t.json", ".partial"), "");  // streamed as the run went
}

TEST(DurableOutputs, APhotoDatasetIsSyncedBeforeItIsReportedWritten) {
  if (!HaveStrace()) GTEST_SKIP() << "strace is not installed (tools/run.sh installs it)";
  TempDir dir;
  test::WriteJpeg(dir / "src/a/one.jpg", test::PatternImage(300, 400, 3, 1));
  test::WriteJpeg(dir / "src/b/two.jpg", test::PatternImage(320, 420, 3, 2));
  const test::ShellRun r = test::Shell(Strace(
      dir / "log", std::string(FLOWFEED_BINARY) + " dataset photos --source " + (dir / "src") +
                       " --out " + (dir / "out") + " --count 6 --min-side 64 --max-side 96"));
  ASSERT_EQ(r.code, 0) << r.output;
  const std::vector<Call> calls = Parse(test::ReadText(dir / "log"));
  // The last image's rename, then one syncfs of the output folder after it.
  size_t last_rename = 0, syncfs = 0;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (calls[i].name == "rename" && calls[i].args.size() == 2 &&
        calls[i].args[1].find(dir / "out/") == 0 && calls[i].args[1].size() > 4 &&
        calls[i].args[1].compare(calls[i].args[1].size() - 4, 4, ".jpg") == 0)
      last_rename = i;
    if (calls[i].name == "syncfs") syncfs = i;
  }
  ASSERT_GT(last_rename, 0u) << "no image was renamed into " << dir / "out";
  EXPECT_GT(syncfs, last_rename) << "the folder was not synced after its last image";
}

}  // namespace
}  // namespace flowfeed
