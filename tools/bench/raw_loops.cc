// Hand-written upper bounds for the photo pipeline, used by tools/bench/compare.sh.
//
//   flowfeed_raw_loops decode         FOLDER --threads T --reps N
//   flowfeed_raw_loops augment        FOLDER --threads T --reps N [--seed S]
//   flowfeed_raw_loops decode_augment FOLDER --threads T --reps N [--seed S]
//
// decode:  reads every *.jpg/*.jpeg under FOLDER into memory (untimed), then each rep decodes all
//          of them to RGB with TurboJPEG's tjDecompress2 on T std::threads (files split evenly).
//          images/s is the decode-only limit for an uncached epoch (no I/O, no augmentation).
// augment: decodes every image once (untimed), then each rep applies torchvision's
//          RandomResizedCrop(224) parameters (scale [0.08,1], ratio [3/4,4/3], 10 attempts then
//          the centre fallback), cv::resize INTER_LINEAR of the ROI to 224x224, a random
//          horizontal flip and normalisation to float32 CHW with the ImageNet mean/std into a
//          preallocated per-thread buffer, on T threads. images/s is the limit for a cached epoch.
// decode_augment: reads the files into memory (untimed), then each rep, per image, fully decodes
//          the JPEG bytes to RGB (tjDecompress2 into a reused per-thread buffer) and applies the
//          same crop/resize/flip/normalise as `augment` (same code) into a preallocated per-thread
//          float32 CHW buffer, on T threads. images/s is the limit for an uncached epoch doing
//          the same work as the pipeline (without file reads or batching).
//
// Prints one JSON line: {"mode", "images", "threads", "reps", "images_per_second" (median),
// "best_images_per_second", "rep_images_per_second": [...]}.
#include <turbojpeg.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace {

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "flowfeed_raw_loops: %s\n", msg.c_str());
  std::exit(2);
}

std::vector<std::string> list_jpegs(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ext == ".jpg" || ext == ".jpeg") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) die("cannot read " + path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

struct Image {
  int w = 0, h = 0;
  std::vector<unsigned char> rgb;  // HWC, 3 channels
};

// Decodes one JPEG to RGB into `img` (reusing its buffer). Returns false on failure.
bool decode(tjhandle tj, const std::vector<unsigned char>& jpeg, Image& img) {
  int w, h, subsamp, colorspace;
  if (tjDecompressHeader3(tj, jpeg.data(), jpeg.size(), &w, &h, &subsamp, &colorspace) != 0) return false;
  img.w = w;
  img.h = h;
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  return tjDecompress2(tj, jpeg.data(), jpeg.size(), img.rgb.data(), w, 0, h, TJPF_RGB, 0) == 0;
}

// Runs fn(thread_index, begin, end) on T threads over [0, n) split evenly.
template <class Fn>
void parallel(int threads, size_t n, Fn fn) {
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    size_t b = n * t / threads, e = n * (t + 1) / threads;
    pool.emplace_back([=, &fn] { fn(t, b, e); });
  }
  for (auto& th : pool) th.join();
}

struct Crop {
  int x, y, w, h;
};

// torchvision.transforms.RandomResizedCrop.get_params, with a std::mt19937.
Crop random_resized_crop(int width, int height, std::mt19937& rng) {
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  std::uniform_real_distribution<double> u_scale(0.08, 1.0), u_logr(log_lo, log_hi);
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target = area * u_scale(rng);
    double ratio = std::exp(u_logr(rng));
    int w = static_cast<int>(std::lround(std::sqrt(target * ratio)));
    int h = static_cast<int>(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      int y = std::uniform_int_distribution<int>(0, height - h)(rng);
      int x = std::uniform_int_distribution<int>(0, width - w)(rng);
      return {x, y, w, h};
    }
  }
  // Centre crop fallback.
  double in_ratio = static_cast<double>(width) / height;
  int w, h;
  if (in_ratio < 3.0 / 4.0) {
    w = width;
    h = static_cast<int>(std::lround(w / (3.0 / 4.0)));
  } else if (in_ratio > 4.0 / 3.0) {
    h = height;
    w = static_cast<int>(std::lround(h * (4.0 / 3.0)));
  } else {
    w = width;
    h = height;
  }
  return {(width - w) / 2, (height - h) / 2, w, h};
}

constexpr int kSize = 224;
constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};

// Crop + resize + flip + normalise one image into out (3 x 224 x 224 float32, CHW).
void augment(const Image& img, std::mt19937& rng, cv::Mat& resized, float* out) {
  Crop c = random_resized_crop(img.w, img.h, rng);
  cv::Mat src(img.h, img.w, CV_8UC3, const_cast<unsigned char*>(img.rgb.data()));
  cv::resize(src(cv::Rect(c.x, c.y, c.w, c.h)), resized, cv::Size(kSize, kSize), 0, 0, cv::INTER_LINEAR);
  bool flip = std::uniform_real_distribution<float>(0.f, 1.f)(rng) < 0.5f;
  float scale[3], bias[3];
  for (int ch = 0; ch < 3; ++ch) {
    scale[ch] = 1.f / (255.f * kStd[ch]);
    bias[ch] = -kMean[ch] / kStd[ch];
  }
  const size_t plane = static_cast<size_t>(kSize) * kSize;
  for (int y = 0; y < kSize; ++y) {
    const unsigned char* row = resized.ptr<unsigned char>(y);
    float* o0 = out + y * kSize;
    float* o1 = o0 + plane;
    float* o2 = o1 + plane;
    for (int x = 0; x < kSize; ++x) {
      int sx = flip ? kSize - 1 - x : x;
      const unsigned char* p = row + 3 * sx;
      o0[x] = p[0] * scale[0] + bias[0];
      o1[x] = p[1] * scale[1] + bias[1];
      o2[x] = p[2] * scale[2] + bias[2];
    }
  }
}

// Per-thread state of the augment step shared by the `augment` and `decode_augment` modes: a
// preallocated float32 CHW output buffer, the resize scratch Mat and an RNG per thread.
struct AugmentState {
  std::vector<std::vector<float>> out;
  std::vector<cv::Mat> resized;
  std::vector<std::mt19937> rngs;
  double sink = 0;

  AugmentState(int threads, unsigned seed)
      : out(threads, std::vector<float>(3 * kSize * kSize)), resized(threads) {
    for (int t = 0; t < threads; ++t) rngs.emplace_back(seed * 1000003u + t);
  }
  void run(int t, const Image& img) { augment(img, rngs[t], resized[t], out[t].data()); }
  void observe() {
    for (auto& o : out) sink += o[12345];
  }
  void finish() const {
    if (sink == 12345.6789) std::fprintf(stderr, "%f\n", sink);  // keep the work observable
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) die("usage: flowfeed_raw_loops decode|augment|decode_augment FOLDER [--threads T] [--reps N] [--seed S]");
  std::string mode = argv[1], root = argv[2];
  int threads = 1, reps = 5;
  unsigned seed = 0;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) die("missing value for " + a);
    if (a == "--threads") threads = std::atoi(argv[++i]);
    else if (a == "--reps") reps = std::atoi(argv[++i]);
    else if (a == "--seed") seed = static_cast<unsigned>(std::atoi(argv[++i]));
    else die("unknown option " + a);
  }
  if (mode != "decode" && mode != "augment" && mode != "decode_augment")
    die("mode must be decode, augment or decode_augment");
  if (threads < 1 || reps < 1) die("--threads and --reps must be >= 1");
  cv::setNumThreads(1);  // our own threads do the parallelism, as in the pipeline

  std::vector<std::string> paths = list_jpegs(root);
  if (paths.empty()) die("no JPEG files under " + root);
  std::vector<std::vector<unsigned char>> files(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) files[i] = read_file(paths[i]);
  const size_t n = files.size();

  std::vector<double> rates;
  if (mode == "decode") {
    std::vector<tjhandle> handles(threads);
    std::vector<Image> scratch(threads);
    for (auto& h : handles) h = tjInitDecompress();
    for (int r = 0; r < reps; ++r) {
      std::vector<int> failures(threads, 0);
      auto t0 = std::chrono::steady_clock::now();
      parallel(threads, n, [&](int t, size_t b, size_t e) {
        for (size_t i = b; i < e; ++i)
          if (!decode(handles[t], files[i], scratch[t])) ++failures[t];
      });
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (int f : failures)
        if (f) die("decode failures in rep " + std::to_string(r));
      rates.push_back(n / s);
    }
    for (auto& h : handles) tjDestroy(h);
  } else if (mode == "augment") {
    std::vector<Image> images(n);
    parallel(threads, n, [&](int, size_t b, size_t e) {
      tjhandle tj = tjInitDecompress();
      for (size_t i = b; i < e; ++i)
        if (!decode(tj, files[i], images[i])) die("cannot decode " + paths[i]);
      tjDestroy(tj);
    });
    files.clear();
    files.shrink_to_fit();
    AugmentState st(threads, seed);
    for (int r = 0; r < reps; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      parallel(threads, n, [&](int t, size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) st.run(t, images[i]);
      });
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      st.observe();
      rates.push_back(n / s);
    }
    st.finish();
  } else {  // decode_augment
    std::vector<tjhandle> handles(threads);
    std::vector<Image> scratch(threads);
    for (auto& h : handles) h = tjInitDecompress();
    AugmentState st(threads, seed);
    for (int r = 0; r < reps; ++r) {
      std::vector<int> failures(threads, 0);
      auto t0 = std::chrono::steady_clock::now();
      parallel(threads, n, [&](int t, size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) {
          if (!decode(handles[t], files[i], scratch[t])) {
            ++failures[t];
            continue;
          }
          st.run(t, scratch[t]);
        }
      });
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (int f : failures)
        if (f) die("decode failures in rep " + std::to_string(r));
      st.observe();
      rates.push_back(n / s);
    }
    st.finish();
    for (auto& h : handles) tjDestroy(h);
  }

  std::printf("{\"mode\":\"%s\",\"images\":%zu,\"threads\":%d,\"reps\":%d,\"images_per_second\":%.2f,"
              "\"best_images_per_second\":%.2f,\"rep_images_per_second\":[",
              mode.c_str(), n, threads, reps, median(rates), *std::max_element(rates.begin(), rates.end()));
  for (size_t i = 0; i < rates.size(); ++i) std::printf("%s%.2f", i ? "," : "", rates[i]);
  std::printf("]}\n");
  return 0;
}
