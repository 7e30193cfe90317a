// Tests of flowfeed/codec.h and engine/src/codec/codec.cc: DecodeImage, ConvertColor, EncodeJpeg.
#include "codec/codec.h"

#include <gtest/gtest.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace flowfeed {
namespace {

using test::PatternImage;
using test::SolidImage;

std::vector<uint8_t> Jpeg(const Image& img, int quality = 95) {
  std::vector<uint8_t> bytes;
  Status s = EncodeJpeg(img, quality, &bytes);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return bytes;
}

// PNG bytes of an RGB (or gray) image, in memory.
std::vector<uint8_t> Png(const Image& img) {
  cv::Mat m(img.height(), img.width(), CV_MAKETYPE(CV_8U, img.channels()),
            const_cast<uint8_t*>(img.data()));
  cv::Mat bgr;
  if (img.channels() == 3) cv::cvtColor(m, bgr, cv::COLOR_RGB2BGR); else bgr = m;
  std::vector<uint8_t> bytes;
  EXPECT_TRUE(cv::imencode(".png", bgr, bytes));
  return bytes;
}

Status Decode(const std::vector<uint8_t>& bytes, Image* out, ColorMode color = ColorMode::kRgb,
              int64_t max_pixels = int64_t(1) << 28, std::string_view name = "img/a.jpg") {
  DecodeOptions opt;
  opt.color = color;
  opt.max_pixels = max_pixels;
  return DecodeImage(bytes.data(), bytes.size(), opt, name, out);
}

double MeanAbsDiff(const Image& a, const Image& b) {
  EXPECT_EQ(a.height(), b.height());
  EXPECT_EQ(a.width(), b.width());
  EXPECT_EQ(a.channels(), b.channels());
  if (a.size_bytes() != b.size_bytes() || a.size_bytes() == 0) return 1e9;
  double sum = 0;
  for (size_t i = 0; i < a.size_bytes(); ++i) sum += std::abs(int(a.data()[i]) - int(b.data()[i]));
  return sum / double(a.size_bytes());
}

bool SameBytes(const Image& a, const Image& b) {
  return a.height() == b.height() && a.width() == b.width() && a.channels() == b.channels() &&
         a.dtype() == b.dtype() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

// A smooth image (no wrap-around edges) that JPEG reproduces closely.
Image SmoothImage(int h, int w, int channels) {
  Image img = Image::Allocate(h, w, channels);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c)
        img.row<uint8_t>(y)[x * channels + c] = uint8_t(20 + (x * 150) / w + (y * 60) / h + c * 20);
  return img;
}

void ExpectMessageHas(const Status& s, const std::string& part) {
  EXPECT_NE(s.message().find(part), std::string::npos)
      << "message \"" << s.message() << "\" lacks \"" << part << "\"";
}

TEST(CodecTest, JpegRoundTripRgb) {
  Image src = PatternImage(48, 64, 3, 7);
  Image out;
  ASSERT_OK(Decode(Jpeg(src), &out));
  EXPECT_EQ(out.height(), 48);
  EXPECT_EQ(out.width(), 64);
  EXPECT_EQ(out.channels(), 3);
  EXPECT_EQ(out.dtype(), DType::kUInt8);
  // The pattern wraps around (sharp colour edges) and 4:2:0 halves the chroma resolution, so
  // the bound is loose; the smooth image below gets a tight one.
  EXPECT_LT(MeanAbsDiff(src, out), 14.0);

  // The decoder itself is exact: the same pixels as OpenCV's libjpeg reader (within rounding).
  std::vector<uint8_t> bytes = Jpeg(src);
  cv::Mat ref = cv::imdecode(cv::Mat(1, int(bytes.size()), CV_8UC1, bytes.data()), cv::IMREAD_COLOR);
  ASSERT_FALSE(ref.empty());
  cv::cvtColor(ref, ref, cv::COLOR_BGR2RGB);
  int max_diff = 0;
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64 * 3; ++x)
      max_diff = std::max(max_diff, std::abs(int(out.row<uint8_t>(y)[x]) - int(ref.ptr<uint8_t>(y)[x])));
  EXPECT_LE(max_diff, 1);

  Image smooth = SmoothImage(40, 56, 3);
  ASSERT_OK(Decode(Jpeg(smooth), &out));
  EXPECT_LT(MeanAbsDiff(smooth, out), 2.0);
}

TEST(CodecTest, JpegRoundTripGray) {
  Image src = PatternImage(33, 47, 1, 3);
  std::vector<uint8_t> bytes = Jpeg(src);
  Image out;
  ASSERT_OK(Decode(bytes, &out, ColorMode::kGray));
  EXPECT_EQ(out.channels(), 1);
  EXPECT_EQ(out.height(), 33);
  EXPECT_EQ(out.width(), 47);
  EXPECT_LT(MeanAbsDiff(src, out), 4.0);

  // A gray JPEG asked for as RGB: three equal channels.
  Image rgb;
  ASSERT_OK(Decode(bytes, &rgb, ColorMode::kRgb));
  ASSERT_EQ(rgb.channels(), 3);
  for (int y = 0; y < rgb.height(); ++y)
    for (int x = 0; x < rgb.width(); ++x) {
      const uint8_t* p = rgb.row<uint8_t>(y) + x * 3;
      ASSERT_EQ(p[0], out.row<uint8_t>(y)[x]);
      ASSERT_EQ(p[1], p[0]);
      ASSERT_EQ(p[2], p[0]);
    }
}

TEST(CodecTest, JpegBgrAndGrayOptions) {
  Image src = SmoothImage(32, 40, 3);
  std::vector<uint8_t> bytes = Jpeg(src);
  Image rgb, bgr, gray;
  ASSERT_OK(Decode(bytes, &rgb, ColorMode::kRgb));
  ASSERT_OK(Decode(bytes, &bgr, ColorMode::kBgr));
  ASSERT_OK(Decode(bytes, &gray, ColorMode::kGray));
  ASSERT_EQ(bgr.channels(), 3);
  ASSERT_EQ(gray.channels(), 1);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 40; ++x) {
      const uint8_t* a = rgb.row<uint8_t>(y) + 3 * x;
      const uint8_t* b = bgr.row<uint8_t>(y) + 3 * x;
      ASSERT_EQ(a[0], b[2]);
      ASSERT_EQ(a[1], b[1]);
      ASSERT_EQ(a[2], b[0]);
      // Gray is the luma the JPEG stores; close to the luma of the RGB decode.
      double luma = 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2];
      ASSERT_NEAR(gray.row<uint8_t>(y)[x], luma, 3.0);
    }
}

TEST(CodecTest, PngIsLosslessAndRgbOrdered) {
  Image src = PatternImage(9, 11, 3, 2);
  uint8_t* p = src.row<uint8_t>(4) + 5 * 3;
  p[0] = 200;
  p[1] = 10;
  p[2] = 50;
  std::vector<uint8_t> bytes = Png(src);

  Image out;
  ASSERT_OK(Decode(bytes, &out, ColorMode::kRgb, 1 << 20, "img/a.png"));
  EXPECT_TRUE(SameBytes(src, out));
  const uint8_t* q = out.row<uint8_t>(4) + 5 * 3;
  EXPECT_EQ(q[0], 200);
  EXPECT_EQ(q[1], 10);
  EXPECT_EQ(q[2], 50);

  ASSERT_OK(Decode(bytes, &out, ColorMode::kBgr, 1 << 20, "img/a.png"));
  q = out.row<uint8_t>(4) + 5 * 3;
  EXPECT_EQ(q[0], 50);
  EXPECT_EQ(q[1], 10);
  EXPECT_EQ(q[2], 200);

  ASSERT_OK(Decode(bytes, &out, ColorMode::kGray, 1 << 20, "img/a.png"));
  ASSERT_EQ(out.channels(), 1);
  // 0.299 * 200 + 0.587 * 10 + 0.114 * 50 = 71.37
  EXPECT_EQ(out.row<uint8_t>(4)[5], 71);
}

TEST(CodecTest, GrayPngAsRgbReplicates) {
  Image src = PatternImage(6, 5, 1, 4);
  Image out;
  ASSERT_OK(Decode(Png(src), &out, ColorMode::kRgb, 0, "g.png"));
  ASSERT_EQ(out.channels(), 3);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 5; ++x)
      for (int c = 0; c < 3; ++c) ASSERT_EQ(out.row<uint8_t>(y)[x * 3 + c], src.row<uint8_t>(y)[x]);
  ASSERT_OK(Decode(Png(src), &out, ColorMode::kGray, 0, "g.png"));
  EXPECT_TRUE(SameBytes(src, out));
}

TEST(CodecTest, TruncatedJpegIsCorrupt) {
  std::vector<uint8_t> bytes = Jpeg(PatternImage(64, 80, 3, 1));
  bytes.resize(bytes.size() / 2);
  Image out;
  Status s = Decode(bytes, &out, ColorMode::kRgb, int64_t(1) << 28, "photos/cut.jpg");
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_EQ(s.message().rfind("photos/cut.jpg: ", 0), 0u) << s.message();
  ExpectMessageHas(s, "truncated or corrupt JPEG");

  // Gray output and a cut inside the header are corrupt as well.
  EXPECT_EQ(Decode(bytes, &out, ColorMode::kGray).code(), StatusCode::kCorrupt);
  bytes.resize(40);
  s = Decode(bytes, &out, ColorMode::kRgb, int64_t(1) << 28, "photos/cut.jpg");
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  ExpectMessageHas(s, "photos/cut.jpg");
}

TEST(CodecTest, TruncatedPngIsCorrupt) {
  std::vector<uint8_t> bytes = Png(PatternImage(64, 80, 3, 1));
  bytes.resize(bytes.size() / 2);
  Image out;
  Status s = Decode(bytes, &out, ColorMode::kRgb, int64_t(1) << 28, "cut.png");
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_EQ(s.message().rfind("cut.png: ", 0), 0u) << s.message();
}

TEST(CodecTest, EmptyInputIsCorrupt) {
  Image out;
  Status s = Decode({}, &out, ColorMode::kRgb, 0, "data/empty.jpg");
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_EQ(s.message(), "data/empty.jpg: empty file");
}

TEST(CodecTest, TextFileIsCorrupt) {
  std::string text = "Hello, this is not an image at all.\n";
  std::vector<uint8_t> bytes(text.begin(), text.end());
  Image out;
  Status s = Decode(bytes, &out, ColorMode::kRgb, 0, "notes.jpg");
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_EQ(s.message().rfind("notes.jpg: not a recognised image format", 0), 0u) << s.message();
  ExpectMessageHas(s, "48 65 6c 6c");  // "Hell"
}

TEST(CodecTest, GarbageAfterJpegHeaderIsCorrupt) {
  std::vector<uint8_t> bytes = Jpeg(PatternImage(64, 64, 3, 5));
  // Keep everything up to the end of the start-of-scan header, scramble the entropy-coded data.
  size_t sos = 0;
  for (size_t i = 2; i + 3 < bytes.size(); ++i)
    if (bytes[i] == 0xFF && bytes[i + 1] == 0xDA) {
      sos = i;
      break;
    }
  ASSERT_GT(sos, 0u);
  size_t data_start = sos + 2 + ((size_t(bytes[sos + 2]) << 8) | bytes[sos + 3]);
  uint32_t state = 12345;
  for (size_t i = data_start; i < bytes.size(); ++i) {
    state = state * 1664525u + 1013904223u;
    bytes[i] = uint8_t(state >> 24);
  }
  Image out;
  Status s = Decode(bytes, &out, ColorMode::kRgb, 0, "scrambled.jpg");
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_EQ(s.message().rfind("scrambled.jpg: ", 0), 0u) << s.message();
}

TEST(CodecTest, MaxPixelsRefusesBeforeDecoding) {
  Image out;
  Status s = Decode(Jpeg(PatternImage(48, 64, 3)), &out, ColorMode::kRgb, 1000, "big.jpg");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_EQ(s.message().rfind("big.jpg: ", 0), 0u) << s.message();
  ExpectMessageHas(s, "64x48");
  EXPECT_TRUE(out.empty());  // nothing was allocated or decoded

  s = Decode(Png(PatternImage(48, 64, 3)), &out, ColorMode::kRgb, 1000, "big.png");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  ExpectMessageHas(s, "big.png");
  EXPECT_TRUE(out.empty());

  // Exactly at the limit is fine; 0 means no limit.
  EXPECT_OK(Decode(Jpeg(PatternImage(48, 64, 3)), &out, ColorMode::kRgb, 48 * 64));
  EXPECT_OK(Decode(Jpeg(PatternImage(48, 64, 3)), &out, ColorMode::kRgb, 0));
}

TEST(CodecTest, DecodeReusesUnsharedStorage) {
  std::vector<uint8_t> bytes = Jpeg(PatternImage(30, 40, 3));
  Image out;
  ASSERT_OK(Decode(bytes, &out));
  const uint8_t* first = out.data();
  ASSERT_OK(Decode(bytes, &out));
  EXPECT_EQ(out.data(), first);

  // Shared storage is never written: the decoder allocates instead.
  Image keep = out;
  Image snapshot = out.Clone();
  ASSERT_OK(Decode(Jpeg(SolidImage(30, 40, 3, 9)), &out));
  EXPECT_NE(out.data(), keep.data());
  EXPECT_TRUE(SameBytes(keep, snapshot));
}

TEST(CodecTest, CmykJpegDecodesLikeOpenCv) {
  const int h = 16, w = 24;
  std::vector<uint8_t> cmyk(size_t(h) * w * 4);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &cmyk[(size_t(y) * w + x) * 4];
      p[0] = 200;                   // inverted (Adobe) C: R ~ 200 * K / 255
      p[1] = uint8_t(40 + 4 * x);   // G
      p[2] = uint8_t(30 + 8 * y);   // B
      p[3] = 255;                   // inverted K: no black
    }
  tjhandle tj = tjInitCompress();
  ASSERT_NE(tj, nullptr);
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  ASSERT_EQ(tjCompress2(tj, cmyk.data(), w, 0, h, TJPF_CMYK, &buf, &len, TJSAMP_444, 98, 0), 0)
      << tjGetErrorStr2(tj);
  std::vector<uint8_t> bytes(buf, buf + len);
  tjFree(buf);
  tjDestroy(tj);

  Image rgb;
  ASSERT_OK(Decode(bytes, &rgb, ColorMode::kRgb, 0, "cmyk.jpg"));
  ASSERT_EQ(rgb.channels(), 3);
  const uint8_t* p = rgb.row<uint8_t>(5) + 7 * 3;
  EXPECT_NEAR(p[0], 200, 3);
  EXPECT_NEAR(p[1], 40 + 4 * 7, 3);
  EXPECT_NEAR(p[2], 30 + 8 * 5, 3);

  // Same pixels as OpenCV's reader (which converts CMYK itself).
  cv::Mat ref = cv::imdecode(cv::Mat(1, int(bytes.size()), CV_8UC1, bytes.data()), cv::IMREAD_COLOR);
  ASSERT_FALSE(ref.empty());
  cv::cvtColor(ref, ref, cv::COLOR_BGR2RGB);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        ASSERT_NEAR(rgb.row<uint8_t>(y)[x * 3 + c], ref.at<cv::Vec3b>(y, x)[c], 1);

  Image bgr, gray;
  ASSERT_OK(Decode(bytes, &bgr, ColorMode::kBgr, 0, "cmyk.jpg"));
  EXPECT_EQ(bgr.row<uint8_t>(5)[7 * 3 + 2], p[0]);
  ASSERT_OK(Decode(bytes, &gray, ColorMode::kGray, 0, "cmyk.jpg"));
  EXPECT_EQ(gray.channels(), 1);

  // A truncated CMYK file is still corrupt (OpenCV would return a half-grey image).
  bytes.resize(bytes.size() * 2 / 3);
  Status s = Decode(bytes, &rgb, ColorMode::kRgb, 0, "cmyk.jpg");
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
}

TEST(CodecTest, GoodJpegAfterCorruptOneDecodes) {
  // libjpeg-turbo 2.1 leaves a decompressor whose header parse failed in a bad state; the codec
  // must not let one bad file spoil the next one on the same thread.
  // Cuts inside the headers (tables, "missing SOS marker", "Bogus Huffman table") and the data.
  std::vector<uint8_t> good = Jpeg(PatternImage(20, 30, 3));
  Image out;
  for (size_t len = 4; len < good.size(); len += 25) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + len);
    EXPECT_EQ(Decode(cut, &out).code(), StatusCode::kCorrupt) << "cut at " << len;
    ASSERT_OK(Decode(good, &out));
    EXPECT_EQ(out.height(), 20);
    EXPECT_EQ(out.width(), 30);
  }
}

TEST(CodecTest, DecodeFromManyThreads) {
  std::vector<uint8_t> bytes = Jpeg(PatternImage(40, 50, 3, 9));
  Image ref;
  ASSERT_OK(Decode(bytes, &ref));
  std::vector<int> ok(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      Image out;
      int good = 0;
      for (int i = 0; i < 20; ++i) {
        DecodeOptions opt;
        if (DecodeImage(bytes.data(), bytes.size(), opt, "x.jpg", &out).ok() && SameBytes(out, ref))
          ++good;
      }
      ok[t] = good;
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(ok[t], 20);
}

TEST(CodecTest, ConvertColorGrayToRgbReplicates) {
  Image img = PatternImage(3, 4, 1);
  Image keep = img;  // shared: ConvertColor must not write into it
  Image snapshot = img.Clone();
  Image scratch;
  ASSERT_OK(ConvertColor(ColorMode::kGray, ColorMode::kRgb, &img, &scratch));
  ASSERT_EQ(img.channels(), 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) EXPECT_EQ(img.row<uint8_t>(y)[x * 3 + c], snapshot.row<uint8_t>(y)[x]);
  EXPECT_TRUE(SameBytes(keep, snapshot));
}

TEST(CodecTest, ConvertColorRgbBgrGray) {
  Image img = Image::Allocate(1, 2, 3);
  const uint8_t px[6] = {200, 10, 50, 0, 255, 0};
  std::memcpy(img.data(), px, 6);
  Image scratch;
  ASSERT_OK(ConvertColor(ColorMode::kRgb, ColorMode::kBgr, &img, &scratch));
  const uint8_t want_bgr[6] = {50, 10, 200, 0, 255, 0};
  EXPECT_EQ(std::memcmp(img.data(), want_bgr, 6), 0);
  ASSERT_OK(ConvertColor(ColorMode::kBgr, ColorMode::kRgb, &img, &scratch));
  EXPECT_EQ(std::memcmp(img.data(), px, 6), 0);

  ASSERT_OK(ConvertColor(ColorMode::kRgb, ColorMode::kGray, &img, &scratch));
  ASSERT_EQ(img.channels(), 1);
  EXPECT_EQ(img.data()[0], 71);   // 0.299*200 + 0.587*10 + 0.114*50
  EXPECT_EQ(img.data()[1], 150);  // 0.587*255 = 149.7

  Image bgr = Image::Allocate(1, 1, 3);
  bgr.data()[0] = 50;  // B
  bgr.data()[1] = 10;
  bgr.data()[2] = 200;  // R
  ASSERT_OK(ConvertColor(ColorMode::kBgr, ColorMode::kGray, &bgr, &scratch));
  EXPECT_EQ(bgr.data()[0], 71);
}

TEST(CodecTest, ConvertColorSameModeIsNoOp) {
  Image img = PatternImage(4, 4, 3);
  const uint8_t* before = img.data();
  Image scratch;
  ASSERT_OK(ConvertColor(ColorMode::kRgb, ColorMode::kRgb, &img, &scratch));
  EXPECT_EQ(img.data(), before);
  EXPECT_TRUE(scratch.empty());
}

TEST(CodecTest, ConvertColorRejectsWrongChannelCount) {
  Image img = PatternImage(4, 4, 3);
  Image scratch;
  Status s = ConvertColor(ColorMode::kGray, ColorMode::kRgb, &img, &scratch);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  Image f = Image::Allocate(2, 2, 3, DType::kFloat32);
  EXPECT_EQ(ConvertColor(ColorMode::kRgb, ColorMode::kBgr, &f, &scratch).code(),
            StatusCode::kInvalidArgument);
}

TEST(CodecTest, EncodeJpegRejectsBadInput) {
  std::vector<uint8_t> out;
  EXPECT_EQ(EncodeJpeg(Image(), 90, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpeg(Image::Allocate(4, 4, 3, DType::kFloat32), 90, &out).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpeg(Image::Allocate(4, 4, 4), 90, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpeg(PatternImage(4, 4, 3), 0, &out).code(), StatusCode::kInvalidArgument);
  ASSERT_OK(EncodeJpeg(PatternImage(4, 4, 3), 90, &out));
  ASSERT_GE(out.size(), 3u);
  EXPECT_EQ(out[0], 0xFF);
  EXPECT_EQ(out[1], 0xD8);
}

}  // namespace
}  // namespace flowfeed
