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
#include "codec.h"

#include <jconfig.h>  // LIBJPEG_TURBO_VERSION
#include <turbojpeg.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
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

std::string PixelCountString(int64_t w, int64_t h) {
  return std::to_string(w) + "x" + std::to_string(h) + " (" + std::to_string(w * h) + " pixels)";
}

Status CheckPixels(int64_t w, int64_t h, const DecodeOptions& options, std::string_view name) {
  if (options.max_pixels > 0 && w * h > options.max_pixels)
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
  const bool gray = options.color == ColorMode::kGray;
  cv::Mat decoded;
  try {
    cv::Mat buf(1, int(std::min<size_t>(size, size_t(INT32_MAX))), CV_8UC1,
                const_cast<uint8_t*>(data));
    decoded = cv::imdecode(buf, gray ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
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
    if (msg.find("subsampling") != std::string::npos)
      return DecodeWithOpenCv(data, size, options, name, "JPEG", out);
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

Status DecodeJpeg(const uint8_t* data, size_t size, const DecodeOptions& options,
                  std::string_view name, Image* out) {
  TjHandle& handle = Decompressor();
  if (!handle.get()) handle.Reset();  // creation failed earlier (out of memory?): try again
  Status s = DecodeJpegWith(handle.get(), data, size, options, name, out);
  if (!s.ok()) handle.Reset();
  return s;
}

}  // namespace

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
    // BMP, WebP, TIFF, ...: sizes are checked after decoding (OpenCV has its own limit of 2^30
    // pixels, CV_IO_MAX_IMAGE_PIXELS).
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

std::string CodecVersions() {
#ifdef LIBJPEG_TURBO_VERSION
#define FLOWFEED_STR2(x) #x
#define FLOWFEED_STR(x) FLOWFEED_STR2(x)
  std::string jpeg = "libjpeg-turbo " FLOWFEED_STR(LIBJPEG_TURBO_VERSION);
#else
  std::string jpeg = "libjpeg-turbo (version unknown)";
#endif
  return jpeg + ", OpenCV " CV_VERSION;
}

}  // namespace flowfeed
