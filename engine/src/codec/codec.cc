// codec.cc: image decoding (TurboJPEG for JPEG, OpenCV for the rest) and JPEG encoding.
//
// Error policy for JPEG: libjpeg reports damage in two ways, fatal errors and warnings. A
// warning (e.g. "Premature end of JPEG file" for a truncated download) still yields an image,
// but part of it is grey filler, so a sample that decodes with a warning would silently train on
// garbage. We therefore treat every warning as an error (TJFLAG_STOPONWARNING also makes such
// files fail fast) and report Corrupt.
//
// CMYK / YCCK JPEGs (Photoshop exports, a few in ImageNet): libjpeg cannot convert them to RGB
// ("Unsupported color conversion request"). We decode them with TurboJPEG into TJPF_CMYK, which
// keeps the warning-as-error policy (a truncated CMYK file is Corrupt too), and convert to RGB
// with the same formula OpenCV's JPEG reader uses (Adobe-style inverted CMYK), so results match
// cv::imread. Any other JPEG that TurboJPEG rejects as unsupported (not as damaged) is handed to
// OpenCV's imdecode as a last resort.
#include "codec/codec.h"

#include "codec/image_size.h"

#include <jconfig.h>  // LIBJPEG_TURBO_VERSION
#include <turbojpeg.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <opencv2/core.hpp>
#if FLOWFEED_HAVE_IMGCODECS
#include <opencv2/imgcodecs.hpp>
#endif
#include <opencv2/imgproc.hpp>
#include <string>

namespace flowfeed {
namespace {

// One TurboJPEG handle per thread and direction, created on first use, destroyed at thread exit.
class TjHandle {
 public:
  explicit TjHandle(bool compress)
      : compress_(compress), h_(compress ? tjInitCompress() : tjInitDecompress()) {}
  ~TjHandle() {
    if (h_) tjDestroy(h_);
  }
  TjHandle(const TjHandle&) = delete;
  TjHandle& operator=(const TjHandle&) = delete;
  tjhandle get() const { return h_; }
  // Replaces the handle with a fresh one. Needed after a failure: libjpeg-turbo 2.1 leaves a
  // handle whose tjDecompressHeader3() failed in a state where the next tjDecompressHeader3()
  // returns success without filling in the size.
  void Reset() {
    if (h_) tjDestroy(h_);
    h_ = compress_ ? tjInitCompress() : tjInitDecompress();
  }

 private:
  bool compress_;
  tjhandle h_;
};

TjHandle& Decompressor() {
  thread_local TjHandle handle(false);
  return handle;
}

TjHandle& Compressor() {
  thread_local TjHandle handle(true);
  return handle;
}

std::string TjMessage(tjhandle h) {
  const char* m = tjGetErrorStr2(h);
  return m ? std::string(m) : std::string("unknown TurboJPEG error");
}

std::string Prefix(std::string_view name) { return std::string(name) + ": "; }

// w and h come from file headers: up to 2^32 - 1 each (PNG), so their product is formed in
// uint64 and compared without forming it (found by fuzz/fuzz_decode.cc: int64 overflow).
std::string PixelCountString(int64_t w, int64_t h) {
  return std::to_string(w) + "x" + std::to_string(h) + " (" +
         std::to_string(uint64_t(w) * uint64_t(h)) + " pixels)";
}

Status CheckPixels(int64_t w, int64_t h, const DecodeOptions& options, std::string_view name) {
  if (options.max_pixels > 0 && w > 0 && h > options.max_pixels / w)
    return Status::ResourceExhausted(Prefix(name) + "image is " + PixelCountString(w, h) +
                                     ", more than max_pixels = " +
                                     std::to_string(options.max_pixels));
  return Status::Ok();
}

int Channels(ColorMode mode) { return mode == ColorMode::kGray ? 1 : 3; }

// "ff d8 ff e0 00 10 4a 46" plus the printable text, for "not an image" messages.
std::string FirstBytes(const uint8_t* data, size_t size) {
  size_t n = std::min<size_t>(size, 8);
  std::string hex, text;
  char buf[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", data[i]);
    if (i) hex += ' ';
    hex += buf;
    text += (data[i] >= 0x20 && data[i] < 0x7f) ? char(data[i]) : '.';
  }
  return hex + " \"" + text + "\"";
}

bool IsJpeg(const uint8_t* d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }

bool IsPng(const uint8_t* d, size_t n) {
  static const uint8_t kSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  return n >= 8 && std::memcmp(d, kSig, 8) == 0;
}

uint32_t BigEndian32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

cv::Mat MatOver(Image* img) {
  return cv::Mat(img->height(), img->width(), CV_MAKETYPE(CV_8U, img->channels()), img->data());
}

cv::Mat MatOver(const Image& img) {
  return cv::Mat(img.height(), img.width(), CV_MAKETYPE(CV_8U, img.channels()),
                 const_cast<uint8_t*>(img.data()));
}

// Adobe (inverted) CMYK to RGB/BGR/gray, the formula of OpenCV's icvCvt_CMYK2BGR_8u_C4C3R.
void CmykTo(const uint8_t* cmyk, int width, int height, ColorMode mode, Image* out) {
  const size_t n = size_t(width) * height;
  uint8_t* dst = out->data();
  for (size_t i = 0; i < n; ++i, cmyk += 4) {
    const int k = cmyk[3];
    const int r = k - ((255 - cmyk[0]) * k >> 8);
    const int g = k - ((255 - cmyk[1]) * k >> 8);
    const int b = k - ((255 - cmyk[2]) * k >> 8);
    switch (mode) {
      case ColorMode::kRgb: dst[0] = uint8_t(r); dst[1] = uint8_t(g); dst[2] = uint8_t(b); dst += 3; break;
      case ColorMode::kBgr: dst[0] = uint8_t(b); dst[1] = uint8_t(g); dst[2] = uint8_t(r); dst += 3; break;
      case ColorMode::kGray:
        // ITU-R BT.601 luma with OpenCV's fixed-point weights and rounding.
        *dst++ = uint8_t((r * 4899 + g * 9617 + b * 1868 + (1 << 13)) >> 14);
        break;
    }
  }
}

// The format a file's first bytes announce, for messages; "" when none that we know.
const char* SniffFormat(const uint8_t* d, size_t n) {
  auto starts = [&](const char* sig, size_t len, size_t at = 0) {
    return n >= at + len && std::memcmp(d + at, sig, len) == 0;
  };
  if (IsJpeg(d, n)) return "JPEG";
  if (IsPng(d, n)) return "PNG";
  if (starts("BM", 2)) return "BMP";
  if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return "WebP";
  if (starts("II*\0", 4) || starts("MM\0*", 4)) return "TIFF";
  if (starts("GIF8", 4)) return "GIF";
  if (n >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7') return "PNM";
  return "";
}

// OpenCV's imdecode, for everything TurboJPEG does not handle. `format` names the format for
// messages ("" when the bytes announce none we know).
Status DecodeWithOpenCv(const uint8_t* data, size_t size, const DecodeOptions& options,
                        std::string_view name, const char* format, Image* out) {
#if !FLOWFEED_HAVE_IMGCODECS
  (void)options;
  (void)out;
  if (format[0] == '\0')  // not an image at all: the message every build gives
    return Status::Corrupt(Prefix(name) + "not a recognised image format (first bytes: " +
                           FirstBytes(data, size) + ")");
  return Status::Unsupported(JpegOnlyMessage(name, format));
#else
  const bool gray = options.color == ColorMode::kGray;
  cv::Mat decoded;
  try {
    cv::Mat buf(1, int(std::min<size_t>(size, size_t(INT32_MAX))), CV_8UC1,
                const_cast<uint8_t*>(data));
    int flags = gray ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR;
    // JPEG orientation is applied by DecodeJpeg, the same way on every path; other formats
    // keep whatever OpenCV's reader does with their orientation unless told to ignore it.
    if (!options.apply_orientation || std::strcmp(format, "JPEG") == 0)
      flags |= cv::IMREAD_IGNORE_ORIENTATION;
    decoded = cv::imdecode(buf, flags);
  } catch (const cv::Exception& e) {
    return Status::Corrupt(Prefix(name) + "cannot decode " + format + ": " + e.what());
  }
  if (decoded.empty()) {
    if (format[0] == '\0')
      return Status::Corrupt(Prefix(name) + "not a recognised image format (first bytes: " +
                             FirstBytes(data, size) + ")");
    return Status::Corrupt(Prefix(name) + "cannot decode " + format +
                           " (truncated, corrupt or an unsupported variant)");
  }
  // Not every decoder honours IMREAD_GRAYSCALE: OpenCV 4.6's Radiance HDR reader returns 3
  // channels (found by fuzz/fuzz_decode.cc), so the channels are brought to the mode's here.
  if (decoded.depth() == CV_8U && decoded.channels() != Channels(options.color)) {
    const int have = decoded.channels();
    int code = -1;
    if (options.color == ColorMode::kGray)
      code = have == 3 ? cv::COLOR_BGR2GRAY : have == 4 ? cv::COLOR_BGRA2GRAY : -1;
    else
      code = have == 1 ? cv::COLOR_GRAY2BGR : have == 4 ? cv::COLOR_BGRA2BGR : -1;
    if (code >= 0) {
      cv::Mat converted;
      cv::cvtColor(decoded, converted, code);
      decoded = converted;
    }
  }
  if (decoded.depth() != CV_8U || decoded.channels() != Channels(options.color))
    return Status::Internal(Prefix(name) + "OpenCV decoded an unexpected pixel type");
  FLOWFEED_RETURN_IF_ERROR(CheckPixels(decoded.cols, decoded.rows, options, name));

  out->Reshape(decoded.rows, decoded.cols, Channels(options.color));
  cv::Mat dst = MatOver(out);
  try {
    if (options.color == ColorMode::kRgb)
      cv::cvtColor(decoded, dst, cv::COLOR_BGR2RGB);
    else
      decoded.copyTo(dst);
  } catch (const cv::Exception& e) {
    return Status::Internal(Prefix(name) + "colour conversion failed: " + e.what());
  }
  if (dst.data != out->data()) return Status::Internal(Prefix(name) + "OpenCV reallocated the output");
  return Status::Ok();
#endif
}

Status DecodeJpegWith(tjhandle tj, const uint8_t* data, size_t size, const DecodeOptions& options,
                      std::string_view name, Image* out) {
  if (!tj) return Status::Internal(Prefix(name) + "cannot create a TurboJPEG decompressor: " + TjMessage(nullptr));

  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, data, static_cast<unsigned long>(size), &width, &height, &subsamp,
                          &colorspace) != 0) {
    std::string msg = TjMessage(tj);
    // TurboJPEG 2.1 refuses headers of valid files whose subsampling it cannot name (e.g. odd
    // sampling factors); libjpeg underneath (through OpenCV) still decodes those.
    // The size was read before the subsampling was found unnameable: checked here, or OpenCV
    // would allocate whatever a damaged header says (found by fuzz/fuzz_decode.cc: 2.3 GB).
    if (msg.find("subsampling") != std::string::npos) {
      if (width <= 0 || height <= 0)
        return Status::Corrupt(Prefix(name) + "truncated or corrupt JPEG: no image in the data");
      FLOWFEED_RETURN_IF_ERROR(CheckPixels(width, height, options, name));
      return DecodeWithOpenCv(data, size, options, name, "JPEG", out);
    }
    return Status::Corrupt(Prefix(name) + "truncated or corrupt JPEG: " + msg);
  }
  // A stream that ends before its frame header (truncated, or tables only) "succeeds" without
  // a size.
  if (width <= 0 || height <= 0)
    return Status::Corrupt(Prefix(name) + "truncated or corrupt JPEG: no image in the data");
  FLOWFEED_RETURN_IF_ERROR(CheckPixels(width, height, options, name));

  const int flags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
    // Rare, so a per-image buffer rather than one kept per thread.
    std::vector<uint8_t> cmyk(size_t(width) * height * 4);
    if (tjDecompress2(tj, data, static_cast<unsigned long>(size), cmyk.data(), width, 0, height,
                      TJPF_CMYK, flags) != 0)
      return Status::Corrupt(Prefix(name) + "truncated or corrupt JPEG: " + TjMessage(tj));
    out->Reshape(height, width, Channels(options.color));
    CmykTo(cmyk.data(), width, height, options.color, out);
    return Status::Ok();
  }

  int pf = TJPF_RGB;
  if (options.color == ColorMode::kBgr) pf = TJPF_BGR;
  if (options.color == ColorMode::kGray) pf = TJPF_GRAY;
  out->Reshape(height, width, Channels(options.color));
  if (tjDecompress2(tj, data, static_cast<unsigned long>(size), out->data(), width, 0, height, pf,
                    flags) != 0) {
    std::string msg = TjMessage(tj);
    const bool fatal = tjGetErrorCode(tj) == TJERR_FATAL;
    // "Unsupported color conversion request", "Unsupported JPEG process" ...: the file is not
    // damaged, libjpeg-turbo just cannot produce this output; OpenCV may.
    if (fatal && (msg.find("Unsupported") != std::string::npos ||
                  msg.find("unsupported") != std::string::npos)) {
      Status s = DecodeWithOpenCv(data, size, options, name, "JPEG", out);
      if (s.ok() || s.code() == StatusCode::kResourceExhausted) return s;
      return Status::Unsupported(Prefix(name) + "cannot decode JPEG: " + msg);
    }
    return Status::Corrupt(Prefix(name) + "truncated or corrupt JPEG: " + msg);
  }
  return Status::Ok();
}

// The size a non-JPEG, non-PNG file's header states, against max_pixels, before OpenCV
// allocates anything: its decoders size the image (and TIFF/OpenEXR tiles, JPEG 2000
// components) from the header alone, so a 50-byte BMP announcing 30000 x 30000 pixels made it
// allocate 3 GB (found by fuzz/fuzz_decode.cc). See image_size.h for the formats covered.
Status CheckHeaderSize(const uint8_t* data, size_t size, const DecodeOptions& options,
                       std::string_view name) {
  if (options.max_pixels <= 0) return Status::Ok();
  const HeaderSize h = ReadHeaderSize(data, size);
  if (h.format[0] == '\0') return Status::Ok();  // no format we know: OpenCV says what it is
  if (!h.known) {
    const std::string why = Prefix(name) + "cannot read the image size from the " + h.format +
                            " header (" + h.problem + ")";
    if (std::strcmp(h.format, "DICOM") == 0)
      return Status::Unsupported(why + ", so it cannot be checked against max_pixels");
    return Status::Corrupt(why);
  }
  FLOWFEED_RETURN_IF_ERROR(CheckPixels(h.width, h.height, options, name));
  if (h.tile_pixels > options.max_pixels)
    return Status::ResourceExhausted(Prefix(name) + h.format + " tiles of " +
                                     std::to_string(h.tile_pixels) +
                                     " pixels, more than max_pixels = " +
                                     std::to_string(options.max_pixels));
  constexpr int64_t kMaxJpeg2000Tiles = 4096, kMaxJpeg2000Components = 4;
  if (h.tiles > kMaxJpeg2000Tiles || h.components > kMaxJpeg2000Components)
    return Status::Unsupported(Prefix(name) + "JPEG 2000 with " + std::to_string(h.tiles) +
                               " tiles and " + std::to_string(h.components) +
                               " components (at most " + std::to_string(kMaxJpeg2000Tiles) +
                               " and " + std::to_string(kMaxJpeg2000Components) + ")");
  return Status::Ok();
}

Status DecodeJpeg(const uint8_t* data, size_t size, const DecodeOptions& options,
                  std::string_view name, Image* out) {
  TjHandle& handle = Decompressor();
  // A fresh decompressor for every image: libjpeg keeps Huffman and quantization tables on a
  // handle from one image to the next, so a file that lacks one (damaged, or abbreviated like a
  // Motion-JPEG frame) decoded with the tables of whatever file this thread decoded before:
  // pixels, or an error, that depended on the thread's history (found by fuzz/fuzz_decode.cc).
  // A new handle costs well under a microsecond.
  handle.Reset();
  Status s = DecodeJpegWith(handle.get(), data, size, options, name, out);
  if (!s.ok()) {
    handle.Reset();
    return s;
  }
  if (options.apply_orientation) {
    const int orientation = JpegExifOrientation(data, size);
    if (orientation != 1) {
      Image scratch;  // oriented photos are a minority: a buffer per image is fine
      ApplyOrientation(orientation, out, &scratch);
    }
  }
  return Status::Ok();
}

uint32_t Read16(const uint8_t* p, bool little) {
  return little ? uint32_t(p[0]) | uint32_t(p[1]) << 8 : uint32_t(p[0]) << 8 | uint32_t(p[1]);
}

uint32_t Read32(const uint8_t* p, bool little) {
  return little ? Read16(p, true) | Read16(p + 2, true) << 16
                : Read16(p, false) << 16 | Read16(p + 2, false);
}

// The orientation tag of a TIFF structure (an EXIF block): IFD0's entry 0x0112, type SHORT.
int TiffOrientation(const uint8_t* t, size_t n) {
  if (n < 8) return 1;
  bool little;
  if (t[0] == 'I' && t[1] == 'I') little = true;
  else if (t[0] == 'M' && t[1] == 'M') little = false;
  else return 1;
  if (Read16(t + 2, little) != 42) return 1;
  const uint64_t ifd = Read32(t + 4, little);
  if (ifd + 2 > n) return 1;
  const uint32_t count = Read16(t + ifd, little);
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t e = ifd + 2 + 12 * i;
    if (e + 12 > n) break;
    if (Read16(t + e, little) != 0x0112) continue;
    if (Read16(t + e + 2, little) != 3 || Read32(t + e + 4, little) < 1) return 1;
    const uint32_t v = Read16(t + e + 8, little);  // a SHORT sits left-justified in the field
    return v >= 1 && v <= 8 ? int(v) : 1;
  }
  return 1;
}

}  // namespace

int JpegExifOrientation(const uint8_t* d, size_t n) {
  if (d == nullptr || !IsJpeg(d, n)) return 1;
  size_t p = 2;
  while (p + 4 <= n) {
    if (d[p] != 0xFF) return 1;  // not at a marker: damaged; the decoder will say so
    const uint8_t marker = d[p + 1];
    if (marker == 0xFF) {  // fill byte
      ++p;
      continue;
    }
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      p += 2;  // markers without a length
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) return 1;  // scan data or the end: no EXIF before it
    const size_t len = size_t(d[p + 2]) << 8 | d[p + 3];  // includes its own two bytes
    if (len < 2 || len > n - p - 2) return 1;
    if (marker == 0xE1 && len >= 2 + 6 + 8 && std::memcmp(d + p + 4, "Exif\0\0", 6) == 0)
      return TiffOrientation(d + p + 10, len - 8);
    p += 2 + len;
  }
  return 1;
}

void ApplyOrientation(int orientation, Image* image, Image* scratch) {
  if (orientation < 2 || orientation > 8 || image->empty()) return;
  const int h = image->height(), w = image->width(), c = image->channels();
  const int type = CV_MAKETYPE(CV_8U, c);
  cv::Mat src(h, w, type, image->data());
  // OpenCV's ApplyExifOrientation, so results match cv::imread.
  if (orientation <= 4) {
    scratch->Reshape(h, w, c);
    cv::Mat dst(h, w, type, scratch->data());
    cv::flip(src, dst, orientation == 2 ? 1 : orientation == 3 ? -1 : 0);
    std::swap(*image, *scratch);
    return;
  }
  scratch->Reshape(w, h, c);
  cv::Mat t(w, h, type, scratch->data());
  cv::transpose(src, t);
  if (orientation == 5) {
    std::swap(*image, *scratch);
    return;
  }
  image->Reshape(w, h, c);  // same byte count: keeps the storage
  cv::Mat dst(w, h, type, image->data());
  cv::flip(t, dst, orientation == 6 ? 1 : orientation == 7 ? -1 : 0);
}

Status DecodeImage(const uint8_t* data, size_t size, const DecodeOptions& options,
                   std::string_view name, Image* out) {
  if (size == 0 || data == nullptr) return Status::Corrupt(Prefix(name) + "empty file");
  try {
    if (IsJpeg(data, size)) return DecodeJpeg(data, size, options, name, out);
    if (IsPng(data, size)) {
      // IHDR is the first chunk: length(4) "IHDR"(4) width(4) height(4), big endian.
      if (size < 24 || std::memcmp(data + 12, "IHDR", 4) != 0)
        return Status::Corrupt(Prefix(name) + "truncated or corrupt PNG: no IHDR header");
      FLOWFEED_RETURN_IF_ERROR(
          CheckPixels(BigEndian32(data + 16), BigEndian32(data + 20), options, name));
      return DecodeWithOpenCv(data, size, options, name, "PNG", out);
    }
    // BMP, WebP, TIFF, ...: the header's size before decoding, the decoded size after.
    FLOWFEED_RETURN_IF_ERROR(CheckHeaderSize(data, size, options, name));
    return DecodeWithOpenCv(data, size, options, name, SniffFormat(data, size), out);
  } catch (const cv::Exception& e) {
    return Status::Corrupt(Prefix(name) + "cannot decode: " + e.what());
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted(Prefix(name) + "out of memory while decoding");
  } catch (const std::exception& e) {
    return Status::Internal(Prefix(name) + "decoding failed: " + e.what());
  }
}

Status ConvertColor(ColorMode have, ColorMode want, Image* image, Image* scratch) {
  if (have == want) return Status::Ok();
  if (image->empty()) return Status::InvalidArgument("ConvertColor: empty image");
  if (image->dtype() != DType::kUInt8)
    return Status::InvalidArgument("ConvertColor: expected a uint8 image, got " + image->ShapeString());
  if (image->channels() != Channels(have))
    return Status::InvalidArgument("ConvertColor: image " + image->ShapeString() + " does not have " +
                                   std::to_string(Channels(have)) + " channel(s)");
  int code = -1;
  if (have == ColorMode::kGray) code = want == ColorMode::kRgb ? cv::COLOR_GRAY2RGB : cv::COLOR_GRAY2BGR;
  else if (want == ColorMode::kGray) code = have == ColorMode::kRgb ? cv::COLOR_RGB2GRAY : cv::COLOR_BGR2GRAY;
  else code = cv::COLOR_RGB2BGR;  // a swap of channels 0 and 2 either way

  scratch->Reshape(image->height(), image->width(), Channels(want));
  cv::Mat src = MatOver(*image);
  cv::Mat dst = MatOver(scratch);
  try {
    cv::cvtColor(src, dst, code);
  } catch (const cv::Exception& e) {
    return Status::Internal(std::string("ConvertColor: ") + e.what());
  }
  if (dst.data != scratch->data()) return Status::Internal("ConvertColor: OpenCV reallocated the output");
  std::swap(*image, *scratch);
  return Status::Ok();
}

Status EncodeJpeg(const Image& image, int quality, std::vector<uint8_t>* out) {
  if (image.empty()) return Status::InvalidArgument("EncodeJpeg: empty image");
  if (image.dtype() != DType::kUInt8 || (image.channels() != 1 && image.channels() != 3))
    return Status::InvalidArgument("EncodeJpeg: expected a 1- or 3-channel uint8 image, got " +
                                   image.ShapeString());
  if (quality < 1 || quality > 100)
    return Status::InvalidArgument("EncodeJpeg: quality must be in [1, 100], got " + std::to_string(quality));
  TjHandle& handle = Compressor();
  if (!handle.get()) handle.Reset();
  tjhandle tj = handle.get();
  if (!tj) return Status::Internal("EncodeJpeg: cannot create a TurboJPEG compressor: " + TjMessage(nullptr));
  const bool gray = image.channels() == 1;
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  int rc = tjCompress2(tj, image.data(), image.width(), 0, image.height(), gray ? TJPF_GRAY : TJPF_RGB,
                       &buf, &len, gray ? TJSAMP_GRAY : TJSAMP_420, quality, 0);
  if (rc != 0) {
    std::string msg = TjMessage(tj);
    if (buf) tjFree(buf);
    handle.Reset();
    return Status::Internal("EncodeJpeg: " + msg);
  }
  out->assign(buf, buf + len);
  tjFree(buf);
  return Status::Ok();
}

std::vector<std::pair<std::string, std::string>> CodecLibraryVersions() {
#ifdef LIBJPEG_TURBO_VERSION
#define FLOWFEED_STR2(x) #x
#define FLOWFEED_STR(x) FLOWFEED_STR2(x)
  std::string jpeg = FLOWFEED_STR(LIBJPEG_TURBO_VERSION);
#else
  std::string jpeg = "(version unknown)";
#endif
  return {{"libjpeg-turbo", jpeg}, {"OpenCV", CV_VERSION}};
}

std::string CodecVersions() {
  std::string out;
  for (const auto& [name, version] : CodecLibraryVersions())
    out += (out.empty() ? "" : ", ") + name + " " + version;
  return out;
}

std::string JpegOnlyMessage(std::string_view name, std::string_view format) {
  std::string what = format == "JPEG" ? "this JPEG (a variant TurboJPEG does not decode)"
                                      : std::string(format);
  return Prefix(name) + "cannot decode " + what +
         ": this build decodes JPEG only (configured with FLOWFEED_OPENCV_IMGCODECS=OFF, "
         "without OpenCV's imgcodecs; see docs/offline.md)";
}

}  // namespace flowfeed
