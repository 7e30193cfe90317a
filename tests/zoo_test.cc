// The image zoo: every kind of file a real image folder holds, made by the test itself. Each one
// decodes to the right pixels (OpenCV's imdecode, an independent reader of the same formats, is
// the reference where one exists) or is skipped with a reason that names it; none crashes.
#include <gtest/gtest.h>
#include <turbojpeg.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>
#include <string>
#include <vector>

#include "codec/codec.h"
#include "flowfeed/config.h"
#include "flowfeed/pipeline.h"
#include "flowfeed/registry.h"
#include "flowfeed/stats.h"
#include "test_util.h"

namespace flowfeed {
namespace {

using test::TempDir;

// An image whose every quadrant differs, so any flip or rotation shows. Smooth inside each
// quadrant so that JPEG keeps it close.
Image Quadrants(int h, int w, int channels) {
  Image img = Image::Allocate(h, w, channels);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int q = (y >= h / 2 ? 2 : 0) + (x >= w / 2 ? 1 : 0);
      for (int c = 0; c < channels; ++c)
        img.row<uint8_t>(y)[x * channels + c] = uint8_t(30 + 50 * q + 7 * c + (x + y) % 5);
    }
  return img;
}

// JPEG through TurboJPEG with any subsampling and flags (TJFLAG_PROGRESSIVE ...).
std::vector<uint8_t> TjJpeg(const Image& img, int subsamp, int flags = 0, int quality = 95) {
  tjhandle tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  const int pf = img.channels() == 1 ? TJPF_GRAY : img.channels() == 4 ? TJPF_CMYK : TJPF_RGB;
  int rc = tjCompress2(tj, img.data(), img.width(), 0, img.height(), pf, &buf, &len, subsamp,
                       quality, flags);
  EXPECT_EQ(rc, 0) << tjGetErrorStr2(tj);
  std::vector<uint8_t> out(buf, buf + len);
  tjFree(buf);
  tjDestroy(tj);
  return out;
}

cv::Mat RgbMat(const Image& img) {
  cv::Mat m(img.height(), img.width(), CV_MAKETYPE(CV_8U, img.channels()),
            const_cast<uint8_t*>(img.data()));
  return m;
}

// OpenCV's reading of the bytes (EXIF orientation applied unless told otherwise), as RGB.
Image CvDecode(const std::vector<uint8_t>& bytes, bool orientation = true) {
  cv::Mat decoded = cv::imdecode(bytes, cv::IMREAD_COLOR | (orientation ? 0 : cv::IMREAD_IGNORE_ORIENTATION));
  EXPECT_FALSE(decoded.empty());
  Image out = Image::Allocate(decoded.rows, decoded.cols, 3);
  cv::Mat dst = RgbMat(out);
  cv::cvtColor(decoded, dst, cv::COLOR_BGR2RGB);
  return out;
}

Status Decode(const std::vector<uint8_t>& bytes, Image* out, bool orientation = true,
              ColorMode color = ColorMode::kRgb, int64_t max_pixels = int64_t(1) << 28) {
  DecodeOptions o;
  o.color = color;
  o.max_pixels = max_pixels;
  o.apply_orientation = orientation;
  return DecodeImage(bytes.data(), bytes.size(), o, "zoo/file", out);
}

bool Same(const Image& a, const Image& b) {
  return a.height() == b.height() && a.width() == b.width() && a.channels() == b.channels() &&
         std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

double MeanAbsDiff(const Image& a, const Image& b) {
  if (a.size_bytes() != b.size_bytes() || a.size_bytes() == 0) return 1e9;
  double sum = 0;
  for (size_t i = 0; i < a.size_bytes(); ++i) sum += std::abs(int(a.data()[i]) - int(b.data()[i]));
  return sum / double(a.size_bytes());
}

// The JPEG with an APP1 EXIF segment (IFD0 holding only the orientation tag) after SOI.
std::vector<uint8_t> WithExif(const std::vector<uint8_t>& jpeg, int orientation, bool little) {
  std::vector<uint8_t> tiff;
  auto u16 = [&](uint32_t v) {
    if (little) { tiff.push_back(uint8_t(v)); tiff.push_back(uint8_t(v >> 8)); }
    else { tiff.push_back(uint8_t(v >> 8)); tiff.push_back(uint8_t(v)); }
  };
  auto u32 = [&](uint32_t v) {
    if (little) { u16(v & 0xFFFF); u16(v >> 16); } else { u16(v >> 16); u16(v & 0xFFFF); }
  };
  tiff.push_back(little ? 'I' : 'M');
  tiff.push_back(little ? 'I' : 'M');
  u16(42);
  u32(8);       // IFD0 right after the header
  u16(2);       // two entries: an unrelated one first
  u16(0x010F);  // Make, ASCII, 4 bytes inline
  u16(2);
  u32(4);
  tiff.insert(tiff.end(), {'f', 'f', 'd', 0});
  u16(0x0112);  // Orientation, SHORT, 1
  u16(3);
  u32(1);
  u16(uint32_t(orientation));
  u16(0);
  u32(0);       // no next IFD
  std::vector<uint8_t> app1 = {0xFF, 0xE1, 0, 0, 'E', 'x', 'i', 'f', 0, 0};
  app1.insert(app1.end(), tiff.begin(), tiff.end());
  const size_t len = app1.size() - 2;
  app1[2] = uint8_t(len >> 8);
  app1[3] = uint8_t(len);
  std::vector<uint8_t> out(jpeg.begin(), jpeg.begin() + 2);
  out.insert(out.end(), app1.begin(), app1.end());
  out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
  return out;
}

void PutBe32(std::vector<uint8_t>* v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v->push_back(uint8_t(x >> s));
}

void PngChunk(std::vector<uint8_t>* png, const char* type, const std::vector<uint8_t>& data) {
  PutBe32(png, uint32_t(data.size()));
  const size_t start = png->size();
  png->insert(png->end(), type, type + 4);
  png->insert(png->end(), data.begin(), data.end());
  PutBe32(png, uint32_t(crc32(0, png->data() + start, uInt(png->size() - start))));
}

// An 8-bit palette PNG (colour type 3), written by hand since OpenCV writes none.
std::vector<uint8_t> PalettePng(int h, int w, const std::vector<uint8_t>& rgb_palette,
                                const std::vector<uint8_t>& indices) {
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr;
  PutBe32(&ihdr, uint32_t(w));
  PutBe32(&ihdr, uint32_t(h));
  ihdr.insert(ihdr.end(), {8, 3, 0, 0, 0});
  PngChunk(&png, "IHDR", ihdr);
  PngChunk(&png, "PLTE", rgb_palette);
  std::vector<uint8_t> raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), indices.begin() + y * w, indices.begin() + (y + 1) * w);
  }
  uLongf zlen = compressBound(uLong(raw.size()));
  std::vector<uint8_t> z(zlen);
  EXPECT_EQ(compress(z.data(), &zlen, raw.data(), uLong(raw.size())), Z_OK);
  z.resize(zlen);
  PngChunk(&png, "IDAT", z);
  PngChunk(&png, "IEND", {});
  return png;
}

std::vector<uint8_t> CvEncode(const std::string& ext, const cv::Mat& m,
                              const std::vector<int>& params = {}) {
  std::vector<uint8_t> bytes;
  EXPECT_TRUE(cv::imencode(ext, m, bytes, params));
  return bytes;
}

bool Contains(const std::vector<uint8_t>& v, std::initializer_list<uint8_t> seq) {
  return std::search(v.begin(), v.end(), seq.begin(), seq.end()) != v.end();
}

// Sets a baseline JPEG's frame size (SOF0) to height x width without touching anything else.
std::vector<uint8_t> WithFrameSize(std::vector<uint8_t> jpeg, int height, int width) {
  for (size_t i = 2; i + 8 < jpeg.size(); ++i)
    if (jpeg[i] == 0xFF && (jpeg[i + 1] == 0xC0 || jpeg[i + 1] == 0xC2)) {
      jpeg[i + 5] = uint8_t(height >> 8);
      jpeg[i + 6] = uint8_t(height);
      jpeg[i + 7] = uint8_t(width >> 8);
      jpeg[i + 8] = uint8_t(width);
      return jpeg;
    }
  ADD_FAILURE() << "no SOF marker";
  return jpeg;
}

// --- JPEG variants ------------------------------------------------------------------------------

TEST(Zoo, ProgressiveJpegHasTheBaselinePixels) {
  Image src = Quadrants(40, 56, 3);
  std::vector<uint8_t> base = TjJpeg(src, TJSAMP_420);
  std::vector<uint8_t> prog = TjJpeg(src, TJSAMP_420, TJFLAG_PROGRESSIVE);
  ASSERT_TRUE(Contains(prog, {0xFF, 0xC2})) << "not progressive (no SOF2)";
  Image a, b;
  ASSERT_OK(Decode(base, &a));
  ASSERT_OK(Decode(prog, &b));
  // Same quantised coefficients, only sent in several scans: the same pixels.
  EXPECT_TRUE(Same(a, b));
  EXPECT_TRUE(Same(b, CvDecode(prog)));
  // Cut short, a progressive file fails like a baseline one.
  std::vector<uint8_t> cut(prog.begin(), prog.begin() + long(prog.size() * 2 / 3));
  Status s = Decode(cut, &b);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
}

TEST(Zoo, GrayscaleJpegAsRgbAndGray) {
  Image src = Quadrants(24, 32, 1);
  std::vector<uint8_t> jpeg = TjJpeg(src, TJSAMP_GRAY);
  Image gray, rgb;
  ASSERT_OK(Decode(jpeg, &gray, true, ColorMode::kGray));
  ASSERT_OK(Decode(jpeg, &rgb, true, ColorMode::kRgb));
  ASSERT_EQ(gray.channels(), 1);
  ASSERT_EQ(rgb.channels(), 3);
  EXPECT_LT(MeanAbsDiff(gray, src), 2.0);
  for (int i = 0; i < 24 * 32; ++i) {
    ASSERT_EQ(rgb.data()[3 * i], gray.data()[i]);
    ASSERT_EQ(rgb.data()[3 * i + 1], gray.data()[i]);
    ASSERT_EQ(rgb.data()[3 * i + 2], gray.data()[i]);
  }
}

TEST(Zoo, CmykJpegDecodesToRgb) {
  // CMYK input: an Adobe-style inverted CMYK JPEG, as Photoshop writes.
  Image cmyk = Image::Allocate(16, 16, 4);
  for (int i = 0; i < 16 * 16; ++i) {
    cmyk.data()[4 * i] = 255;      // no cyan (inverted)
    cmyk.data()[4 * i + 1] = 55;   // much magenta
    cmyk.data()[4 * i + 2] = 255;  // no yellow
    cmyk.data()[4 * i + 3] = 255;  // no black
  }
  std::vector<uint8_t> jpeg = TjJpeg(cmyk, TJSAMP_444, 0, 100);
  Image rgb;
  ASSERT_OK(Decode(jpeg, &rgb));
  ASSERT_EQ(rgb.channels(), 3);
  EXPECT_TRUE(Same(rgb, CvDecode(jpeg)));
  // Magenta: red and blue high, green low.
  EXPECT_GT(rgb.data()[0], 200);
  EXPECT_LT(rgb.data()[1], 90);
  EXPECT_GT(rgb.data()[2], 200);
}

TEST(Zoo, EverySubsamplingDecodesLikeOpenCv) {
  Image src = Quadrants(48, 64, 3);
  const std::map<int, const char*> kinds = {{TJSAMP_444, "4:4:4"}, {TJSAMP_422, "4:2:2"},
                                            {TJSAMP_420, "4:2:0"}, {TJSAMP_440, "4:4:0"}};
  for (const auto& [samp, name] : kinds) {
    SCOPED_TRACE(name);
    std::vector<uint8_t> jpeg = TjJpeg(src, samp);
    Image img;
    ASSERT_OK(Decode(jpeg, &img));
    EXPECT_TRUE(Same(img, CvDecode(jpeg)));
    EXPECT_LT(MeanAbsDiff(img, src), 4.0);
  }
}

TEST(Zoo, RestartMarkersWholeAndRegion) {
  Image src = Quadrants(64, 80, 3);
  cv::Mat bgr;
  cv::cvtColor(RgbMat(src), bgr, cv::COLOR_RGB2BGR);
  std::vector<uint8_t> jpeg = CvEncode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, 95,
                                                     cv::IMWRITE_JPEG_RST_INTERVAL, 1});
  ASSERT_TRUE(Contains(jpeg, {0xFF, 0xDD})) << "no DRI segment";
  ASSERT_TRUE(Contains(jpeg, {0xFF, 0xD0})) << "no RST0 marker";
  Image whole;
  ASSERT_OK(Decode(jpeg, &whole));
  EXPECT_TRUE(Same(whole, CvDecode(jpeg)));

  // The region path skips rows (and their restart intervals) above the crop: the crop's pixels
  // are the whole decode's.
  struct Ctx { int top, left, h, w; } ctx{20, 24, 30, 40};
  JpegRegionPlanner planner = [](void* c, int, int, JpegRegionRequest* r) {
    Ctx& x = *static_cast<Ctx*>(c);
    r->top = x.top, r->left = x.left, r->height = x.h, r->width = x.w;
    r->min_height = x.h, r->min_width = x.w;  // full scale
    return true;
  };
  DecodeOptions opt;
  Image region;
  JpegRegionResult res;
  bool done = false;
  ASSERT_OK(DecodeJpegRegion(jpeg.data(), jpeg.size(), opt, planner, &ctx, &region, &res, &done));
  ASSERT_TRUE(done);
  ASSERT_EQ(res.scale_eighths, 8);
  for (int y = 0; y < ctx.h; ++y)
    ASSERT_EQ(std::memcmp(region.row<uint8_t>(res.y + y) + res.x * 3,
                          whole.row<uint8_t>(ctx.top + y) + ctx.left * 3, size_t(ctx.w) * 3),
              0)
        << "row " << y;
}

// --- EXIF orientation ---------------------------------------------------------------------------

TEST(Zoo, ExifOrientationIsAppliedLikeOpenCvForAllEight) {
  Image src = Quadrants(16, 24, 3);
  std::vector<uint8_t> plain = TjJpeg(src, TJSAMP_444, 0, 100);
  Image upright;
  ASSERT_OK(Decode(plain, &upright));
  for (bool little : {true, false}) {
    for (int o = 1; o <= 8; ++o) {
      SCOPED_TRACE("orientation " + std::to_string(o) + (little ? " II" : " MM"));
      std::vector<uint8_t> jpeg = WithExif(plain, o, little);
      EXPECT_EQ(JpegExifOrientation(jpeg.data(), jpeg.size()), o);
      Image img;
      ASSERT_OK(Decode(jpeg, &img));
      if (o >= 5) {
        EXPECT_EQ(img.height(), 24);
        EXPECT_EQ(img.width(), 16);
      }
      EXPECT_TRUE(Same(img, CvDecode(jpeg))) << "differs from cv::imdecode";
      // orientation: ignore keeps the stored pixels.
      Image stored;
      ASSERT_OK(Decode(jpeg, &stored, /*orientation=*/false));
      EXPECT_TRUE(Same(stored, upright));
      // Gray output turns the same way.
      Image gray;
      ASSERT_OK(Decode(jpeg, &gray, true, ColorMode::kGray));
      EXPECT_EQ(gray.height(), img.height());
      EXPECT_EQ(gray.width(), img.width());
    }
  }
  // The region decoder declines rotated files (its rectangle is in upright coordinates) and
  // takes upright ones.
  auto planner = [](void*, int h, int w, JpegRegionRequest* r) {
    r->top = 0, r->left = 0, r->height = h, r->width = w, r->min_height = h, r->min_width = w;
    return true;
  };
  for (int o : {1, 6}) {
    std::vector<uint8_t> jpeg = WithExif(plain, o, true);
    Image region;
    JpegRegionResult res;
    bool done = false;
    DecodeOptions opt;
    ASSERT_OK(DecodeJpegRegion(jpeg.data(), jpeg.size(), opt, planner, nullptr, &region, &res,
                               &done));
    EXPECT_EQ(done, o == 1) << "orientation " << o;
    opt.apply_orientation = false;
    ASSERT_OK(DecodeJpegRegion(jpeg.data(), jpeg.size(), opt, planner, nullptr, &region, &res,
                               &done));
    EXPECT_TRUE(done) << "orientation " << o << " ignored";
  }
}

TEST(Zoo, DamagedExifIsIgnoredNotFatal) {
  Image src = Quadrants(16, 24, 3);
  std::vector<uint8_t> plain = TjJpeg(src, TJSAMP_444, 0, 100);
  Image upright;
  ASSERT_OK(Decode(plain, &upright));
  std::vector<uint8_t> good = WithExif(plain, 6, true);
  const size_t tiff = 2 + 10;  // SOI, then APP1's marker, length and "Exif\0\0"
  std::vector<std::vector<uint8_t>> bad;
  {
    auto v = good;  // IFD offset far past the segment
    v[tiff + 4] = 0xF0, v[tiff + 5] = 0xFF, v[tiff + 6] = 0xFF, v[tiff + 7] = 0xFF;
    bad.push_back(v);
  }
  {
    auto v = good;  // the orientation entry typed LONG, not SHORT
    v[tiff + 10 + 12 + 2] = 4;
    bad.push_back(v);
  }
  {
    auto v = good;  // not a TIFF byte order
    v[tiff] = 'X';
    bad.push_back(v);
  }
  {
    auto v = good;  // orientation value out of range
    v[tiff + 10 + 12 + 8] = 9;
    bad.push_back(v);
  }
  {
    auto v = good;  // APP1 length shorter than its TIFF header
    v[4] = 0, v[5] = 10;
    bad.push_back(v);  // the JPEG itself is now damaged, which the decoder may report
  }
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    EXPECT_EQ(JpegExifOrientation(bad[i].data(), bad[i].size()), 1);
    Image img;
    Status s = Decode(bad[i], &img);
    if (i + 1 < bad.size()) {
      ASSERT_OK(s);
      EXPECT_TRUE(Same(img, upright));
    } else if (!s.ok()) {
      EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
    }
  }
  // An entry count running past the segment: the entries that are there still count.
  {
    auto v = good;
    v[tiff + 8] = 0xFF, v[tiff + 9] = 0xFF;
    EXPECT_EQ(JpegExifOrientation(v.data(), v.size()), 6);
  }
  // Every prefix of the EXIF-carrying file: no crash, no out-of-bounds read (the sanitizer
  // build checks the latter), an orientation in range.
  for (size_t n = 0; n <= 60 && n <= good.size(); ++n) {
    const int o = JpegExifOrientation(good.data(), n);
    EXPECT_TRUE(o >= 1 && o <= 8);
  }
}

// --- PNG variants -------------------------------------------------------------------------------

TEST(Zoo, SixteenBitPngKeepsTheHighByte) {
  cv::Mat m16(6, 9, CV_16UC3);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 9; ++x)
      m16.at<cv::Vec3w>(y, x) = cv::Vec3w(uint16_t(1000 * x + 7), uint16_t(9000 * y + 255),
                                           uint16_t(65535 - 3000 * x));
  std::vector<uint8_t> png = CvEncode(".png", m16);
  ASSERT_EQ(png[24], 16) << "not a 16-bit PNG";  // IHDR bit depth
  Image img;
  ASSERT_OK(Decode(png, &img));
  ASSERT_EQ(img.channels(), 3);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 9; ++x) {
      const cv::Vec3w bgr = m16.at<cv::Vec3w>(y, x);
      const uint8_t* px = img.row<uint8_t>(y) + 3 * x;
      EXPECT_EQ(px[0], bgr[2] >> 8);  // RGB out, BGR in
      EXPECT_EQ(px[1], bgr[1] >> 8);
      EXPECT_EQ(px[2], bgr[0] >> 8);
    }
}

TEST(Zoo, PngAlphaIsDroppedNotBlended) {
  cv::Mat bgra(5, 7, CV_8UC4);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x)
      bgra.at<cv::Vec4b>(y, x) = cv::Vec4b(uint8_t(10 * x), uint8_t(20 * y), 200, uint8_t(37 * x));
  std::vector<uint8_t> png = CvEncode(".png", bgra);
  ASSERT_EQ(png[25], 6) << "not an RGBA PNG";  // IHDR colour type
  Image img;
  ASSERT_OK(Decode(png, &img));
  ASSERT_EQ(img.channels(), 3);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x) {
      const uint8_t* px = img.row<uint8_t>(y) + 3 * x;
      EXPECT_EQ(px[0], 200);
      EXPECT_EQ(px[1], 20 * y);
      EXPECT_EQ(px[2], 10 * x);
    }
}

TEST(Zoo, PalettePngIsExpanded) {
  const std::vector<uint8_t> palette = {255, 0, 0, 0, 255, 0, 0, 0, 255, 12, 34, 56};
  std::vector<uint8_t> indices(4 * 6);
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = uint8_t(i % 4);
  std::vector<uint8_t> png = PalettePng(4, 6, palette, indices);
  Image img;
  ASSERT_OK(Decode(png, &img));
  ASSERT_EQ(img.height(), 4);
  ASSERT_EQ(img.width(), 6);
  for (size_t i = 0; i < indices.size(); ++i)
    for (int c = 0; c < 3; ++c)
      ASSERT_EQ(img.data()[3 * i + size_t(c)], palette[3 * indices[i] + size_t(c)]) << i;
  Image gray;
  ASSERT_OK(Decode(png, &gray, true, ColorMode::kGray));
  EXPECT_EQ(gray.channels(), 1);
}

// --- Sizes --------------------------------------------------------------------------------------

TEST(Zoo, OneByOneImages) {
  Image px = Image::Allocate(1, 1, 3);
  px.data()[0] = 200, px.data()[1] = 100, px.data()[2] = 50;
  for (const std::vector<uint8_t>& bytes :
       {TjJpeg(px, TJSAMP_444, 0, 100), TjJpeg(px, TJSAMP_420, TJFLAG_PROGRESSIVE, 100),
        CvEncode(".png", cv::Mat(1, 1, CV_8UC3, cv::Scalar(50, 100, 200)))}) {
    Image img;
    ASSERT_OK(Decode(bytes, &img));
    ASSERT_EQ(img.height(), 1);
    ASSERT_EQ(img.width(), 1);
    EXPECT_NEAR(img.data()[0], 200, 3);
    EXPECT_NEAR(img.data()[1], 100, 3);
    EXPECT_NEAR(img.data()[2], 50, 3);
  }
}

TEST(Zoo, HugeHeaderIsRefusedBeforeAllocating) {
  Image src = Quadrants(16, 16, 3);
  std::vector<uint8_t> jpeg = WithFrameSize(TjJpeg(src, TJSAMP_420), 65000, 65000);
  std::vector<uint8_t> png = CvEncode(".png", RgbMat(src));
  png[16] = 0, png[17] = 0, png[18] = 0xFD, png[19] = 0xE8;  // IHDR width 65000
  png[20] = 0, png[21] = 0, png[22] = 0xFD, png[23] = 0xE8;  // height 65000
  for (const auto& bytes : {jpeg, png}) {
    Image img;
    Status s = Decode(bytes, &img);
    ASSERT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
    EXPECT_NE(s.message().find("65000x65000"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("max_pixels"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("zoo/file"), std::string::npos) << s.message();
    EXPECT_TRUE(img.empty()) << "allocated " << img.ShapeString();
  }
  // The limit is the caller's: 16x16 = 256 pixels passes 256 and fails 255.
  Image img;
  EXPECT_OK(Decode(TjJpeg(src, TJSAMP_420), &img, true, ColorMode::kRgb, 256));
  EXPECT_EQ(Decode(TjJpeg(src, TJSAMP_420), &img, true, ColorMode::kRgb, 255).code(),
            StatusCode::kResourceExhausted);
}

// --- The whole zoo through the pipeline ---------------------------------------------------------

struct ZooFile {
  std::string name;
  std::vector<uint8_t> bytes;
  std::string skip_reason;  // "" when it must decode
};

std::vector<ZooFile> MakeZoo() {
  Image src = Quadrants(40, 56, 3);
  Image gray = Quadrants(30, 20, 1);
  Image tiny = Image::Allocate(1, 1, 3);
  std::memset(tiny.data(), 128, 3);
  Image small = Quadrants(10, 12, 3);
  cv::Mat bgr;
  cv::cvtColor(RgbMat(src), bgr, cv::COLOR_RGB2BGR);
  cv::Mat bgra;
  cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
  cv::Mat m16;
  bgr.convertTo(m16, CV_16UC3, 257.0);
  Image cmyk = Image::Allocate(20, 20, 4);
  std::memset(cmyk.data(), 180, cmyk.size_bytes());
  std::vector<uint8_t> baseline = TjJpeg(src, TJSAMP_420);
  std::vector<uint8_t> truncated(baseline.begin(), baseline.begin() + long(baseline.size() / 2));
  std::vector<uint8_t> indices(12 * 9);
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = uint8_t(i % 3);
  std::string text = "name,label\ncat,1\n";
  return {
      {"baseline.jpg", baseline, ""},
      {"progressive.jpg", TjJpeg(src, TJSAMP_420, TJFLAG_PROGRESSIVE), ""},
      {"gray.jpg", TjJpeg(gray, TJSAMP_GRAY), ""},
      {"cmyk.jpg", TjJpeg(cmyk, TJSAMP_444), ""},
      {"restart.jpg", CvEncode(".jpg", bgr, {cv::IMWRITE_JPEG_RST_INTERVAL, 2}), ""},
      {"s444.jpg", TjJpeg(src, TJSAMP_444), ""},
      {"s422.jpg", TjJpeg(src, TJSAMP_422), ""},
      {"rotated.jpg", WithExif(baseline, 6, false), ""},
      {"png16.png", CvEncode(".png", m16), ""},
      {"alpha.png", CvEncode(".png", bgra), ""},
      {"palette.png", PalettePng(9, 12, {1, 2, 3, 90, 80, 70, 250, 240, 230}, indices), ""},
      {"one_pixel.jpg", TjJpeg(tiny, TJSAMP_444), ""},
      {"smaller_than_crop.png", CvEncode(".png", RgbMat(small)), ""},
      {"huge_header.jpg", WithFrameSize(baseline, 65000, 65000), "max_pixels"},
      {"truncated.jpg", truncated, "truncated or corrupt JPEG"},
      {"zero_bytes.jpg", {}, "empty file"},
      {"text.jpg", std::vector<uint8_t>(text.begin(), text.end()), "not a recognised image format"},
  };
}

TEST(Zoo, EveryFileDecodesOrIsSkippedWithItsReason) {
  TempDir dir;
  std::vector<ZooFile> zoo = MakeZoo();
  size_t good = 0;
  for (size_t i = 0; i < zoo.size(); ++i) {
    test::WriteBytes(dir / ("zoo/c" + std::to_string(i % 2) + "/" + zoo[i].name), zoo[i].bytes);
    if (zoo[i].skip_reason.empty()) ++good;
  }
  StageRegistry registry;
  RegisterBuiltinStages(&registry);
  // Both decode paths: fused (region decode of the crop) and whole images; crops larger than
  // some images, so the small ones are enlarged or padded.
  for (const std::string crop : {"random_resized_crop, size: 32", "center_crop, size: 32",
                                  "resize, size: [32, 32]"}) {
    for (bool fuse : {true, false}) {
      SCOPED_TRACE(crop + (fuse ? " fused" : " unfused"));
      const std::string yaml = "seed: 3\nepochs: 1\nthreads: 2\nfuse: " +
                               std::string(fuse ? "true" : "false") +
                               "\nsource: {type: image_folder, root: " + dir / "zoo" +
                               "}\npipeline:\n  - {type: decode, max_pixels: 100000000}\n"
                               "  - {type: " + crop + "}\nbatch: {size: 4}\n";
      auto options = ParseConfig(yaml, "zoo.yaml", {}, registry);
      ASSERT_OK(options);
      auto opened = Pipeline::Open(options.value(), registry);
      ASSERT_OK(opened);
      Pipeline& p = *opened.value();
      std::vector<int64_t> sizes;
      while (true) {
        BatchPtr b;
        ASSERT_OK(p.Next(&b));
        if (!b) break;
        sizes.push_back(b->size);
        EXPECT_EQ(b->height, 32);
        EXPECT_EQ(b->width, 32);
        EXPECT_EQ(b->channels, 3);
      }
      int64_t delivered = 0;
      for (size_t i = 0; i < sizes.size(); ++i) {
        delivered += sizes[i];
        if (i + 1 < sizes.size()) {
          EXPECT_EQ(sizes[i], 4) << "a skip shortened batch " << i;
        }
      }
      EXPECT_EQ(delivered, int64_t(good));
      const RunStats stats = p.stats();
      const EpochStats& e = stats.epochs.at(0);
      ASSERT_EQ(e.skipped_count, int64_t(zoo.size() - good));
      ASSERT_EQ(e.skipped.size(), zoo.size() - good);
      std::map<std::string, std::string> reasons;
      for (const SkippedSample& s : e.skipped)
        reasons[s.source.substr(s.source.rfind('/') + 1)] = s.reason;
      for (const ZooFile& f : zoo) {
        if (f.skip_reason.empty()) {
          EXPECT_EQ(reasons.count(f.name), 0u) << f.name << " was skipped: " << reasons[f.name];
          continue;
        }
        ASSERT_EQ(reasons.count(f.name), 1u) << f.name << " was not skipped";
        EXPECT_NE(reasons[f.name].find(f.skip_reason), std::string::npos)
            << f.name << ": " << reasons[f.name];
        EXPECT_NE(reasons[f.name].find(f.name), std::string::npos)
            << "the reason does not name the file: " << reasons[f.name];
      }
    }
  }
}

TEST(Zoo, OrientationParameterOfTheDecodeStage) {
  TempDir dir;
  Image src = Quadrants(16, 24, 3);
  test::WriteBytes(dir / "photos/a/rotated.jpg", WithExif(TjJpeg(src, TJSAMP_444, 0, 100), 6, true));
  StageRegistry registry;
  RegisterBuiltinStages(&registry);
  for (const std::string mode : {"exif", "ignore"}) {
    const std::string yaml = "epochs: 1\nsource: {type: image_folder, root: " + dir / "photos" +
                             "}\npipeline:\n  - {type: decode, orientation: " + mode +
                             "}\nbatch: {size: 1}\n";
    auto options = ParseConfig(yaml, "o.yaml", {}, registry);
    ASSERT_OK(options);
    auto opened = Pipeline::Open(options.value(), registry);
    ASSERT_OK(opened);
    BatchPtr b;
    ASSERT_OK(opened.value()->Next(&b));
    ASSERT_TRUE(b);
    // Rotated by 90 degrees the 16x24 image stands 24 high.
    EXPECT_EQ(b->height, mode == "exif" ? 24 : 16) << mode;
    EXPECT_EQ(b->width, mode == "exif" ? 16 : 24) << mode;
  }
  auto bad = ParseConfig("source: {type: image_folder, root: /x}\npipeline:\n  - {type: decode, "
                         "orientation: sideways}\n",
                         "o.yaml", {}, registry);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("orientation"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace flowfeed
