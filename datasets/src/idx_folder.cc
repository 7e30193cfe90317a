// idx_folder.cc: IDX files to a folder of PNGs (idx_folder.h). The IDX files are read through
// the idx source (OpenSource), so their parsing and error messages are the pipeline's own.
#include "flowfeed/idx_folder.h"

#include <fcntl.h>
#if FLOWFEED_HAVE_IMGCODECS
#include <opencv2/imgcodecs.hpp>
#endif
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "flowfeed/options.h"
#include "flowfeed/sample.h"
#include "flowfeed/source.h"
#include "flowfeed/util/file.h"

namespace flowfeed {
namespace {

namespace fs = std::filesystem;

constexpr const char* kMarker = ".flowfeed-idx-folder";

// What a complete folder holds, one line per split: "train 60000". Also the marker's content.
std::string Describe(const IdxFolderOptions& o, const std::vector<int64_t>& counts) {
  std::string out;
  for (size_t i = 0; i < o.splits.size(); ++i)
    out += o.splits[i].name + " " + std::to_string(counts[i]) + "\n";
  return out;
}

Status WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return Status::IoError(path + ": cannot create: " + std::strerror(errno));
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const int err = errno;
  if (std::fclose(f) != 0 || !ok)
    return Status::IoError(path + ": cannot write: " + std::strerror(ok ? errno : err));
  return Status::Ok();
}

// One split into dir/<class>/<index>.png, on `threads` threads.
Status WriteSplit(const IdxFolderOptions& o, const IdxSplit& split, const std::string& dir,
                  int threads, int64_t* count) {
  SourceOptions so;
  so.type = "idx";
  so.root = o.idx_root;
  so.images = split.images;
  so.labels = split.labels;
  Result<std::unique_ptr<Source>> opened = OpenSource(so);
  if (!opened.ok()) return opened.status();
  const Source& source = *opened.value();
  const int64_t n = source.size();
  for (int64_t i = 0; i < n; ++i)
    if (source.label(i) < 0 || source.label(i) >= int64_t(o.class_names.size()))
      return Status::InvalidArgument(std::string(source.key(i)) + ": label " +
                                     std::to_string(source.label(i)) + " has no class name (" +
                                     std::to_string(o.class_names.size()) + " given)");
  for (const std::string& c : o.class_names) {
    std::error_code ec;
    fs::create_directories(dir + "/" + c, ec);
    if (ec) return Status::IoError(dir + "/" + c + ": cannot create: " + ec.message());
  }
  std::atomic<int64_t> next{0};
  std::mutex mu;
  Status first = Status::Ok();
  auto work = [&] {
    Sample s;
    std::vector<uint8_t> png;
    char name[32];
    for (int64_t i; (i = next.fetch_add(1)) < n;) {
      Status st = source.Read(i, &s);
      if (st.ok()) {
        const Image& img = s.image;
#if FLOWFEED_HAVE_IMGCODECS
        cv::Mat m(img.height(), img.width(), img.channels() == 1 ? CV_8UC1 : CV_8UC3,
                  const_cast<uint8_t*>(img.data()), img.row_bytes());
        if (!cv::imencode(".png", m, png))
          st = Status::Internal(std::string(source.key(i)) + ": PNG encoding failed");
#else
        (void)img;
        st = Status::Unsupported(std::string(source.key(i)) +
                                 ": cannot write PNG: this build decodes and encodes JPEG only "
                                 "(configured with FLOWFEED_OPENCV_IMGCODECS=OFF)");
#endif
      }
      if (st.ok()) {
        std::snprintf(name, sizeof name, "/%05lld.png", static_cast<long long>(i));
        st = WriteFile(dir + "/" + o.class_names[size_t(source.label(i))] + name, png);
      }
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = st;
        next.store(n);  // the others stop too
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  *count = n;
  return first;
}

}  // namespace

IdxFolderOptions FashionMnistFolder(const std::string& idx_root, const std::string& out_dir) {
  IdxFolderOptions o;
  o.idx_root = idx_root;
  o.out_dir = out_dir;
  o.splits = {{"train", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
              {"test", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}};
  o.class_names = {"0_tshirt_top", "1_trouser", "2_pullover", "3_dress", "4_coat",
                   "5_sandal",     "6_shirt",   "7_sneaker",  "8_bag",   "9_ankle_boot"};
  return o;
}

Status WriteIdxAsImageFolder(const IdxFolderOptions& o, std::ostream& log) {
  if (o.out_dir.empty()) return Status::InvalidArgument("the output folder is required");
  if (!std::is_sorted(o.class_names.begin(), o.class_names.end()))
    return Status::InvalidArgument("class names must sort in label order");
  std::string out = o.out_dir;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  if (!o.overwrite && fs::exists(out + "/" + kMarker)) {
    log << "reusing " << out << " (complete: " << out << "/" << kMarker << ")\n";
    return Status::Ok();
  }
  if (fs::exists(out) && !fs::exists(out + "/" + kMarker))
    return Status::InvalidArgument(out + ": exists and was not written by this command (no " +
                                   kMarker + "); choose another folder or remove it");
  const std::string partial = out + ".partial";
  std::error_code ec;
  fs::remove_all(partial, ec);  // what an interrupted run left
  if (ec) return Status::IoError(partial + ": cannot remove: " + ec.message());
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<int64_t> counts;
  for (const IdxSplit& split : o.splits) {
    int64_t count = 0;
    FLOWFEED_RETURN_IF_ERROR(WriteSplit(o, split, partial + "/" + split.name, threads, &count));
    counts.push_back(count);
    log << "wrote " << count << " " << split.name << " images\n";
  }
  {
    std::ofstream marker(partial + "/" + kMarker);
    marker << Describe(o, counts);
    if (!marker.flush()) return Status::IoError(partial + "/" + kMarker + ": cannot write");
  }
  // Before the rename that marks the folder complete: otherwise a power cut could keep the
  // rename and lose the files' data (empty PNGs in a folder that counts as complete).
  FLOWFEED_RETURN_IF_ERROR(SyncFilesystemOf(partial));
  if (fs::exists(out)) {  // a complete earlier build (checked above), being overwritten
    fs::remove_all(out, ec);
    if (ec) return Status::IoError(out + ": cannot remove: " + ec.message());
  }
  fs::rename(partial, out, ec);
  if (ec) return Status::IoError(partial + " -> " + out + ": cannot rename: " + ec.message());
  log << "wrote " << out << "\n";
  return Status::Ok();
}

}  // namespace flowfeed
