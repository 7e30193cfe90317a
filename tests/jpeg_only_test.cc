// Tests of what a build without OpenCV's imgcodecs (FLOWFEED_OPENCV_IMGCODECS=OFF, the offline
// build of docs/offline.md) does with images, and that the ordinary build still decodes the same
// bytes through imgcodecs. Compiled in both builds; each expectation depends on which one it is.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "codec/codec.h"
#include "test_util.h"

namespace flowfeed {
namespace {

// A 2x1 8-bit grayscale PNG, pixels 10 and 200 (written once with Python's zlib, so that this
// test needs no PNG encoder).
const std::vector<uint8_t> kPng = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
    0x44, 0x52, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00,
    0x00, 0xd1, 0x49, 0x20, 0x56, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78,
    0x9c, 0x63, 0xe0, 0x3a, 0x01, 0x00, 0x00, 0xdf, 0x00, 0xd3, 0x4b, 0x21, 0xa5, 0x49,
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

TEST(JpegOnlyTest, MessageNamesTheFileTheFormatAndTheOption) {
  const std::string m = JpegOnlyMessage("photos/cat/001.png", "PNG");
  EXPECT_EQ(m.rfind("photos/cat/001.png: cannot decode PNG: ", 0), 0u) << m;
  EXPECT_NE(m.find("this build decodes JPEG only"), std::string::npos) << m;
  EXPECT_NE(m.find("FLOWFEED_OPENCV_IMGCODECS=OFF"), std::string::npos) << m;
  // A JPEG that reaches the fallback is one TurboJPEG refused: "decodes JPEG only" alone would
  // contradict itself.
  const std::string j = JpegOnlyMessage("x.jpg", "JPEG");
  EXPECT_NE(j.find("a variant TurboJPEG does not decode"), std::string::npos) << j;
}

TEST(JpegOnlyTest, PngDecodesOnlyWithImgcodecs) {
  DecodeOptions options;
  options.color = ColorMode::kGray;
  Image out;
  Status s = DecodeImage(kPng.data(), kPng.size(), options, "photos/cat/001.png", &out);
#if FLOWFEED_HAVE_IMGCODECS
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(out.height(), 1);
  ASSERT_EQ(out.width(), 2);
  EXPECT_EQ(out.data()[0], 10);
  EXPECT_EQ(out.data()[1], 200);
#else
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.ToString();
  EXPECT_EQ(s.message(), JpegOnlyMessage("photos/cat/001.png", "PNG"));
#endif
}

// Bytes that are no image at all get the same message in both builds, not the JPEG-only one.
TEST(JpegOnlyTest, UnknownBytesAreCorruptInEveryBuild) {
  const std::vector<uint8_t> junk = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
  Image out;
  Status s = DecodeImage(junk.data(), junk.size(), DecodeOptions(), "notes.txt", &out);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_NE(s.message().find("notes.txt: not a recognised image format"), std::string::npos)
      << s.ToString();
}

TEST(JpegOnlyTest, JpegDecodesInEveryBuild) {
  const Image img = test::PatternImage(16, 24, 3);
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(EncodeJpeg(img, 95, &bytes).ok());
  Image out;
  Status s = DecodeImage(bytes.data(), bytes.size(), DecodeOptions(), "a.jpg", &out);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out.height(), 16);
  EXPECT_EQ(out.width(), 24);
  EXPECT_EQ(out.channels(), 3);
}

}  // namespace
}  // namespace flowfeed
