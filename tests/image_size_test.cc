// Tests of ReadHeaderSize (image_size.h): the size every format OpenCV decodes states in its
// header, and DecodeImage refusing an over-large one before anything is allocated.
#include "codec/image_size.h"

#include <gtest/gtest.h>

#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "codec/codec.h"

namespace flowfeed {
namespace {

std::vector<uint8_t> Encode(const char* ext, const cv::Mat& m) {
  std::vector<uint8_t> buf;
  if (!cv::haveImageWriter(ext)) return buf;
  try {
    if (!cv::imencode(ext, m, buf)) buf.clear();
  } catch (const cv::Exception&) {
    buf.clear();
  }
  return buf;
}

TEST(HeaderSize, EveryFormatOpenCvWrites) {
  // 9 x 7; JPEG 2000's default of 6 resolution levels needs a larger image.
  cv::Mat u8(7, 9, CV_8UC3, cv::Scalar(10, 20, 30)), gray(7, 9, CV_8UC1, cv::Scalar(99));
  cv::Mat f32(7, 9, CV_32FC3, cv::Scalar(0.5, 0.2, 1)), big(70, 90, CV_8UC3, cv::Scalar(4, 5, 6));
  const struct {
    const char* ext;
    const cv::Mat* mat;
    const char* format;
  } cases[] = {{".bmp", &u8, "BMP"},        {".ras", &u8, "Sun raster"}, {".pbm", &gray, "PNM"},
               {".pgm", &gray, "PNM"},      {".ppm", &u8, "PNM"},        {".pam", &u8, "PAM"},
               {".pfm", &f32, "PFM"},       {".tiff", &u8, "TIFF"},      {".webp", &u8, "WebP"},
               {".hdr", &f32, "Radiance HDR"}, {".jp2", &big, "JPEG 2000"}, {".exr", &f32, "OpenEXR"}};
  int checked = 0;
  for (const auto& c : cases) {
    const std::vector<uint8_t> bytes = Encode(c.ext, *c.mat);
    if (bytes.empty()) continue;  // this OpenCV does not write the format
    ++checked;
    const HeaderSize h = ReadHeaderSize(bytes.data(), bytes.size());
    EXPECT_STREQ(h.format, c.format) << c.ext;
    EXPECT_TRUE(h.known) << c.ext << ": " << h.problem;
    EXPECT_EQ(h.width, c.mat->cols) << c.ext;
    EXPECT_EQ(h.height, c.mat->rows) << c.ext;
  }
  EXPECT_GE(checked, 8);  // BMP, Sun raster, PNM, PAM, PFM, TIFF at least: OpenCV's own writers
}

TEST(HeaderSize, LosslessWebpAndTextHeaders) {
  cv::Mat u8(5, 300, CV_8UC3, cv::Scalar(1, 2, 3));
  std::vector<uint8_t> webp;
  if (cv::haveImageWriter(".webp") && cv::imencode(".webp", u8, webp, {cv::IMWRITE_WEBP_QUALITY, 101})) {
    const HeaderSize h = ReadHeaderSize(webp.data(), webp.size());
    EXPECT_TRUE(h.known) << h.problem;
    EXPECT_EQ(h.width, 300);
    EXPECT_EQ(h.height, 5);
  }
  const std::string pnm = "P5\n# a comment\n  640 # another\n480\n255\n";
  HeaderSize h = ReadHeaderSize(reinterpret_cast<const uint8_t*>(pnm.data()), pnm.size());
  EXPECT_TRUE(h.known);
  EXPECT_EQ(h.width, 640);
  EXPECT_EQ(h.height, 480);
  const std::string pam = "P7\nWIDTH 12\nHEIGHT 34\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n";
  h = ReadHeaderSize(reinterpret_cast<const uint8_t*>(pam.data()), pam.size());
  EXPECT_EQ(h.width, 12);
  EXPECT_EQ(h.height, 34);
}

TEST(HeaderSize, DamagedAndUnknown) {
  const std::string texts[] = {std::string("BM"), std::string("P6\n"),
                               std::string("II*\0\x08\0\0\0", 8),
                               std::string("RIFF\0\0\0\0WEBPVP8 ", 16)};
  for (const std::string& t : texts) {
    const HeaderSize h = ReadHeaderSize(reinterpret_cast<const uint8_t*>(t.data()), t.size());
    EXPECT_STRNE(h.format, "") << t;
    EXPECT_FALSE(h.known) << t;
    EXPECT_FALSE(h.problem.empty()) << t;
  }
  const std::string other = "hello";
  EXPECT_STREQ(ReadHeaderSize(reinterpret_cast<const uint8_t*>(other.data()), other.size()).format, "");
  EXPECT_STREQ(ReadHeaderSize(nullptr, 0).format, "");
}

// Regression (fuzz/corpus/decode/regress-bmp-huge-dimensions): OpenCV allocated the whole image
// a BMP header announced (3 GB from 50 bytes) before DecodeImage compared it with max_pixels.
TEST(HeaderSize, DecodeImageRefusesAHugeBmpBeforeDecoding) {
  std::vector<uint8_t> bmp(54, 0);
  bmp[0] = 'B';
  bmp[1] = 'M';
  bmp[14] = 40;                                         // BITMAPINFOHEADER
  const uint32_t side = 30000;
  std::memcpy(&bmp[18], &side, 4);
  std::memcpy(&bmp[22], &side, 4);
  bmp[26] = 1;                                          // planes
  bmp[28] = 24;                                         // bits per pixel
  Image out;
  const Status s = DecodeImage(bmp.data(), bmp.size(), DecodeOptions(), "big.bmp", &out);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("30000x30000"), std::string::npos) << s.message();
  // A tiled TIFF whose tiles alone are over the limit.
  std::vector<uint8_t> tiff = {'I', 'I', 42, 0, 8, 0, 0, 0, 4, 0};
  auto entry = [&](uint16_t tag, uint32_t value) {
    const uint8_t e[12] = {uint8_t(tag), uint8_t(tag >> 8), 4, 0, 1, 0, 0, 0, uint8_t(value),
                           uint8_t(value >> 8), uint8_t(value >> 16), uint8_t(value >> 24)};
    tiff.insert(tiff.end(), e, e + 12);
  };
  entry(256, 16);
  entry(257, 16);
  entry(322, 1u << 20);
  entry(323, 1u << 20);
  tiff.insert(tiff.end(), 4, 0);
  const Status t = DecodeImage(tiff.data(), tiff.size(), DecodeOptions(), "tiles.tif", &out);
  EXPECT_EQ(t.code(), StatusCode::kResourceExhausted) << t.ToString();
}

}  // namespace
}  // namespace flowfeed
