#include "test_util.h"

#include <sys/wait.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#if FLOWFEED_HAVE_IMGCODECS
#include <opencv2/imgcodecs.hpp>
#endif
#include <opencv2/imgproc.hpp>
#include <stdexcept>

#include "codec/codec.h"

namespace fs = std::filesystem;

namespace flowfeed::test {

TempDir::TempDir() {
  std::string templ = (fs::temp_directory_path() / "flowfeed-test-XXXXXX").string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

void WriteText(const std::string& path, const std::string& text) {
  WriteBytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string ReadText(const std::string& path) {
  std::vector<uint8_t> bytes = ReadBytes(path);
  return std::string(bytes.begin(), bytes.end());
}

Image PatternImage(int height, int width, int channels, uint32_t seed) {
  Image img = Image::Allocate(height, width, channels);
  for (int y = 0; y < height; ++y) {
    uint8_t* row = img.row<uint8_t>(y);
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < channels; ++c)
        row[x * channels + c] =
            uint8_t((x * 255 / std::max(1, width - 1) * (c + 1) + y * 255 / std::max(1, height - 1) +
                     seed * 37 + c * 60) % 256);
  }
  return img;
}

Image SolidImage(int height, int width, int channels, uint8_t value) {
  Image img = Image::Allocate(height, width, channels);
  std::fill(img.data(), img.data() + img.size_bytes(), value);
  return img;
}

void WriteJpeg(const std::string& path, const Image& image, int quality) {
  std::vector<uint8_t> bytes;
  Status s = EncodeJpeg(image, quality, &bytes);
  if (!s.ok()) throw std::runtime_error(s.ToString());
  WriteBytes(path, bytes);
}

void WritePng(const std::string& path, const Image& image) {
#if !FLOWFEED_HAVE_IMGCODECS
  // Tests that write PNGs fail here in a JPEG-only build, saying why.
  (void)image;
  throw std::runtime_error(path + ": WritePng needs OpenCV's imgcodecs (FLOWFEED_OPENCV_IMGCODECS=OFF)");
#else
  cv::Mat m(image.height(), image.width(), image.channels() == 3 ? CV_8UC3 : CV_8UC1,
            const_cast<uint8_t*>(image.data()));
  cv::Mat out;
  if (image.channels() == 3) cv::cvtColor(m, out, cv::COLOR_RGB2BGR); else out = m;
  std::vector<uint8_t> bytes;
  if (!cv::imencode(".png", out, bytes)) throw std::runtime_error("png encode failed");
  WriteBytes(path, bytes);
#endif
}

namespace {
void PutBE32(std::vector<uint8_t>* v, uint32_t x) {
  v->push_back(uint8_t(x >> 24));
  v->push_back(uint8_t(x >> 16));
  v->push_back(uint8_t(x >> 8));
  v->push_back(uint8_t(x));
}
void WriteMaybeGz(const std::string& path, const std::vector<uint8_t>& bytes) {
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    fs::path p(path);
    if (p.has_parent_path()) fs::create_directories(p.parent_path());
    gzFile f = gzopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("gzopen " + path);
    gzwrite(f, bytes.data(), unsigned(bytes.size()));
    gzclose(f);
  } else {
    WriteBytes(path, bytes);
  }
}
}  // namespace

void WriteIdx(const std::string& images_path, const std::string& labels_path, int n, int rows,
              int cols) {
  std::vector<uint8_t> img;
  PutBE32(&img, 0x00000803);
  PutBE32(&img, uint32_t(n));
  PutBE32(&img, uint32_t(rows));
  PutBE32(&img, uint32_t(cols));
  for (int i = 0; i < n; ++i)
    for (int y = 0; y < rows; ++y)
      for (int x = 0; x < cols; ++x) img.push_back(uint8_t((i * 7 + y * cols + x) % 256));
  std::vector<uint8_t> lab;
  PutBE32(&lab, 0x00000801);
  PutBE32(&lab, uint32_t(n));
  for (int i = 0; i < n; ++i) lab.push_back(uint8_t(i % 10));
  WriteMaybeGz(images_path, img);
  WriteMaybeGz(labels_path, lab);
}

StageParams FillParams(const StageInfo& info, const std::map<std::string, ParamValue>& overrides) {
  StageParams params;
  for (const ParamSpec& spec : info.params) {
    auto it = overrides.find(spec.name);
    if (it != overrides.end())
      params.Set(spec.name, it->second);
    else if (spec.default_value)
      params.Set(spec.name, *spec.default_value);
    else
      ADD_FAILURE() << info.name << ": required parameter " << spec.name << " not given";
  }
  for (const auto& [name, value] : overrides)
    if (!info.FindParam(name)) ADD_FAILURE() << info.name << " has no parameter " << name;
  return params;
}

int MakeImageFolder(const std::string& root, int classes, int per_class, uint32_t seed) {
  int n = 0;
  for (int c = 0; c < classes; ++c) {
    for (int i = 0; i < per_class; ++i) {
      int h = 40 + int((seed * 13 + c * 7 + i * 11) % 41);
      int w = 40 + int((seed * 17 + c * 5 + i * 3) % 41);
      WriteJpeg(root + "/class" + std::to_string(c) + "/img" + std::to_string(i) + ".jpg",
                PatternImage(h, w, 3, seed + c * 100 + i));
      ++n;
    }
  }
  return n;
}

void WriteBandIdx(const std::string& images_path, const std::string& labels_path, int n,
                  uint32_t seed) {
  auto put32 = [](std::vector<uint8_t>* v, uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v->push_back(uint8_t(x >> s));
  };
  std::vector<uint8_t> img, lab;
  put32(&img, 0x803);
  put32(&img, uint32_t(n));
  put32(&img, 8);
  put32(&img, 8);
  put32(&lab, 0x801);
  put32(&lab, uint32_t(n));
  uint32_t r = seed * 2654435761u + 1;
  for (int i = 0; i < n; ++i) {
    const int c = i % 4;
    lab.push_back(uint8_t(c));
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        r = r * 1664525u + 1013904223u;
        img.push_back(uint8_t((y / 2 == c ? 150 : 40) + (r >> 26)));
      }
  }
  WriteBytes(images_path, img);
  WriteBytes(labels_path, lab);
}

ShellRun Shell(const std::string& command) {
  ShellRun r;
  FILE* f = popen((command + " 2>&1").c_str(), "r");
  if (!f) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.output.append(buf, n);
  int status = pclose(f);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

PipelineOptions IdxOptions(const TempDir& dir, int n, int rows, int cols) {
  WriteIdx(dir / "img.idx", dir / "lab.idx", n, rows, cols);
  PipelineOptions o;
  o.source.type = "idx";
  o.source.root = dir.path();
  o.source.images = "img.idx";
  o.source.labels = "lab.idx";
  o.batch.size = 8;
  o.threads = 2;
  o.epochs = 2;
  return o;
}

EpochsRun RunEpochs(const PipelineOptions& options, const StageRegistry* registry) {
  StageRegistry reg;
  RegisterBuiltinStages(&reg);
  EpochsRun r;
  auto p = Pipeline::Open(options, registry ? *registry : reg);
  if (!p.ok()) {
    r.status = p.status();
    return r;
  }
  for (int e = options.start_epoch; e < options.epochs; ++e)
    for (BatchPtr b;;) {
      r.status = p.value()->Next(&b);
      if (!r.status.ok()) return r;
      if (!b) break;
    }
  r.stats = p.value()->stats();
  for (const auto& e : r.stats.epochs) r.digests.push_back(e.batch_digest);
  return r;
}

}  // namespace flowfeed::test
