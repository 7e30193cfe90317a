// photo_dataset.cc: an ImageNet-like image folder made from a few real photographs.
#include "flowfeed/photo_dataset.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <map>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "flowfeed/codec.h"
#include "flowfeed/image.h"
#include "flowfeed/source.h"
#include "flowfeed/util/clock.h"
#include "flowfeed/util/file.h"

namespace fs = std::filesystem;

namespace flowfeed {

namespace {

constexpr const char* kMarkerName = ".flowfeed-photos";
constexpr int kMaxWindowDraws = 20;
constexpr double kMinDetail = 12.0;  // mean over channels of the pixel standard deviation

double Detail(const cv::Mat& image) {
  cv::Scalar mean, stddev;
  cv::meanStdDev(image, mean, stddev);
  return (stddev[0] + stddev[1] + stddev[2]) / 3.0;
}

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool IsPhotoName(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;
  std::string lower = name;
  for (auto& c : lower) c = AsciiLower(c);
#if FLOWFEED_HAVE_IMGCODECS
  for (const char* ext : {".jpg", ".jpeg", ".png"}) {
#else
  // A JPEG-only build cannot read PNG sources; the JPEGs still make a data set.
  for (const char* ext : {".jpg", ".jpeg"}) {
#endif
    const size_t n = std::strlen(ext);
    if (lower.size() > n && lower.compare(lower.size() - n, n, ext) == 0) return true;
  }
  return false;
}

// "Elephants_3840x2160" -> "elephants_3840x2160"; anything outside [a-z0-9_-] becomes '_'.
std::string SanitizeClassName(const std::string& stem) {
  std::string out;
  for (char c : stem) {
    c = AsciiLower(c);
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    out += ok ? c : '_';
  }
  if (out.empty()) out = "photo";
  return out;
}

uint64_t Mix64(uint64_t z) {  // SplitMix64's finaliser
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// Turns raw mt19937_64 output into numbers the same way on every standard library.
class Random {
 public:
  explicit Random(uint64_t seed) : engine_(seed) {}
  double Uniform(double lo, double hi) {
    const double u = double(engine_() >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
    return lo + (hi - lo) * u;
  }
  int64_t UniformInt(int64_t lo, int64_t hi) {  // inclusive
    if (hi <= lo) return lo;
    const uint64_t span = uint64_t(hi - lo) + 1;
    const unsigned __int128 m = (unsigned __int128)engine_() * span;
    return lo + int64_t(m >> 64);
  }

 private:
  std::mt19937_64 engine_;
};

struct PhotoClass {
  std::string photo;  // source file
  std::string name;   // class folder name
  int images = 0;      // how many to make (numbered 0 .. images-1 within the class)
  int val_images = 0;  // how many of them (the last ones) go to val
};

// "Elephants_3840x2160" -> "elephants"; a stem without a _WxH suffix, lowercased.
std::string PictureName(const std::string& stem) {
  std::string lower;
  for (char c : stem) lower += AsciiLower(c);
  size_t us = lower.rfind('_');
  if (us == std::string::npos) return lower;
  const std::string suffix = lower.substr(us + 1);
  size_t x = suffix.find('x');
  auto digits = [](const std::string& t) {
    return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (x != std::string::npos && digits(suffix.substr(0, x)) && digits(suffix.substr(x + 1)))
    return lower.substr(0, us);
  return lower;
}

Status FindPhotos(const std::string& dir, const std::string& out_dir,
                  std::vector<std::string>* photos) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return Status::NotFound("source_dir: " + dir + " does not exist");
  if (!fs::is_directory(dir, ec))
    return Status::NotFound("source_dir: " + dir + " is not a directory");
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) return Status::IoError("source_dir: " + dir + ": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return Status::IoError("source_dir: " + dir + ": " + ec.message());
    const fs::directory_entry& e = *it;
    const std::string name = e.path().filename().string();
    std::error_code ec2;
    if (e.is_directory(ec2)) {
      // Hidden folders, and the output folder when it lies inside the source folder.
      if ((!name.empty() && name[0] == '.') ||
          (!out_dir.empty() && fs::exists(out_dir, ec2) && fs::equivalent(e.path(), out_dir, ec2)))
        it.disable_recursion_pending();
      continue;
    }
    if (e.is_regular_file(ec2) && IsPhotoName(name)) photos->push_back(e.path().string());
  }
  std::sort(photos->begin(), photos->end());
  if (photos->empty())
    return Status::NotFound("source_dir: " + dir +
                            (FLOWFEED_HAVE_IMGCODECS ? " has no .jpg/.jpeg/.png photos"
                                                     : " has no .jpg/.jpeg photos (a JPEG-only build)"));
  // Wallpaper collections ship one picture at several resolutions ("Elephants.jpg",
  // "Elephants_3840x2160.jpg"): as separate classes they would be the same class twice. Keep the
  // largest file of each such group.
  std::map<std::string, std::pair<uintmax_t, std::string>> best;  // picture -> (bytes, path)
  for (const std::string& p : *photos) {
    const std::string key = (fs::path(p).parent_path() / PictureName(fs::path(p).stem().string())).string();
    uintmax_t bytes = fs::file_size(p, ec);
    auto [it2, inserted] = best.try_emplace(key, bytes, p);
    if (!inserted && bytes > it2->second.first) it2->second = {bytes, p};
  }
  photos->clear();
  for (const auto& [key, value] : best) photos->push_back(value.second);
  std::sort(photos->begin(), photos->end());
  return Status::Ok();
}

// Writes `bytes` to path.tmp and renames it to path. Not synced one by one (Durability::kNone):
// syncing each of thousands of small JPEGs would multiply the build time; the whole folder is
// made durable at once (syncfs) before the build says it is done.
Status WriteFileAtomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  return WriteFileAtomically(nullptr, path,
                             std::string_view(reinterpret_cast<const char*>(bytes.data()),
                                              bytes.size()),
                             Durability::kNone);
}

std::string ImageName(const std::string& cls, int k) {
  char num[32];
  std::snprintf(num, sizeof(num), "%05d", k);
  return cls + "_" + num + ".jpg";
}

class Progress {
 public:
  Progress(std::ostream& log, int total) : log_(log), total_(total) {}
  void Add(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    done_ += n;
    bool report = false;
    while (next_tenth_ <= 10 && int64_t(done_) * 10 >= int64_t(total_) * next_tenth_) {
      ++next_tenth_;
      report = true;
    }
    if (report) log_ << "photos: " << done_ << "/" << total_ << " images" << std::endl;
  }

 private:
  std::mutex mu_;
  std::ostream& log_;
  int total_;
  int done_ = 0;
  int next_tenth_ = 1;
};

struct ClassResult {
  Status status;
  uint64_t bytes = 0;
};

// Decodes the class's photo once and writes its images.
ClassResult BuildClass(const PhotoDatasetOptions& options, const PhotoClass& cls,
                       const std::vector<std::string>& dirs, Progress* progress,
                       const std::atomic<bool>& stop) {
  ClassResult result;
  std::vector<uint8_t> bytes;
  Status s = ReadFileBytes(cls.photo, &bytes);
  if (!s.ok()) {
    result.status = s;
    return result;
  }
  Image photo;
  DecodeOptions decode;
  decode.color = ColorMode::kRgb;
  s = DecodeImage(bytes.data(), bytes.size(), decode, cls.photo, &photo);
  if (!s.ok()) {
    result.status = s;
    return result;
  }
  if (photo.channels() != 3 || photo.dtype() != DType::kUInt8) {
    result.status = Status::Internal(cls.photo + ": decoder returned " + photo.ShapeString());
    return result;
  }
  bytes = {};
  const cv::Mat src(photo.height(), photo.width(), CV_8UC3, photo.data());
  const int H = photo.height(), W = photo.width();
  const double S = std::min(H, W);
  // Window short side: [0.15, 0.6] of the photo's short side, but at least the largest output
  // short side (no upscaling) as long as the photo is that large.
  const double lo = std::max(0.15 * S, std::min<double>(options.max_short_side, S));
  const double hi = std::min(S, std::max(lo, 0.6 * S));

  Random rng(Mix64(options.seed ^ Mix64(Fnv1a64(cls.name))));
  Image out;
  cv::Mat reduced;
  std::vector<uint8_t> jpeg;
  const int train_images = cls.images - cls.val_images;
  for (int k = 0; k < cls.images; ++k) {
    if (stop.load(std::memory_order_relaxed)) break;
    // Parts of some photos are flat colour (skies, transparent areas of the PNGs). A window
    // there teaches nothing and decodes unrealistically fast, so draw again, up to
    // kMaxWindowDraws times, while the output's pixel standard deviation is below kMinDetail.
    for (int draw = 0;; ++draw) {
      // The window.
      const double ws = rng.Uniform(lo, hi);
      const double aspect = rng.Uniform(3.0 / 4.0, 4.0 / 3.0);  // width / height
      double ww = ws, wh = ws;
      if (aspect >= 1.0) ww = ws * aspect; else wh = ws / aspect;
      const int win_w = std::clamp(int(std::lround(ww)), 1, W);
      const int win_h = std::clamp(int(std::lround(wh)), 1, H);
      const int x = int(rng.UniformInt(0, W - win_w));
      const int y = int(rng.UniformInt(0, H - win_h));
      // The output size: short side uniform in [min, max], aspect ratio kept.
      const int short_side = int(rng.UniformInt(options.min_short_side, options.max_short_side));
      int out_w, out_h;
      if (win_w <= win_h) {
        out_w = short_side;
        out_h = std::max(short_side, int(std::lround(double(win_h) * short_side / win_w)));
      } else {
        out_h = short_side;
        out_w = std::max(short_side, int(std::lround(double(win_w) * short_side / win_h)));
      }
      out.Reshape(out_h, out_w, 3);
      cv::Mat dst(out_h, out_w, CV_8UC3, out.data());
      // OpenCV's INTER_AREA is several times faster for integer factors, so a large reduction
      // goes in two steps: an integer factor f (the window trimmed by < f pixels to a multiple
      // of it), then the remaining factor (< 2).
      const int f = std::min(win_w / out_w, win_h / out_h);
      if (f >= 2) {
        const cv::Rect trimmed(x, y, win_w - win_w % f, win_h - win_h % f);
        cv::resize(src(trimmed), reduced, cv::Size(trimmed.width / f, trimmed.height / f), 0, 0,
                   cv::INTER_AREA);
        cv::resize(reduced, dst, cv::Size(out_w, out_h), 0, 0, cv::INTER_AREA);
      } else {
        cv::resize(src(cv::Rect(x, y, win_w, win_h)), dst, cv::Size(out_w, out_h), 0, 0,
                   cv::INTER_AREA);
      }
      if (dst.data != out.data()) {  // OpenCV reallocated instead of writing into `out`
        result.status = Status::Internal(cls.name + ": resize did not write into its buffer");
        return result;
      }
      if (draw + 1 >= kMaxWindowDraws || Detail(dst) >= kMinDetail) break;
    }
    const int out_h = out.height(), out_w = out.width();
    const bool flip = rng.Uniform(0.0, 1.0) < 0.5;

    if (flip) {
      for (int r = 0; r < out_h; ++r) {
        uint8_t* row = out.row<uint8_t>(r);
        for (int a = 0, b = out_w - 1; a < b; ++a, --b)
          for (int c = 0; c < 3; ++c) std::swap(row[a * 3 + c], row[b * 3 + c]);
      }
    }
    s = EncodeJpeg(out, options.quality, &jpeg);
    if (!s.ok()) {
      result.status = s.WithContext(cls.name);
      return result;
    }
    const std::string& dir = dirs[k < train_images ? 0 : 1];
    s = WriteFileAtomic(dir + "/" + ImageName(cls.name, k), jpeg);
    if (!s.ok()) {
      result.status = s;
      return result;
    }
    result.bytes += jpeg.size();
    progress->Add(1);
  }
  return result;
}

// Empties `dir` (whose contents an earlier build made).
Status ClearDir(const std::string& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    fs::remove_all(it->path(), ec2);
    if (ec2) return Status::IoError(it->path().string() + ": " + ec2.message());
  }
  if (ec) return Status::IoError(dir + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

Status BuildPhotoDataset(const PhotoDatasetOptions& options, std::ostream& log) {
  const auto start = SteadyClock::now();
  // --- options ---
  if (options.out_dir.empty()) return Status::InvalidArgument("out_dir: required");
  if (options.count < 1)
    return Status::InvalidArgument("count: must be >= 1, got " + std::to_string(options.count));
  if (options.min_short_side < 1 || options.max_short_side < options.min_short_side ||
      options.max_short_side > 16384)
    return Status::InvalidArgument("min_short_side/max_short_side: need 1 <= min <= max <= 16384, got " +
                                   std::to_string(options.min_short_side) + " and " +
                                   std::to_string(options.max_short_side));
  if (options.quality < 1 || options.quality > 100)
    return Status::InvalidArgument("quality: must be in [1, 100], got " +
                                   std::to_string(options.quality));
  if (!(options.val_fraction >= 0.0 && options.val_fraction < 1.0))
    return Status::InvalidArgument("val_fraction: must be in [0, 1)");
  if (options.threads < 0) return Status::InvalidArgument("threads: must be >= 0");

  // --- the photos and their classes ---
  std::vector<std::string> photos;
  FLOWFEED_RETURN_IF_ERROR(FindPhotos(options.source_dir, options.out_dir, &photos));
  const int num_classes = int(std::min<size_t>(photos.size(), size_t(options.count)));
  std::vector<PhotoClass> classes(static_cast<size_t>(num_classes));
  std::set<std::string> taken;
  for (int c = 0; c < num_classes; ++c) {
    PhotoClass& cls = classes[size_t(c)];
    cls.photo = photos[size_t(c)];
    const std::string base = SanitizeClassName(fs::path(cls.photo).stem().string());
    std::string name = base;
    for (int n = 2; !taken.insert(name).second; ++n) name = base + "_" + std::to_string(n);
    cls.name = name;
    cls.images = options.count / num_classes + (c < options.count % num_classes ? 1 : 0);
    cls.val_images = options.val_fraction > 0
                         ? std::min(cls.images, int(std::lround(cls.images * options.val_fraction)))
                         : 0;
  }

  // --- the output folder ---
  const std::string& out = options.out_dir;
  std::error_code ec;
  bool ours = true;  // the folder is new, empty or made by an earlier build: mark it
  if (fs::exists(out, ec)) {
    if (!fs::is_directory(out, ec))
      return Status::InvalidArgument("out_dir: " + out + " exists and is not a directory");
    const bool empty = fs::is_empty(out, ec);
    if (ec) return Status::IoError("out_dir: " + out + ": " + ec.message());
    if (!empty) {
      if (!options.overwrite)
        return Status::InvalidArgument("out_dir: " + out +
                                       " exists and is not empty (overwrite it with --overwrite)");
      if (fs::exists(fs::path(out) / kMarkerName, ec)) {
        FLOWFEED_RETURN_IF_ERROR(ClearDir(out));
      } else {
        ours = false;
        log << "photos: warning: " << out
            << " was not made by this tool; writing into it without removing anything"
            << std::endl;
      }
    }
  }
  std::vector<std::vector<std::string>> dirs(classes.size());
  for (size_t c = 0; c < classes.size(); ++c) {
    if (options.val_fraction > 0) {
      dirs[c] = {out + "/train/" + classes[c].name, out + "/val/" + classes[c].name};
    } else {
      dirs[c] = {out + "/" + classes[c].name, out + "/" + classes[c].name};
    }
    for (const auto& d : dirs[c]) {
      fs::create_directories(d, ec);
      if (ec) return Status::IoError("out_dir: cannot create " + d + ": " + ec.message());
    }
  }
  if (ours) {
    std::ostringstream marker;
    marker << "flowfeed dataset photos\nsource_dir=" << options.source_dir
           << "\ncount=" << options.count << "\nseed=" << options.seed
           << "\nshort_side=" << options.min_short_side << ".." << options.max_short_side
           << "\nquality=" << options.quality << "\nval_fraction=" << options.val_fraction << "\n";
    const std::string m = marker.str();
    FLOWFEED_RETURN_IF_ERROR(
        WriteFileAtomic(out + "/" + kMarkerName, std::vector<uint8_t>(m.begin(), m.end())));
  }

  int threads = options.threads;
  if (threads == 0) threads = int(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  threads = std::min(threads, num_classes);
  log << "photos: " << photos.size() << " photos in " << options.source_dir << " -> "
      << options.count << " images in " << num_classes << " classes under " << out << " ("
      << threads << " threads)" << std::endl;

  // --- the work: classes in parallel ---
  Progress progress(log, options.count);
  std::atomic<int> next{0};
  std::atomic<bool> stop{false};
  std::vector<ClassResult> results(classes.size());
  auto worker = [&] {
    for (;;) {
      const int c = next.fetch_add(1);
      if (c >= num_classes || stop.load()) return;
      results[size_t(c)] = BuildClass(options, classes[size_t(c)], dirs[size_t(c)], &progress, stop);
      if (!results[size_t(c)].status.ok()) stop.store(true);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();

  uint64_t total_bytes = 0;
  for (const auto& r : results) {
    if (!r.status.ok()) return r.status;  // the first failing class, in class order
    total_bytes += r.bytes;
  }
  // Before "wrote": a power cut after it must not leave empty JPEGs under their final names.
  FLOWFEED_RETURN_IF_ERROR(SyncFilesystemOf(out));
  const double seconds = SecondsSince(start);
  std::ostringstream done;
  done << "photos: wrote " << options.count << " images in " << num_classes << " classes to "
       << out << " (" << std::fixed << std::setprecision(1) << double(total_bytes) / 1e6
       << " MB, " << total_bytes << " bytes) in " << std::setprecision(2) << seconds << " s";
  log << done.str() << std::endl;
  return Status::Ok();
}

}  // namespace flowfeed
