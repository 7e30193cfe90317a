// The conversion of a sample into its place in the batch (engine/src/pipeline/convert.h): the
// SSE path must give the scalar path's bits, and both must give what the plain per-pixel
// formula gives, for every layout, dtype pair, flip and value map.
#include "pipeline/convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace flowfeed {
namespace {

// An HWC image of random values: any byte for uint8; for float32, values around and beyond
// [0, 255], with halves (the rounding ties) and fractions.
Image RandomImage(int h, int w, int c, DType dtype, uint32_t seed) {
  Image img = Image::Allocate(h, w, c, dtype);
  std::mt19937 rng(seed);
  for (int y = 0; y < h; ++y) {
    if (dtype == DType::kUInt8) {
      uint8_t* row = img.row<uint8_t>(y);
      for (int i = 0; i < w * c; ++i) row[i] = uint8_t(rng());
    } else {
      float* row = img.row<float>(y);
      for (int i = 0; i < w * c; ++i) {
        const int k = int(rng() % 700) - 200;  // -200 .. 499
        row[i] = float(k) * 0.5f + (rng() % 4 == 0 ? 0.125f : 0.f);
      }
    }
  }
  return img;
}

OutputOp Op(bool flip, int affine_values) {
  OutputOp op;
  op.flip = flip;
  op.affine_values = affine_values;
  // ImageNet's mean and std, as normalize turns them into v * a + b.
  const float mean[4] = {123.675f, 116.28f, 103.53f, 100.f};
  const float stdev[4] = {58.395f, 57.12f, 57.375f, 50.f};
  for (int c = 0; c < OutputOp::kMaxValues; ++c) {
    op.a[c] = 1.f / stdev[c];
    op.b[c] = -mean[c] / stdev[c];
  }
  return op;
}

size_t OutBytes(const Image& img, DType out) {
  return size_t(img.height()) * img.width() * img.channels() * DTypeSize(out);
}

// The plain formula, one value at a time, written independently of convert.cc.
std::vector<uint8_t> Reference(const Image& img, Layout layout, DType out, const OutputOp& op) {
  const int h = img.height(), w = img.width(), c = img.channels();
  std::vector<uint8_t> dst(OutBytes(img, out));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int ch = 0; ch < c; ++ch) {
        const int sx = op.flip ? w - 1 - x : x;
        const size_t si = (size_t(y) * w + sx) * c + ch;
        float v = img.dtype() == DType::kUInt8 ? float(img.data()[si])
                                               : reinterpret_cast<const float*>(img.data())[si];
        if (op.affine_values) {
          const int k = op.affine_values == 1 ? 0 : ch;
          v = v * op.a[k] + op.b[k];
        }
        const size_t di = layout == Layout::kNCHW ? (size_t(ch) * h + y) * w + x
                                                  : (size_t(y) * w + x) * c + ch;
        if (out == DType::kFloat32) {
          std::memcpy(dst.data() + di * 4, &v, 4);
        } else if (img.dtype() == DType::kUInt8 && !op.affine_values) {
          dst[di] = img.data()[si];
        } else {
          const float r = std::nearbyint(v);
          dst[di] = uint8_t(r < 0.f ? 0.f : (r > 255.f ? 255.f : r));
        }
      }
  return dst;
}

std::string Name(Layout layout, DType in, DType out, int h, int w, int c, bool flip, int affine) {
  return std::string(layout == Layout::kNCHW ? "NCHW" : "NHWC") +
         (in == DType::kUInt8 ? " u8" : " f32") + (out == DType::kUInt8 ? "->u8 " : "->f32 ") +
         std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(c) +
         (flip ? " flip" : "") + " affine " + std::to_string(affine);
}

// Every combination, the SSE path (ConvertInto) against the scalar one and both against the
// formula, bit for bit. Widths from 1 to 13 cover every remainder of the four-pixel loop, with
// and without a whole group, plus wider rows.
TEST(ConvertTest, SseEqualsScalarEqualsFormula) {
  int cases = 0;
  uint32_t seed = 1;
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC})
    for (DType in : {DType::kUInt8, DType::kFloat32})
      for (DType out : {DType::kUInt8, DType::kFloat32})
        for (int c : {1, 3, 4})
          for (int w : {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 17, 33, 224})
            for (int h : {1, 3})
              for (bool flip : {false, true})
                for (int affine : {0, 1, 3}) {
                  if (affine > c) continue;
                  const Image img = RandomImage(h, w, c, in, seed++);
                  const OutputOp op = Op(flip, affine);
                  std::vector<uint8_t> fast(OutBytes(img, out)), slow(fast.size());
                  ConvertInto(img, layout, out, op, fast.data());
                  ConvertIntoScalar(img, layout, out, op, slow.data());
                  const std::vector<uint8_t> want = Reference(img, layout, out, op);
                  const std::string name = Name(layout, in, out, h, w, c, flip, affine);
                  ASSERT_EQ(0, std::memcmp(fast.data(), slow.data(), fast.size())) << name;
                  ASSERT_EQ(0, std::memcmp(slow.data(), want.data(), want.size())) << name;
                  ++cases;
                }
  EXPECT_GT(cases, 1000);
}

// The SSE path's own case, large: every pixel value through normalize with per-channel mean and
// std, both flips.
TEST(ConvertTest, RgbToFloatPlanesMatchesScalarOnEveryByte) {
  Image img = Image::Allocate(16, 256, 3);
  for (int y = 0; y < 16; ++y)
    for (int i = 0; i < 256 * 3; ++i) img.row<uint8_t>(y)[i] = uint8_t(i / 3 + y * 7);
  for (bool flip : {false, true}) {
    const OutputOp op = Op(flip, 3);
    std::vector<uint8_t> fast(OutBytes(img, DType::kFloat32)), slow(fast.size());
    ConvertInto(img, Layout::kNCHW, DType::kFloat32, op, fast.data());
    ConvertIntoScalar(img, Layout::kNCHW, DType::kFloat32, op, slow.data());
    EXPECT_EQ(0, std::memcmp(fast.data(), slow.data(), fast.size())) << "flip " << flip;
  }
}

// Float to uint8 rounds to nearest, ties to even (nearbyint), and saturates.
TEST(ConvertTest, FloatToUint8RoundsAndSaturates) {
  const float values[] = {-3.2f, -0.4f, 0.5f, 1.5f, 2.5f, 127.49f, 254.5f, 255.4f, 255.7f, 300.f};
  const uint8_t want[] = {0, 0, 0, 2, 2, 127, 254, 255, 255, 255};
  const int w = int(sizeof values / sizeof values[0]);
  Image img = Image::Allocate(1, w, 1, DType::kFloat32);
  std::memcpy(img.row<float>(0), values, sizeof values);
  std::vector<uint8_t> dst(static_cast<size_t>(w));
  for (bool flip : {false, true}) {
    ConvertInto(img, Layout::kNCHW, DType::kUInt8, Op(flip, 0), dst.data());
    for (int x = 0; x < w; ++x) EXPECT_EQ(dst[size_t(x)], want[flip ? w - 1 - x : x]) << x;
  }
}

}  // namespace
}  // namespace flowfeed
