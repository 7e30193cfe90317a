// Regression tests for what fuzz/fuzz_decode.cc found in the decode path (codec.cc,
// jpeg_region.cc); each input it found is also in fuzz/corpus/decode/regress-*, replayed by the
// ctest test fuzz_replay_decode.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <thread>
#include <vector>

#include "codec/codec.h"
#include "test_util.h"

namespace flowfeed {
namespace {

std::vector<uint8_t> TestJpeg(int height, int width) {
  std::vector<uint8_t> jpeg;
  EXPECT_TRUE(EncodeJpeg(test::PatternImage(height, width, 3, 7), 90, &jpeg).ok());
  return jpeg;
}

bool Ask(void* context, int, int, JpegRegionRequest* r) {
  *r = *static_cast<const JpegRegionRequest*>(context);
  return true;
}

// DecodeJpegRegion called directly, with requests that the pipeline's own planners never make.
// Regression (regress-region-request-int-overflow): the bounds check summed left + width in
// int, which overflowed (undefined behaviour) for a request near INT_MAX.
TEST(JpegRegion, OutOfBoundsAndOverflowingRequestsAreDeclined) {
  const std::vector<uint8_t> jpeg = TestJpeg(24, 40);
  const JpegRegionRequest bad[] = {
      {0, INT_MAX, 1, INT_MAX, 1, 1},  // left + width overflows
      {INT_MAX, 0, INT_MAX, 1, 1, 1},  // top + height overflows
      {0, 20, 24, 21, 1, 1},           // one column past the right edge
      {-1, 0, 4, 4, 1, 1},
      {0, 0, 0, 4, 1, 1},
  };
  for (const JpegRegionRequest& r : bad) {
    Image out;
    JpegRegionResult result;
    bool done = true;
    JpegRegionRequest request = r;
    EXPECT_TRUE(
        DecodeJpegRegion(jpeg.data(), jpeg.size(), DecodeOptions(), Ask, &request, &out, &result, &done)
            .ok());
    EXPECT_FALSE(done) << r.top << "," << r.left << " " << r.height << "x" << r.width;
  }
}

// At full scale the region is exactly the whole-image decode's pixels (fuzz_decode checks the
// same on every input).
TEST(JpegRegion, FullScaleRegionMatchesTheWholeImage) {
  const std::vector<uint8_t> jpeg = TestJpeg(37, 45);
  Image whole;
  ASSERT_TRUE(DecodeImage(jpeg.data(), jpeg.size(), DecodeOptions(), "t", &whole).ok());
  JpegRegionRequest request{9, 13, 17, 21, 17, 21};
  Image out;
  JpegRegionResult result;
  bool done = false;
  ASSERT_TRUE(DecodeJpegRegion(jpeg.data(), jpeg.size(), DecodeOptions(), Ask, &request, &out,
                               &result, &done)
                  .ok());
  ASSERT_TRUE(done);
  ASSERT_EQ(result.scale_eighths, 8);
  ASSERT_EQ(result.width, 21);
  ASSERT_EQ(result.height, 17);
  for (int y = 0; y < result.height; ++y)
    ASSERT_EQ(std::memcmp(out.row<uint8_t>(result.y + y) + 3 * result.x,
                          whole.row<uint8_t>(result.origin_y + result.y + y) +
                              3 * (result.origin_x + result.x),
                          size_t(3 * result.width)),
              0)
        << "row " << y;
}

// Regression (regress-region-first-column-420): a crop of a 4:2:0 file's first column was
// decoded two pixels wide, one chroma sample, where libjpeg-turbo's h2v2 fancy upsampling gives
// other pixels than for the whole image, inside the crop too. Every narrow crop, at every
// position, must give the whole-image decode's pixels.
TEST(JpegRegion, NarrowCropsMatchTheWholeImage) {
  const std::vector<uint8_t> jpeg = TestJpeg(20, 24);  // 4:2:0
  Image whole;
  ASSERT_TRUE(DecodeImage(jpeg.data(), jpeg.size(), DecodeOptions(), "t", &whole).ok());
  for (int left = 0; left < 24; ++left)
    for (int width = 1; width <= 3 && left + width <= 24; ++width) {
      JpegRegionRequest request{3, left, 15, width, 15, width};
      Image out;
      JpegRegionResult result;
      bool done = false;
      ASSERT_TRUE(DecodeJpegRegion(jpeg.data(), jpeg.size(), DecodeOptions(), Ask, &request,
                                   &out, &result, &done)
                      .ok());
      ASSERT_TRUE(done);
      ASSERT_EQ(result.scale_eighths, 8);
      for (int y = 0; y < result.height; ++y)
        ASSERT_EQ(std::memcmp(out.row<uint8_t>(result.y + y) + 3 * result.x,
                              whole.row<uint8_t>(result.origin_y + result.y + y) +
                                  3 * (result.origin_x + result.x),
                              size_t(3 * result.width)),
                  0)
            << "crop at column " << left << ", " << width << " wide: row " << y;
    }
}

// Regression (regress-png-dimensions-int64-overflow): a PNG header of 2^32-1 x 2^32-1 made the
// max_pixels check multiply the sides in int64, which overflowed (undefined behaviour; in
// practice a negative count that passed the check).
TEST(ImageDecode, HugePngHeaderIsRefusedWithTheRightCount) {
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13,
                              'I',  'H', 'D', 'R'};
  png.insert(png.end(), 8, 0xFF);  // width and height 4294967295
  png.insert(png.end(), {8, 2, 0, 0, 0, 0, 0, 0, 0});
  Image out;
  const Status s = DecodeImage(png.data(), png.size(), DecodeOptions(), "big.png", &out);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("4294967295x4294967295 (18446744065119617025 pixels)"),
            std::string::npos)
      << s.message();
}

// Regression (regress-hdr-gray-mode): OpenCV's Radiance HDR reader ignores IMREAD_GRAYSCALE,
// and DecodeImage reported its 3 channels as an internal error instead of converting them.
TEST(ImageDecode, GrayModeWhereTheDecoderIgnoresIt) {
  cv::Mat f32(5, 6, CV_32FC3, cv::Scalar(0.25, 0.5, 0.75));
  std::vector<uint8_t> hdr;
  if (!cv::haveImageWriter(".hdr") || !cv::imencode(".hdr", f32, hdr)) GTEST_SKIP();
  DecodeOptions gray;
  gray.color = ColorMode::kGray;
  Image out;
  const Status s = DecodeImage(hdr.data(), hdr.size(), gray, "x.hdr", &out);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out.channels(), 1);
  EXPECT_EQ(out.height(), 5);
  EXPECT_EQ(out.width(), 6);
}

// Regression (regress-jpeg-odd-sampling-huge-dimensions): a JPEG whose sampling factors
// TurboJPEG cannot name goes to OpenCV, and went there without the max_pixels check, so a
// damaged header made OpenCV allocate gigabytes.
TEST(ImageDecode, OddSamplingJpegIsCheckedAgainstMaxPixels) {
  std::vector<uint8_t> jpeg = TestJpeg(16, 16);
  size_t sof = 0;
  for (size_t i = 2; i + 1 < jpeg.size(); ++i)
    if (jpeg[i] == 0xFF && jpeg[i + 1] == 0xC0) {
      sof = i;
      break;
    }
  ASSERT_GT(sof, 0u);
  // Height and width 60000; luma sampled 3x1, which TurboJPEG has no name for.
  jpeg[sof + 5] = 0xEA;
  jpeg[sof + 6] = 0x60;
  jpeg[sof + 7] = 0xEA;
  jpeg[sof + 8] = 0x60;
  jpeg[sof + 11] = 0x31;
  Image out;
  const Status s = DecodeImage(jpeg.data(), jpeg.size(), DecodeOptions(), "odd.jpg", &out);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
}

// A JPEG without its own Huffman tables (here: a baseline file with its DHT segments cut out,
// as Motion-JPEG frames are) must decode the same whatever the thread decoded before. libjpeg
// keeps tables on a decompressor from one image to the next, so with a decompressor reused per
// thread it decoded with the previous file's tables (regress-missing-huffman-tables: a
// damaged file whose chroma tables are gone gave different pixels on the two paths).
std::vector<uint8_t> WithoutHuffmanTables(const std::vector<uint8_t>& jpeg) {
  std::vector<uint8_t> out(jpeg.begin(), jpeg.begin() + 2);
  size_t i = 2;
  while (i + 4 <= jpeg.size() && jpeg[i] == 0xFF && jpeg[i + 1] != 0xDA) {
    const size_t len = (size_t(jpeg[i + 2]) << 8) | jpeg[i + 3];
    if (jpeg[i + 1] != 0xC4) out.insert(out.end(), jpeg.begin() + i, jpeg.begin() + i + 2 + len);
    i += 2 + len;
  }
  out.insert(out.end(), jpeg.begin() + i, jpeg.end());
  return out;
}

struct Decoded {
  Status whole;
  Image image;
  bool region_done = false;
  Image region;
};

Decoded DecodeBoth(const std::vector<uint8_t>& jpeg) {
  Decoded d;
  d.whole = DecodeImage(jpeg.data(), jpeg.size(), DecodeOptions(), "t", &d.image);
  JpegRegionRequest request{2, 3, 12, 14, 12, 14};
  JpegRegionResult result;
  EXPECT_TRUE(DecodeJpegRegion(jpeg.data(), jpeg.size(), DecodeOptions(), Ask, &request,
                               &d.region, &result, &d.region_done)
                  .ok());
  return d;
}

bool Same(const Image& a, const Image& b) {
  return a.height() == b.height() && a.width() == b.width() && a.channels() == b.channels() &&
         std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

TEST(JpegDecode, TablesDoNotCarryOverFromThePreviousImage) {
  const std::vector<uint8_t> abbreviated = WithoutHuffmanTables(TestJpeg(24, 32));
  // Optimised (non-standard) Huffman tables, for the thread to decode first.
  cv::Mat other(40, 48, CV_8UC3);
  cv::randu(other, 0, 255);
  std::vector<uint8_t> optimized;
  ASSERT_TRUE(cv::imencode(".jpg", other, optimized, {cv::IMWRITE_JPEG_OPTIMIZE, 1}));

  Decoded fresh, after;
  std::thread([&] { fresh = DecodeBoth(abbreviated); }).join();
  std::thread([&] {
    DecodeBoth(optimized);
    after = DecodeBoth(abbreviated);
  }).join();
  EXPECT_EQ(fresh.whole.code(), after.whole.code()) << fresh.whole.ToString() << " vs "
                                                    << after.whole.ToString();
  if (fresh.whole.ok() && after.whole.ok()) {
    EXPECT_TRUE(Same(fresh.image, after.image));
  }
  EXPECT_EQ(fresh.region_done, after.region_done);
  if (fresh.region_done && after.region_done) {
    EXPECT_TRUE(Same(fresh.region, after.region));
  }
}

}  // namespace
}  // namespace flowfeed
