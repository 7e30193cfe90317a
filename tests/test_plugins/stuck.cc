// A stage that, on one sample, opens a FIFO nobody writes: the worker thread then waits in the
// kernel, as a read from a hung network mount does. Sources refuse FIFOs as samples (they must
// never block), so the tests that need a stuck read get it here. Once the FIFO is removed, the
// stage passes every sample through, so a rerun with the same config (and cache fingerprint)
// goes on.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <flowfeed/plugin.h>

#include <string>

namespace {
class Stuck : public flowfeed::Stage {
 public:
  Stuck(std::string gate, int64_t index) : gate_(std::move(gate)), index_(index) {}
  flowfeed::Status Process(flowfeed::Sample& s, const flowfeed::StageContext&) override {
    struct stat st;
    if (s.index != index_ || stat(gate_.c_str(), &st) != 0 || !S_ISFIFO(st.st_mode)) return {};
    const int fd = open(gate_.c_str(), O_RDONLY | O_CLOEXEC);  // waits for a writer
    if (fd >= 0) close(fd);
    return {};
  }

 private:
  std::string gate_;
  int64_t index_;
};
}  // namespace

FLOWFEED_PLUGIN("stuck", "1.0.0", registrar) {
  flowfeed::StageInfo info;
  info.name = "test_stuck";
  info.doc = "waits in open() on the FIFO `gate` at sample `index`, while that FIFO exists";
  info.params = {flowfeed::ParamSpec::String("gate", std::nullopt, "path of the FIFO"),
                 flowfeed::ParamSpec::Int("index", std::nullopt, "the sample that waits", 0)};
  info.factory = [](const flowfeed::StageParams& p)
      -> flowfeed::Result<std::unique_ptr<flowfeed::Stage>> {
    return std::unique_ptr<flowfeed::Stage>(new Stuck(p.String("gate"), p.Int("index")));
  };
  registrar.AddStage(std::move(info));
}
