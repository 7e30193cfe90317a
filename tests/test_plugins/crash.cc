// A stage that ends the process on one chosen sample, for the crash report's tests
// (crash_report_test.cc). The trigger is an environment variable, not a parameter, so that the
// config (and with it the cache's fingerprint) is the same in the crashing run and the rerun:
//   FLOWFEED_TEST_CRASH=segv:7      dereference a null pointer on sample 7
//   FLOWFEED_TEST_CRASH=overflow:7  recurse until the stack is gone on sample 7
//   FLOWFEED_TEST_CRASH=abort:7     call abort() on sample 7
//   FLOWFEED_TEST_CRASH=exit:7      call exit(0) on sample 7
//   FLOWFEED_TEST_CRASH=loop:7      never return from sample 7 (a stage stuck in a loop)
// Unset, it passes every sample through. Besides, for isolate: process (isolate_test.cc):
//   FLOWFEED_TEST_CRASH_BUILD=PATH  abort() while being built whenever the file PATH exists
//                                   (a stage worker that dies before it serves anything)
#include <sys/stat.h>

#include <flowfeed/plugin.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace {

enum class Mode { kNone, kSegv, kOverflow, kAbort, kExit, kLoop };

// Deep enough to overflow any thread's stack; volatile so that it is neither a loop nor a tail
// call.
int Recurse(volatile int depth) {
  if (depth > (1 << 30)) return 0;  // never: the stack (at most a few MiB) ends long before
  volatile char pad[1024];
  pad[0] = char(depth);
  return Recurse(depth + 1) + pad[0];
}

class Crash : public flowfeed::Stage {
 public:
  Crash() {
    struct stat st;
    const char* gate = std::getenv("FLOWFEED_TEST_CRASH_BUILD");
    if (gate && stat(gate, &st) == 0) std::abort();
    const char* v = std::getenv("FLOWFEED_TEST_CRASH");
    if (!v) return;
    const std::string spec = v;
    const size_t colon = spec.find(':');
    if (colon == std::string::npos) return;
    const std::string mode = spec.substr(0, colon);
    mode_ = mode == "segv" ? Mode::kSegv
          : mode == "overflow" ? Mode::kOverflow
          : mode == "abort" ? Mode::kAbort
          : mode == "exit" ? Mode::kExit
          : mode == "loop" ? Mode::kLoop : Mode::kNone;
    index_ = std::atoll(spec.c_str() + colon + 1);
  }
  // No UBSan here: its null check would stop the process before the store becomes the SIGSEGV
  // this stage exists to cause.
  __attribute__((no_sanitize_undefined)) flowfeed::Status Process(
      flowfeed::Sample& s, const flowfeed::StageContext&) override {
    if (mode_ == Mode::kNone || s.index != index_) return {};
    switch (mode_) {
      case Mode::kSegv: {
        volatile int* nowhere = nullptr;
        *nowhere = 1;
        break;
      }
      case Mode::kOverflow:
        Recurse(0);
        break;
      case Mode::kAbort:
        std::abort();
      case Mode::kExit:
        std::exit(0);
      case Mode::kLoop:
        for (volatile bool forever = true; forever;) {
        }
        break;
      case Mode::kNone:
        break;
    }
    return {};
  }

 private:
  Mode mode_ = Mode::kNone;
  int64_t index_ = -1;
};

}  // namespace

FLOWFEED_PLUGIN("crash", "1.0.0", registrar) {
  flowfeed::StageInfo info;
  info.name = "test_crash";
  info.doc = "crashes or calls exit() on the sample FLOWFEED_TEST_CRASH names";
  info.traits.deterministic = true;
  info.traits.thread_safe = true;
  info.factory = [](const flowfeed::StageParams&) -> flowfeed::Result<std::unique_ptr<flowfeed::Stage>> {
    return std::unique_ptr<flowfeed::Stage>(new Crash());
  };
  registrar.AddStage(std::move(info));
}
