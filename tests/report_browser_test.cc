// The HTML report in a real browser: headless Chromium loads a page that `flowfeed bench --html`
// wrote, and the test checks what it drew (the DOM after loading, and the pixels of a
// screenshot) and that loading it asked the network for nothing.
//
// Every request Chromium makes goes to a proxy this test runs on 127.0.0.1, which answers none
// of them and records each one. Chromium also calls its own services (component updates, the
// network time, sign-in) on its own, whatever page is open; those hosts are told apart from
// the page's. A control page with one remote image proves the proxy sees a page's request.
//
// Chromium is Debian's `chromium`, installed by `bash tools/run.sh test`; FLOWFEED_CHROMIUM
// names another binary. Without it the tests are skipped, saying why.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <thread>
#include <vector>

#include "report_page_util.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

std::string FindChromium() {
  if (const char* env = std::getenv("FLOWFEED_CHROMIUM"); env && *env)
    return access(env, X_OK) == 0 ? env : "";
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

// A proxy that records the first line of every request and closes the connection.
class RequestTrap {
 public:
  RequestTrap() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        listen(fd_, 64) != 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~RequestTrap() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.clear();
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string got;
      char buf[2048];
      pollfd q{c, POLLIN, 0};
      while (got.find("\r\n") == std::string::npos && poll(&q, 1, 1000) > 0) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        got.append(buf, size_t(n));
      }
      close(c);
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(got.substr(0, got.find("\r\n")));
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

// "CONNECT update.googleapis.com:443 HTTP/1.1" or "GET http://host/path HTTP/1.1" -> the host.
std::string HostOf(const std::string& request) {
  size_t sp = request.find(' ');
  if (sp == std::string::npos) return "";
  std::string target = request.substr(sp + 1, request.find(' ', sp + 1) - sp - 1);
  size_t scheme = target.find("://");
  if (scheme != std::string::npos) target = target.substr(scheme + 3);
  return target.substr(0, target.find_first_of(":/"));
}

// Chromium's own services, which it calls whatever page it shows.
bool IsChromiumService(const std::string& host) {
  for (const char* domain : {"google.com", "googleapis.com", "gvt1.com", "gstatic.com",
                             "googleusercontent.com", "chromium.org"}) {
    const std::string d = domain;
    if (host == d || (host.size() > d.size() && host.compare(host.size() - d.size() - 1,
                                                             d.size() + 1, "." + d) == 0))
      return true;
  }
  return false;
}

std::vector<std::string> PageRequests(const std::vector<std::string>& all) {
  std::vector<std::string> out;
  for (const std::string& r : all)
    if (!IsChromiumService(HostOf(r))) out.push_back(r);
  return out;
}

class ReportInBrowser : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium_ = FindChromium();
    if (chromium_.empty())
      GTEST_SKIP() << "Chromium is not installed, so the report page is not rendered in a "
                      "browser: `bash tools/run.sh test` installs it (Debian package chromium), "
                      "or set FLOWFEED_CHROMIUM to a Chromium binary";
    ASSERT_GT(trap_.port(), 0) << "cannot listen on 127.0.0.1";
  }

  // Runs headless Chromium on `page` with a fresh profile; every request goes to the trap.
  test::ShellRun Chromium(const std::string& page, const std::string& what) {
    static int profile = 0;
    std::string cmd = "timeout 120 " + chromium_ +
                      " --headless --no-sandbox --disable-gpu --user-data-dir=" +
                      dir_ / ("profile" + std::to_string(profile++)) +
                      " --proxy-server=http://127.0.0.1:" + std::to_string(trap_.port()) +
                      " --no-first-run --disable-background-networking --disable-component-update"
                      " --disable-sync --disable-default-apps --disable-extensions"
                      " --disable-dev-shm-usage --hide-scrollbars --force-device-scale-factor=1 " +
                      what + " file://" + page + " 2>" + dir_ / "chromium.log";
    return test::Shell(cmd);
  }

  std::string chromium_;
  TempDir dir_;
  RequestTrap trap_;
};

TEST_F(ReportInBrowser, DrawsEveryChartAndLoadsNothing) {
  std::string cfg = test::WriteReportConfig(dir_);
  auto run = test::Shell(std::string(FLOWFEED_BINARY) + " bench " + cfg + " --report " +
                         dir_ / "r.json --html " + dir_ / "r.html");
  ASSERT_EQ(run.code, 0) << run.output;
  test::ReportPage written(test::ReadText(dir_ / "r.html"));
  std::string why;
  EXPECT_TRUE(written.LoadsNothing(&why)) << why;

  trap_.Clear();
  auto dom = Chromium(dir_ / "r.html", "--dump-dom");
  ASSERT_EQ(dom.code, 0) << dom.output << test::ReadText(dir_ / "chromium.log");
  // The DOM the browser built from the page: the charts are there, with a bar per epoch.
  test::ReportPage page(dom.output);
  ASSERT_NE(page.html().find("flowfeed report: report"), std::string::npos) << dom.output;
  // Epoch time by stage, the gap, samples/s, consumer wait, cache hit rate.
  EXPECT_EQ(page.Count("<svg class=\"chart\""), 5u);
  EXPECT_EQ(page.NonEmptyStacks("epoch-time"), 3u);
  EXPECT_EQ(page.NonEmptyStacks("throughput"), 3u);
  // A bar per epoch; a later epoch may have waited for nothing (prefetched while the consumer
  // was still in the previous one), epoch 1 always waits for its first batch.
  EXPECT_EQ(page.Stacks("consumer-wait"), 3u);
  EXPECT_GE(page.NonEmptyStacks("consumer-wait"), 1u);
  EXPECT_EQ(page.NonEmptyStacks("cache-hit-rate"), 2u);
  // Epochs 2 and 3 start from the cache (a sample epoch 2 prefetched before epoch 1 had filled
  // it in is a miss, so not always 100%).
  for (double rate : page.Values("cache-hit-rate", "hit rate")) EXPECT_GE(rate, 50);
  EXPECT_GE(page.Series("epoch-time").size(), 4u);  // decode, crop, flip, normalise, ...
  EXPECT_FALSE(page.Series("gap").empty());
  EXPECT_EQ(page.SlowestStages().size(), 3u);
  EXPECT_TRUE(page.LoadsNothing(&why)) << why;

  // What it drew: the tallest segment's colour of the epoch-time chart and the throughput
  // bars' colour cover real pixels of the screenshot.
  auto shot = Chromium(dir_ / "r.html", "--window-size=1000,5200 --screenshot=" + dir_ / "r.png");
  ASSERT_EQ(shot.code, 0) << shot.output << test::ReadText(dir_ / "chromium.log");
  cv::Mat png = cv::imread(dir_ / "r.png", cv::IMREAD_COLOR);
  ASSERT_FALSE(png.empty()) << "no screenshot: " << shot.output;
  auto pixels_of = [&](const std::string& hex) {
    unsigned v = unsigned(std::stoul(hex.substr(1), nullptr, 16));
    int r = int(v >> 16), g = int((v >> 8) & 255), b = int(v & 255), n = 0;
    for (int y = 0; y < png.rows; ++y)
      for (int x = 0; x < png.cols; ++x) {
        const cv::Vec3b& p = png.at<cv::Vec3b>(y, x);
        if (std::abs(p[2] - r) <= 2 && std::abs(p[1] - g) <= 2 && std::abs(p[0] - b) <= 2) ++n;
      }
    return n;
  };
  const std::string tallest = page.TallestFill("epoch-time");
  ASSERT_FALSE(tallest.empty());
  EXPECT_GT(pixels_of(tallest), 200) << "the epoch-time chart's largest segment (" << tallest
                                     << ") is not on the screen";
  EXPECT_GT(pixels_of("#1f77b4"), 1000) << "the throughput bars are not on the screen";

  // Nothing went to the network on the page's behalf.
  const auto requests = trap_.requests();
  EXPECT_TRUE(PageRequests(requests).empty())
      << "the page made requests: " << PageRequests(requests).front();
}

TEST_F(ReportInBrowser, TheTrapSeesAPageRequestAndThePolicyBlocksIt) {
  // Control: without the report's Content-Security-Policy, one remote image is requested.
  test::WriteText(dir_ / "control.html",
                  "<!DOCTYPE html><html><body><img src=\"http://flowfeed-probe.invalid/x.png\">"
                  "</body></html>");
  auto r = Chromium(dir_ / "control.html", "--dump-dom");
  ASSERT_EQ(r.code, 0) << r.output;
  std::vector<std::string> seen = PageRequests(trap_.requests());
  ASSERT_EQ(seen.size(), 1u) << "the trap missed the page's request";
  EXPECT_EQ(HostOf(seen[0]), "flowfeed-probe.invalid");

  // The same image under the policy the report pages carry: refused by the browser.
  trap_.Clear();
  test::WriteText(dir_ / "policy.html",
                  "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
                  "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
                  "</head><body><img src=\"http://flowfeed-probe.invalid/x.png\"></body></html>");
  r = Chromium(dir_ / "policy.html", "--dump-dom");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(PageRequests(trap_.requests()).empty());
}

}  // namespace
}  // namespace flowfeed
