// Helpers shared by the tests: temporary folders, files the tests make themselves, status checks.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <map>

#include "flowfeed/image.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "flowfeed/status.h"

#define ASSERT_OK(expr)                                        \
  do {                                                         \
    const ::flowfeed::Status _s = ::flowfeed::test::ToStatus(expr); \
    ASSERT_TRUE(_s.ok()) << _s.ToString();                     \
  } while (0)
#define EXPECT_OK(expr)                                        \
  do {                                                         \
    const ::flowfeed::Status _s = ::flowfeed::test::ToStatus(expr); \
    EXPECT_TRUE(_s.ok()) << _s.ToString();                     \
  } while (0)

namespace flowfeed::test {

inline Status ToStatus(const Status& s) { return s; }
template <typename T>
Status ToStatus(const Result<T>& r) { return r.status(); }

// True in an ASan build (FLOWFEED_SANITIZE=address,undefined), for the few checks that measure
// memory (RSS) and so cannot hold while ASan quarantines freed blocks.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// Creates parent folders as needed.
void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes);
void WriteText(const std::string& path, const std::string& text);
std::vector<uint8_t> ReadBytes(const std::string& path);
std::string ReadText(const std::string& path);

// A smooth, seeded pattern (gradients plus a seeded offset) that survives JPEG well; uint8 HWC.
Image PatternImage(int height, int width, int channels, uint32_t seed = 0);
// Every pixel and channel equal to `value`.
Image SolidImage(int height, int width, int channels, uint8_t value);

// Writes an image file: JPEG (libjpeg-turbo, quality 95) or PNG (OpenCV). RGB channel order.
void WriteJpeg(const std::string& path, const Image& image, int quality = 95);
void WritePng(const std::string& path, const Image& image);

// Writes MNIST-format IDX files: n images of rows x cols (pixel = (i*7 + y*cols + x) % 256) and
// labels i % 10. gzip when the path ends in .gz.
void WriteIdx(const std::string& images_path, const std::string& labels_path, int n, int rows,
              int cols);

// A stage's parameters as the config parser would give them: every declared parameter, its
// default unless `overrides` has it. A required parameter missing from `overrides`, or an
// override the stage does not declare, fails the current test.
StageParams FillParams(const StageInfo& info, const std::map<std::string, ParamValue>& overrides);

// 8x8 MNIST-format IDX images in 4 classes: class i % 4 lights up rows 2c..2c+1 over seeded
// noise. The bands survive a horizontal flip, so labels stay true under augmentation.
void WriteBandIdx(const std::string& images_path, const std::string& labels_path, int n,
                  uint32_t seed);

// Runs `command` with /bin/sh, stdout and stderr together; code is the exit status (-1 when it
// did not exit normally).
struct ShellRun {
  int code = -1;
  std::string output;
};
ShellRun Shell(const std::string& command);

// Makes root/<class>/<i>.jpg for `classes` classes with `per_class` images each, sizes varying
// between 40 and 80 pixels. Returns the number of files written.
int MakeImageFolder(const std::string& root, int classes, int per_class, uint32_t seed = 1);

// Writes `n` IDX records of rows x cols into dir/img.idx, dir/lab.idx and returns options that
// read them: batches of 8, 2 threads, 2 epochs, no stages.
PipelineOptions IdxOptions(const TempDir& dir, int n, int rows = 4, int cols = 5);

// Every epoch of a pipeline with the built-in stages, to the end: the first failure (Open's or
// Next()'s), the stats, and each epoch's batch_digest.
struct EpochsRun {
  Status status;
  RunStats stats;
  std::vector<std::string> digests;
};
// `registry`: the stages it may use (nullptr: the built-in ones).
EpochsRun RunEpochs(const PipelineOptions& options, const StageRegistry* registry = nullptr);

}  // namespace flowfeed::test
