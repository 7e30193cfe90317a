// pipeline/convert.cc: the conversion into the batch's layout and dtype (convert.h).
#include "pipeline/convert.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

namespace flowfeed {
namespace {

template <typename In, typename Out>
inline Out ConvertValue(In v) {
  if constexpr (std::is_same_v<Out, uint8_t> && std::is_same_v<In, float>) {
    float r = std::nearbyint(v);
    return uint8_t(r < 0.f ? 0.f : (r > 255.f ? 255.f : r));
  } else {
    return Out(v);
  }
}

template <typename In, typename Out>
void ConvertImage(const Image& img, Layout layout, Out* dst) {
  const int h = img.height(), w = img.width(), c = img.channels();
  const In* src = reinterpret_cast<const In*>(img.data());
  const size_t n = size_t(h) * w * c;
  if (layout == Layout::kNHWC || c == 1) {
    if constexpr (std::is_same_v<In, Out>) {
      std::memcpy(dst, src, n * sizeof(In));
    } else {
      for (size_t i = 0; i < n; ++i) dst[i] = ConvertValue<In, Out>(src[i]);
    }
    return;
  }
  const size_t plane = size_t(h) * w;
  for (int ch = 0; ch < c; ++ch) {
    Out* d = dst + ch * plane;
    const In* s = src + ch;
    for (size_t i = 0; i < plane; ++i) d[i] = ConvertValue<In, Out>(s[i * size_t(c)]);
  }
}

// The value map's coefficients for every channel (one value pair serves all when
// affine_values is 1).
void PerChannel(const OutputOp& op, float* a, float* b) {
  for (int ch = 0; ch < OutputOp::kMaxValues; ++ch) {
    const int k = op.affine_values == 1 ? 0 : ch;
    a[ch] = op.a[k];
    b[ch] = op.b[k];
  }
}

// With a fused tail: mirrors columns and maps values (v * a[c] + b[c], in float, as the
// normalize stage computes them) during the same pass. One pass over the source per row; for
// NCHW the three planes are written side by side.
template <typename In, typename Out, bool kAffine>
void ConvertImageOp(const Image& img, Layout layout, const OutputOp& op, Out* dst) {
  const int h = img.height(), w = img.width(), c = img.channels();
  const In* src = reinterpret_cast<const In*>(img.data());
  float a[OutputOp::kMaxValues], b[OutputOp::kMaxValues];
  PerChannel(op, a, b);
  auto f = [&](In v, int ch) -> Out {
    if constexpr (kAffine) {
      return ConvertValue<float, Out>(float(v) * a[ch] + b[ch]);
    } else {
      return ConvertValue<In, Out>(v);
    }
  };
  const size_t plane = size_t(h) * w;
  for (int y = 0; y < h; ++y) {
    const In* row = src + size_t(y) * w * c;
    if (layout == Layout::kNCHW && c == 3) {
      Out* d0 = dst + size_t(y) * w;
      Out* d1 = d0 + plane;
      Out* d2 = d1 + plane;
      if (op.flip) {
        for (int x = 0; x < w; ++x) {
          const In* px = row + size_t(w - 1 - x) * 3;
          d0[x] = f(px[0], 0);
          d1[x] = f(px[1], 1);
          d2[x] = f(px[2], 2);
        }
      } else {
        for (int x = 0; x < w; ++x) {
          const In* px = row + size_t(x) * 3;
          d0[x] = f(px[0], 0);
          d1[x] = f(px[1], 1);
          d2[x] = f(px[2], 2);
        }
      }
    } else if (layout == Layout::kNCHW) {
      for (int ch = 0; ch < c; ++ch) {
        Out* d = dst + ch * plane + size_t(y) * w;
        for (int x = 0; x < w; ++x) d[x] = f(row[size_t(op.flip ? w - 1 - x : x) * c + ch], ch);
      }
    } else {
      Out* d = dst + size_t(y) * w * c;
      for (int x = 0; x < w; ++x) {
        const In* px = row + size_t(op.flip ? w - 1 - x : x) * c;
        for (int ch = 0; ch < c; ++ch) d[size_t(x) * c + ch] = f(px[ch], ch);
      }
    }
  }
}

#if defined(__SSE2__)
// The common case (3 interleaved channels to float planes) four pixels at a time: the row is
// widened to float once (a loop the compiler vectorises), then each group of four RGB pixels
// is split into R, G and B vectors with shuffles, mapped with a multiply and an add (the same
// two roundings as the scalar v * a + b, so results stay bit-identical) and stored, reversed
// when flipping.
template <typename In, bool kAffine>
void ConvertRgbToPlanesSse(const Image& img, const OutputOp& op, float* dst) {
  const int h = img.height(), w = img.width();
  const size_t plane = size_t(h) * w;
  thread_local std::vector<float> wide;
  if (wide.size() < size_t(w) * 3 + 12) wide.resize(size_t(w) * 3 + 12);
  float a[OutputOp::kMaxValues], b[OutputOp::kMaxValues];
  PerChannel(op, a, b);
  const __m128 ar = _mm_set1_ps(a[0]), ag = _mm_set1_ps(a[1]), ab = _mm_set1_ps(a[2]);
  const __m128 br = _mm_set1_ps(b[0]), bg = _mm_set1_ps(b[1]), bb = _mm_set1_ps(b[2]);
  auto map = [&](float v, int ch) { return kAffine ? v * a[ch] + b[ch] : v; };
  for (int y = 0; y < h; ++y) {
    const In* row = reinterpret_cast<const In*>(img.data()) + size_t(y) * w * 3;
    float* f = wide.data();
    for (int i = 0; i < w * 3; ++i) f[i] = float(row[i]);
    float* d0 = dst + size_t(y) * w;
    float* d1 = d0 + plane;
    float* d2 = d1 + plane;
    int x = 0;
    for (; x + 4 <= w; x += 4) {
      const __m128 p = _mm_loadu_ps(f + 3 * x);      // r0 g0 b0 r1
      const __m128 q = _mm_loadu_ps(f + 3 * x + 4);  // g1 b1 r2 g2
      const __m128 u = _mm_loadu_ps(f + 3 * x + 8);  // b2 r3 g3 b3
      __m128 r = _mm_shuffle_ps(_mm_shuffle_ps(p, q, _MM_SHUFFLE(2, 2, 3, 0)),
                                _mm_shuffle_ps(q, u, _MM_SHUFFLE(1, 1, 2, 2)), _MM_SHUFFLE(2, 0, 1, 0));
      __m128 g = _mm_shuffle_ps(_mm_shuffle_ps(p, q, _MM_SHUFFLE(0, 0, 1, 1)),
                                _mm_shuffle_ps(q, u, _MM_SHUFFLE(2, 2, 3, 3)), _MM_SHUFFLE(2, 0, 2, 0));
      __m128 bl = _mm_shuffle_ps(_mm_shuffle_ps(p, q, _MM_SHUFFLE(1, 1, 2, 2)),
                                 _mm_shuffle_ps(u, u, _MM_SHUFFLE(3, 3, 0, 0)), _MM_SHUFFLE(2, 0, 2, 0));
      if (kAffine) {
        r = _mm_add_ps(_mm_mul_ps(r, ar), br);
        g = _mm_add_ps(_mm_mul_ps(g, ag), bg);
        bl = _mm_add_ps(_mm_mul_ps(bl, ab), bb);
      }
      if (op.flip) {
        const int o = w - 4 - x;
        _mm_storeu_ps(d0 + o, _mm_shuffle_ps(r, r, _MM_SHUFFLE(0, 1, 2, 3)));
        _mm_storeu_ps(d1 + o, _mm_shuffle_ps(g, g, _MM_SHUFFLE(0, 1, 2, 3)));
        _mm_storeu_ps(d2 + o, _mm_shuffle_ps(bl, bl, _MM_SHUFFLE(0, 1, 2, 3)));
      } else {
        _mm_storeu_ps(d0 + x, r);
        _mm_storeu_ps(d1 + x, g);
        _mm_storeu_ps(d2 + x, bl);
      }
    }
    for (; x < w; ++x) {
      const int o = op.flip ? w - 1 - x : x;
      d0[o] = map(f[3 * x], 0);
      d1[o] = map(f[3 * x + 1], 1);
      d2[o] = map(f[3 * x + 2], 2);
    }
  }
}
#endif

template <typename In, typename Out, bool kSimd>
void ConvertWith(const Image& img, Layout layout, const OutputOp& op, Out* dst) {
#if defined(__SSE2__)
  if constexpr (kSimd && std::is_same_v<Out, float>) {
    if (layout == Layout::kNCHW && img.channels() == 3 && img.width() >= 4) {
      if (op.affine_values) return ConvertRgbToPlanesSse<In, true>(img, op, dst);
      return ConvertRgbToPlanesSse<In, false>(img, op, dst);
    }
  }
#endif
  if (!op.flip && op.affine_values == 0) return ConvertImage<In, Out>(img, layout, dst);
  if (op.affine_values) return ConvertImageOp<In, Out, true>(img, layout, op, dst);
  ConvertImageOp<In, Out, false>(img, layout, op, dst);
}

template <bool kSimd>
void ConvertAny(const Image& img, Layout layout, DType out_type, const OutputOp& op, uint8_t* dst) {
  float* fdst = reinterpret_cast<float*>(dst);
  if (img.dtype() == DType::kUInt8) {
    if (out_type == DType::kUInt8) ConvertWith<uint8_t, uint8_t, kSimd>(img, layout, op, dst);
    else ConvertWith<uint8_t, float, kSimd>(img, layout, op, fdst);
  } else {
    if (out_type == DType::kUInt8) ConvertWith<float, uint8_t, kSimd>(img, layout, op, dst);
    else ConvertWith<float, float, kSimd>(img, layout, op, fdst);
  }
}

}  // namespace

void ConvertInto(const Image& img, Layout layout, DType out_type, const OutputOp& op,
                 uint8_t* dst) {
  ConvertAny<true>(img, layout, out_type, op, dst);
}

void ConvertIntoScalar(const Image& img, Layout layout, DType out_type, const OutputOp& op,
                       uint8_t* dst) {
  ConvertAny<false>(img, layout, out_type, op, dst);
}

}  // namespace flowfeed
