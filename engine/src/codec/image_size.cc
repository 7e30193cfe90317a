// image_size.cc: ReadHeaderSize (see image_size.h). Each reader follows the format's
// specification only as far as the size fields, and says "damaged" rather than guess.
#include "codec/image_size.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace flowfeed {
namespace {

// Bounds-checked little/big-endian reads over [data, data + size).
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : d_(data), n_(size) {}
  size_t size() const { return n_; }
  bool Has(uint64_t at, uint64_t len) const { return at <= n_ && len <= n_ - at; }
  bool Starts(const char* sig, size_t len, size_t at = 0) const {
    return Has(at, len) && std::memcmp(d_ + at, sig, len) == 0;
  }
  uint8_t U8(size_t at) const { return d_[at]; }
  uint64_t Le(size_t at, int bytes) const {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | d_[at + size_t(i)];
    return v;
  }
  uint64_t Be(size_t at, int bytes) const {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | d_[at + size_t(i)];
    return v;
  }
  const uint8_t* data() const { return d_; }

 private:
  const uint8_t* d_;
  size_t n_;
};

// Sides larger than this (2^32 - 1, the most a 32-bit field holds) are read as this, so that
// width * height always fits in uint64 for messages.
constexpr int64_t kMaxSide = 0xFFFFFFFF;

// a * b for non-negative a and b, saturated at 2^62 (header fields multiply past int64).
int64_t Mul(int64_t a, int64_t b) {
  constexpr int64_t kMax = int64_t(1) << 62;
  if (a <= 0 || b <= 0) return 0;
  return a > kMax / b ? kMax : a * b;
}

HeaderSize Known(const char* format, int64_t w, int64_t h) {
  HeaderSize s;
  s.format = format;
  s.known = true;
  s.width = w;
  s.height = h;
  return s;
}

HeaderSize Damaged(const char* format, std::string problem) {
  HeaderSize s;
  s.format = format;
  s.problem = std::move(problem);
  return s;
}

// ---- BMP: BITMAPFILEHEADER (14 bytes), then the DIB header's size and the dimensions.
HeaderSize Bmp(const Bytes& b) {
  if (!b.Has(14, 4)) return Damaged("BMP", "header is truncated");
  const uint64_t dib = b.Le(14, 4);
  if (dib == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit sizes
    if (!b.Has(18, 4)) return Damaged("BMP", "header is truncated");
    return Known("BMP", int64_t(b.Le(18, 2)), int64_t(b.Le(20, 2)));
  }
  if (!b.Has(18, 8)) return Damaged("BMP", "header is truncated");
  // Signed 32-bit; a negative height means rows stored top-down.
  const int64_t w = int32_t(uint32_t(b.Le(18, 4)));
  const int64_t h = int32_t(uint32_t(b.Le(22, 4)));
  return Known("BMP", w < 0 ? -w : w, h < 0 ? -h : h);
}

// ---- Sun raster: magic, then width and height, 32-bit big endian.
HeaderSize SunRaster(const Bytes& b) {
  if (!b.Has(4, 8)) return Damaged("Sun raster", "header is truncated");
  return Known("Sun raster", int64_t(b.Be(4, 4)), int64_t(b.Be(8, 4)));
}

// ---- Netpbm text headers: "P6 <w> <h> ...", with '#' comments between the fields.
bool PnmNumber(const Bytes& b, size_t* at, int64_t* out) {
  for (;;) {
    while (*at < b.size() && std::strchr(" \t\r\n\v\f", b.U8(*at)) && b.U8(*at) != 0) ++*at;
    if (*at < b.size() && b.U8(*at) == '#') {
      while (*at < b.size() && b.U8(*at) != '\n' && b.U8(*at) != '\r') ++*at;
      continue;
    }
    break;
  }
  // PFM allows a sign on its scale; sizes have none.
  if (*at >= b.size() || b.U8(*at) < '0' || b.U8(*at) > '9') return false;
  int64_t v = 0;
  while (*at < b.size() && b.U8(*at) >= '0' && b.U8(*at) <= '9') {
    v = std::min<int64_t>(v * 10 + (b.U8(*at) - '0'), kMaxSide);  // saturate: huge anyway
    ++*at;
  }
  *out = v;
  return true;
}

HeaderSize Pnm(const Bytes& b, const char* format) {
  size_t at = 2;
  int64_t w, h;
  if (!PnmNumber(b, &at, &w) || !PnmNumber(b, &at, &h))
    return Damaged(format, "no width and height in the header");
  return Known(format, w, h);
}

// PAM: "P7\n" then "TOKEN value" lines up to "ENDHDR".
HeaderSize Pam(const Bytes& b) {
  const std::string text(reinterpret_cast<const char*>(b.data()), std::min<size_t>(b.size(), 4096));
  int64_t w = -1, h = -1;
  size_t line = 0;
  while (line < text.size()) {
    size_t end = text.find('\n', line);
    if (end == std::string::npos) end = text.size();
    const std::string l = text.substr(line, end - line);
    auto value = [&](const char* key, int64_t* out) {
      const size_t n = std::strlen(key);
      if (l.compare(0, n, key) != 0) return;
      Bytes v(reinterpret_cast<const uint8_t*>(l.data()), l.size());
      size_t at = n;
      int64_t x;
      if (PnmNumber(v, &at, &x)) *out = x;
    };
    value("WIDTH", &w);
    value("HEIGHT", &h);
    if (l.compare(0, 6, "ENDHDR") == 0) break;
    line = end + 1;
  }
  if (w < 0 || h < 0) return Damaged("PAM", "no WIDTH and HEIGHT in the header");
  return Known("PAM", w, h);
}

// ---- TIFF and BigTIFF: the first directory's ImageWidth, ImageLength, TileWidth, TileLength.
HeaderSize Tiff(const Bytes& b) {
  const bool le = b.U8(0) == 'I';
  const bool big = (le ? b.Le(2, 2) : b.Be(2, 2)) == 43;
  auto get = [&](uint64_t at, int bytes) { return le ? b.Le(size_t(at), bytes) : b.Be(size_t(at), bytes); };
  const int off_bytes = big ? 8 : 4;
  const uint64_t ifd_at = big ? 8 : 4;
  if (!b.Has(ifd_at, uint64_t(off_bytes))) return Damaged("TIFF", "header is truncated");
  const uint64_t ifd = get(ifd_at, off_bytes);
  const int count_bytes = big ? 8 : 2, entry_bytes = big ? 20 : 12;
  if (!b.Has(ifd, uint64_t(count_bytes))) return Damaged("TIFF", "first directory is missing");
  const uint64_t count = get(ifd, count_bytes);
  int64_t w = -1, h = -1, tw = 0, th = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t e = ifd + uint64_t(count_bytes) + i * uint64_t(entry_bytes);
    if (i > 65535 || !b.Has(e, uint64_t(entry_bytes))) break;  // a cut-off directory
    const uint64_t tag = get(e, 2), type = get(e + 2, 2);
    const uint64_t n = get(e + 4, big ? 8 : 4);
    const uint64_t value_at = e + (big ? 12 : 8);
    int64_t v;
    if (n != 1) continue;
    if (type == 3)  // SHORT
      v = int64_t(get(value_at, 2));
    else if (type == 4)  // LONG
      v = int64_t(get(value_at, 4));
    else if (type == 16 && big)  // LONG8
      v = int64_t(std::min<uint64_t>(get(value_at, 8), uint64_t(kMaxSide)));
    else
      continue;
    if (tag == 256) w = v;
    if (tag == 257) h = v;
    if (tag == 322) tw = v;
    if (tag == 323) th = v;
  }
  if (w < 0 || h < 0) return Damaged("TIFF", "no ImageWidth and ImageLength in the first directory");
  HeaderSize s = Known("TIFF", w, h);
  if (tw > 0 || th > 0) s.tile_pixels = Mul(std::max<int64_t>(tw, 1), std::max<int64_t>(th, 1));
  return s;
}

// ---- WebP: RIFF container, then the first chunk: lossy (VP8), lossless (VP8L), extended (VP8X).
HeaderSize Webp(const Bytes& b) {
  if (b.Starts("VP8 ", 4, 12)) {
    // Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height.
    if (!b.Has(20, 10) || b.U8(23) != 0x9d || b.U8(24) != 0x01 || b.U8(25) != 0x2a)
      return Damaged("WebP", "VP8 frame header is truncated or damaged");
    return Known("WebP", int64_t(b.Le(26, 2) & 0x3FFF), int64_t(b.Le(28, 2) & 0x3FFF));
  }
  if (b.Starts("VP8L", 4, 12)) {
    if (!b.Has(20, 5) || b.U8(20) != 0x2f) return Damaged("WebP", "VP8L header is damaged");
    const uint64_t bits = b.Le(21, 4);
    return Known("WebP", int64_t(bits & 0x3FFF) + 1, int64_t((bits >> 14) & 0x3FFF) + 1);
  }
  if (b.Starts("VP8X", 4, 12)) {
    if (!b.Has(24, 6)) return Damaged("WebP", "VP8X header is truncated");
    return Known("WebP", int64_t(b.Le(24, 3)) + 1, int64_t(b.Le(27, 3)) + 1);
  }
  return Damaged("WebP", "no VP8, VP8L or VP8X chunk first");
}

// ---- Radiance HDR: text lines up to an empty one, then "-Y <height> +X <width>" (the only
// orientation OpenCV reads).
HeaderSize Hdr(const Bytes& b) {
  const size_t n = std::min<size_t>(b.size(), 64 * 1024);
  const std::string text(reinterpret_cast<const char*>(b.data()), n);
  const size_t blank = text.find("\n\n");
  if (blank == std::string::npos) return Damaged("Radiance HDR", "header does not end");
  size_t at = blank + 2;
  Bytes rest(reinterpret_cast<const uint8_t*>(text.data()) + at, text.size() - at);
  if (!rest.Starts("-Y ", 3)) return Damaged("Radiance HDR", "no \"-Y <height> +X <width>\" line");
  size_t p = 3;
  int64_t h, w;
  if (!PnmNumber(rest, &p, &h)) return Damaged("Radiance HDR", "bad height");
  while (p < rest.size() && rest.U8(p) == ' ') ++p;
  if (!rest.Starts("+X", 2, p)) return Damaged("Radiance HDR", "no \"+X <width>\"");
  p += 2;
  if (!PnmNumber(rest, &p, &w)) return Damaged("Radiance HDR", "bad width");
  return Known("Radiance HDR", w, h);
}

// ---- OpenEXR: magic, version, then attributes "name\0type\0<u32 size><value>" up to an empty
// name. The first part's dataWindow (box2i) and, for tiled files, tiles (tiledesc).
HeaderSize Exr(const Bytes& b) {
  size_t at = 8;
  int64_t w = -1, h = -1, tile = 0;
  for (int attrs = 0; attrs < 1000; ++attrs) {
    auto cstr = [&](std::string* out) {
      const size_t start = at;
      while (at < b.size() && b.U8(at) != 0 && at - start < 256) ++at;
      if (at >= b.size() || b.U8(at) != 0) return false;
      out->assign(reinterpret_cast<const char*>(b.data()) + start, at - start);
      ++at;
      return true;
    };
    std::string name, type;
    if (!cstr(&name)) return Damaged("OpenEXR", "header is truncated");
    if (name.empty()) break;
    if (!cstr(&type) || !b.Has(at, 4)) return Damaged("OpenEXR", "header is truncated");
    const uint64_t len = b.Le(at, 4);
    at += 4;
    if (!b.Has(at, len)) return Damaged("OpenEXR", "header is truncated");
    if (name == "dataWindow" && type == "box2i" && len == 16) {
      const int64_t x0 = int32_t(uint32_t(b.Le(at, 4))), y0 = int32_t(uint32_t(b.Le(at + 4, 4)));
      const int64_t x1 = int32_t(uint32_t(b.Le(at + 8, 4))), y1 = int32_t(uint32_t(b.Le(at + 12, 4)));
      w = x1 - x0 + 1;
      h = y1 - y0 + 1;
    } else if (name == "tiles" && type == "tiledesc" && len >= 8) {
      tile = Mul(int64_t(b.Le(at, 4)), int64_t(b.Le(at + 4, 4)));
    }
    at += size_t(len);
  }
  if (w < 0 || h < 0) return Damaged("OpenEXR", "no valid dataWindow");
  HeaderSize s = Known("OpenEXR", w, h);
  s.tile_pixels = tile;
  return s;
}

// ---- JPEG 2000: the codestream's SIZ segment (after SOC): image and tile sizes, components.
HeaderSize J2kCodestream(const Bytes& b, uint64_t at) {
  // FF4F (SOC), FF51 (SIZ), Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz, XTOsiz, YTOsiz,
  // Csiz.
  if (!b.Has(at, 4 + 2 + 2 + 8 * 4 + 2) || b.Be(size_t(at), 2) != 0xFF4F ||
      b.Be(size_t(at) + 2, 2) != 0xFF51)
    return Damaged("JPEG 2000", "no SIZ segment at the start of the codestream");
  const size_t s = size_t(at) + 8;
  const int64_t xsiz = int64_t(b.Be(s, 4)), ysiz = int64_t(b.Be(s + 4, 4));
  const int64_t xo = int64_t(b.Be(s + 8, 4)), yo = int64_t(b.Be(s + 12, 4));
  const int64_t xt = int64_t(b.Be(s + 16, 4)), yt = int64_t(b.Be(s + 20, 4));
  const int64_t xto = int64_t(b.Be(s + 24, 4)), yto = int64_t(b.Be(s + 28, 4));
  const int64_t comps = int64_t(b.Be(s + 32, 2));
  if (xsiz <= xo || ysiz <= yo || xt == 0 || yt == 0 || xto > xo || yto > yo)
    return Damaged("JPEG 2000", "SIZ segment is inconsistent");
  HeaderSize out = Known("JPEG 2000", xsiz - xo, ysiz - yo);
  out.tiles = Mul((xsiz - xto + xt - 1) / xt, (ysiz - yto + yt - 1) / yt);
  out.components = comps;
  return out;
}

// JP2: boxes (u32 length, 4-character type; length 1: u64 length follows; 0: to the end) up to
// the codestream box, jp2c.
HeaderSize Jp2(const Bytes& b) {
  uint64_t at = 0;
  for (int boxes = 0; boxes < 1000 && b.Has(at, 8); ++boxes) {
    uint64_t len = b.Be(size_t(at), 4);
    uint64_t header = 8;
    if (len == 1) {
      if (!b.Has(at, 16)) break;
      len = b.Be(size_t(at) + 8, 8);
      header = 16;
    } else if (len == 0) {
      len = b.size() - at;
    }
    if (b.Starts("jp2c", 4, size_t(at) + 4)) return J2kCodestream(b, at + header);
    if (len < header || !b.Has(at, len)) break;
    at += len;
  }
  return Damaged("JPEG 2000", "no codestream box");
}

}  // namespace

HeaderSize ReadHeaderSize(const uint8_t* data, size_t size) {
  const Bytes b(data, size);
  if (b.Starts("BM", 2)) return Bmp(b);
  if (b.Starts("\x59\xa6\x6a\x95", 4)) return SunRaster(b);
  if (b.size() >= 2 && b.U8(0) == 'P') {
    const uint8_t k = b.U8(1);
    if (k >= '1' && k <= '6') return Pnm(b, "PNM");
    if (k == '7') return Pam(b);
    if (k == 'F' || k == 'f') return Pnm(b, "PFM");
  }
  if (b.Starts("II*\0", 4) || b.Starts("MM\0*", 4) || b.Starts("II+\0", 4) || b.Starts("MM\0+", 4))
    return Tiff(b);
  if (b.Starts("RIFF", 4) && b.Starts("WEBP", 4, 8)) return Webp(b);
  if (b.Starts("#?RGBE", 6) || b.Starts("#?RADIANCE", 10)) return Hdr(b);
  if (b.Starts("\x76\x2f\x31\x01", 4)) return Exr(b);
  if (b.Starts("\xff\x4f\xff\x51", 4)) return J2kCodestream(b, 0);
  if (b.Starts("\x00\x00\x00\x0cjP  \r\n\x87\n", 12)) return Jp2(b);
  if (b.Starts("DICM", 4, 128)) return Damaged("DICOM", "flowfeed does not read DICOM headers");
  return HeaderSize();
}

}  // namespace flowfeed
