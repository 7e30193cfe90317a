// fuzz/make_seeds.cc: writes the seed corpora of the fuzz targets (fuzz/make_seeds.sh runs it).
//
//   fuzz_make_seeds OUT_DIR SOURCE_DIR WORK_DIR
//
// OUT_DIR/<target>/seed-* for decode, config, idx, tar and cache; SOURCE_DIR is the repository
// (configs/*.yaml are the config seeds' starting point); WORK_DIR receives tiny sample files
// that make_seeds.sh packs with GNU tar into more tar seeds. Everything is deterministic, so a
// rerun reproduces the checked-in files. Inputs are small on purpose: the fuzzer mutates them
// faster, and a checked-in corpus stays under ~100 KB per target.
// jpeglib.h needs size_t and FILE declared before it.
#include <cstddef>
#include <cstdio>

#include <jpeglib.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cache_fixture.h"
#include "codec/codec.h"
#include "flowfeed/cache.h"
#include "flowfeed/shards.h"
#include "flowfeed/source.h"
#include "fuzz_util.h"
#include "sources/tar.h"

namespace fs = std::filesystem;
using Bytes = std::string;

namespace flowfeed {
namespace {

std::string g_out;

void Put(const std::string& target, const std::string& name, const Bytes& bytes) {
  fuzz::WriteFile(g_out + "/" + target + "/seed-" + name, bytes);
}

Bytes ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void PutBE32(Bytes* b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b->push_back(char((v >> s) & 0xFF));
}

uint8_t Pattern(int x, int y, int c, int seed) {
  return uint8_t((x * 29 + y * 13 + c * 85 + seed * 7 + ((x ^ y) & 3) * 9) & 0xFF);
}

// ------------------------------------------------------------------------------ JPEG

struct JpegSpec {
  int width = 16, height = 12;
  J_COLOR_SPACE in = JCS_RGB;    // JCS_GRAYSCALE, JCS_RGB, JCS_CMYK
  J_COLOR_SPACE out = JCS_YCbCr;  // the file's colour space
  std::vector<std::pair<int, int>> sampling;  // per component (h, v); empty: libjpeg's default
  bool progressive = false;
  bool arithmetic = false;
  bool optimize = false;
  int restart_rows = 0;  // restart interval in MCU rows (0: none)
  int restart_mcus = 0;  // or in MCUs
  int quality = 75;
  Bytes app1;  // an APP1 payload ("Exif\0\0...") to write, when not empty
};

Bytes EncodeJpeg(const JpegSpec& s) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  jpeg_mem_dest(&cinfo, &buf, &len);
  const int comps = s.in == JCS_GRAYSCALE ? 1 : s.in == JCS_CMYK ? 4 : 3;
  cinfo.image_width = JDIMENSION(s.width);
  cinfo.image_height = JDIMENSION(s.height);
  cinfo.input_components = comps;
  cinfo.in_color_space = s.in;
  jpeg_set_defaults(&cinfo);
  jpeg_set_colorspace(&cinfo, s.out);
  jpeg_set_quality(&cinfo, s.quality, TRUE);
  for (size_t i = 0; i < s.sampling.size() && int(i) < cinfo.num_components; ++i) {
    cinfo.comp_info[i].h_samp_factor = s.sampling[i].first;
    cinfo.comp_info[i].v_samp_factor = s.sampling[i].second;
  }
  if (s.progressive) jpeg_simple_progression(&cinfo);
  cinfo.arith_code = s.arithmetic ? TRUE : FALSE;
  cinfo.optimize_coding = s.optimize ? TRUE : FALSE;
  cinfo.restart_in_rows = s.restart_rows;
  cinfo.restart_interval = unsigned(s.restart_mcus);
  jpeg_start_compress(&cinfo, TRUE);
  if (!s.app1.empty())
    jpeg_write_marker(&cinfo, JPEG_APP0 + 1, reinterpret_cast<const JOCTET*>(s.app1.data()),
                      unsigned(s.app1.size()));
  std::vector<uint8_t> row(size_t(s.width) * comps);
  while (cinfo.next_scanline < cinfo.image_height) {
    const int y = int(cinfo.next_scanline);
    for (int x = 0; x < s.width; ++x)
      for (int c = 0; c < comps; ++c) row[size_t(x) * comps + c] = Pattern(x, y, c, s.width);
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&cinfo, &r, 1);
  }
  jpeg_finish_compress(&cinfo);
  Bytes out(reinterpret_cast<const char*>(buf), len);
  std::free(buf);
  jpeg_destroy_compress(&cinfo);
  return out;
}

// An APP1 Exif payload holding only an orientation tag; `big_endian` picks "MM" over "II".
Bytes ExifOrientation(int orientation, bool big_endian) {
  Bytes t = "Exif";
  t.push_back(0);
  t.push_back(0);
  auto u16 = [&](uint16_t v) {
    if (big_endian) {
      t.push_back(char(v >> 8));
      t.push_back(char(v & 0xFF));
    } else {
      t.push_back(char(v & 0xFF));
      t.push_back(char(v >> 8));
    }
  };
  auto u32 = [&](uint32_t v) {
    if (big_endian) {
      u16(uint16_t(v >> 16));
      u16(uint16_t(v & 0xFFFF));
    } else {
      u16(uint16_t(v & 0xFFFF));
      u16(uint16_t(v >> 16));
    }
  };
  t += big_endian ? "MM" : "II";
  u16(42);
  u32(8);       // IFD0 at 8
  u16(1);       // one entry
  u16(0x0112);  // Orientation
  u16(3);       // SHORT
  u32(1);
  u16(uint16_t(orientation));
  u16(0);
  u32(0);  // no next IFD
  return t;
}

// Finds the first SOF marker's height/width fields.
size_t SofAt(const Bytes& j) {
  for (size_t i = 2; i + 9 < j.size(); ++i)
    if (uint8_t(j[i]) == 0xFF && (uint8_t(j[i + 1]) == 0xC0 || uint8_t(j[i + 1]) == 0xC1 ||
                                  uint8_t(j[i + 1]) == 0xC2 || uint8_t(j[i + 1]) == 0xC9))
      return i + 5;
  return 0;
}

// The first byte after the first SOS header (the entropy-coded data).
size_t ScanAt(const Bytes& j) {
  for (size_t i = 2; i + 4 < j.size(); ++i)
    if (uint8_t(j[i]) == 0xFF && uint8_t(j[i + 1]) == 0xDA)
      return i + 2 + ((size_t(uint8_t(j[i + 2])) << 8) | uint8_t(j[i + 3]));
  return 0;
}

void JpegSeeds() {
  JpegSpec base;
  const Bytes baseline = EncodeJpeg(base);
  Put("decode", "jpeg-baseline-420", baseline);
  {
    JpegSpec s;
    s.width = 17;
    s.height = 13;  // partial MCUs on both edges
    s.sampling = {{2, 2}, {1, 1}, {1, 1}};
    Put("decode", "jpeg-odd-size-420", EncodeJpeg(s));
  }
  {
    JpegSpec s;
    s.sampling = {{1, 1}, {1, 1}, {1, 1}};
    Put("decode", "jpeg-444", EncodeJpeg(s));
    s.sampling = {{2, 1}, {1, 1}, {1, 1}};
    Put("decode", "jpeg-422", EncodeJpeg(s));
    s.sampling = {{1, 2}, {1, 1}, {1, 1}};
    Put("decode", "jpeg-440", EncodeJpeg(s));
    s.sampling = {{4, 1}, {1, 1}, {1, 1}};
    s.width = 33;
    Put("decode", "jpeg-411", EncodeJpeg(s));
    // Sampling TurboJPEG cannot name: decoded by OpenCV's libjpeg instead.
    s.sampling = {{3, 1}, {1, 1}, {1, 1}};
    s.width = 19;
    Put("decode", "jpeg-odd-sampling-3x1", EncodeJpeg(s));
    s.sampling = {{1, 1}, {2, 2}, {1, 1}};
    s.width = 16;
    Put("decode", "jpeg-chroma-above-luma", EncodeJpeg(s));
  }
  {
    JpegSpec s;
    s.in = JCS_GRAYSCALE;
    s.out = JCS_GRAYSCALE;
    Put("decode", "jpeg-gray", EncodeJpeg(s));
    s.progressive = true;
    Put("decode", "jpeg-gray-progressive", EncodeJpeg(s));
  }
  {
    JpegSpec s;
    s.progressive = true;
    s.width = 24;
    Put("decode", "jpeg-progressive", EncodeJpeg(s));
  }
  {
    JpegSpec s;
    s.width = 40;
    s.height = 24;
    s.restart_mcus = 1;
    Put("decode", "jpeg-restart-every-mcu", EncodeJpeg(s));
    s.restart_mcus = 0;
    s.restart_rows = 1;
    s.optimize = true;
    Put("decode", "jpeg-restart-rows-optimized", EncodeJpeg(s));
  }
  {
    JpegSpec s;
    s.arithmetic = true;
    Put("decode", "jpeg-arithmetic", EncodeJpeg(s));
  }
  {
    JpegSpec s;
    s.in = JCS_RGB;
    s.out = JCS_RGB;  // Adobe marker, no colour transform
    Put("decode", "jpeg-rgb-colorspace", EncodeJpeg(s));
  }
  {
    JpegSpec s;
    s.in = JCS_CMYK;
    s.out = JCS_CMYK;
    Put("decode", "jpeg-cmyk", EncodeJpeg(s));
    s.out = JCS_YCCK;
    Put("decode", "jpeg-ycck", EncodeJpeg(s));
  }
  {
    JpegSpec s;
    s.width = 12;
    s.height = 20;
    s.app1 = ExifOrientation(6, false);
    Put("decode", "jpeg-exif-orientation-6-ii", EncodeJpeg(s));
    s.app1 = ExifOrientation(3, true);
    Put("decode", "jpeg-exif-orientation-3-mm", EncodeJpeg(s));
    Bytes bad = ExifOrientation(8, false);
    bad[10] = char(0xF0);  // IFD0 offset far past the segment
    s.app1 = bad;
    Put("decode", "jpeg-exif-bad-offset", EncodeJpeg(s));
  }
  // Damaged ones.
  Put("decode", "jpeg-truncated", baseline.substr(0, baseline.size() / 2));
  Put("decode", "jpeg-header-only", baseline.substr(0, ScanAt(baseline)));
  {
    Bytes b = baseline;
    const size_t scan = ScanAt(b);
    if (scan && scan + 8 < b.size()) b[scan + 5] = char(uint8_t(b[scan + 5]) ^ 0x5A);
    Put("decode", "jpeg-bitflip-in-scan", b);
  }
  {
    Bytes b = baseline;
    const size_t sof = SofAt(b);
    if (sof) {
      b[sof] = char(0xEA);  // 60000 x 60000: over max_pixels
      b[sof + 1] = char(0x60);
      b[sof + 2] = char(0xEA);
      b[sof + 3] = char(0x60);
    }
    Put("decode", "jpeg-huge-dimensions", b);
  }
  {
    JpegSpec s;
    s.progressive = true;
    const Bytes p = EncodeJpeg(s);
    Put("decode", "jpeg-progressive-truncated", p.substr(0, p.size() * 2 / 3));
  }
}

// ------------------------------------------------------------------------------ PNG

void Chunk(Bytes* png, const char* type, const Bytes& data) {
  PutBE32(png, uint32_t(data.size()));
  const size_t start = png->size();
  *png += type;
  *png += data;
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(png->data() + start), uInt(png->size() - start));
  PutBE32(png, uint32_t(crc));
}

Bytes Zlib(const Bytes& raw) {
  uLongf len = compressBound(uLong(raw.size()));
  Bytes out(len, '\0');
  compress2(reinterpret_cast<Bytef*>(out.data()), &len, reinterpret_cast<const Bytef*>(raw.data()),
            uLong(raw.size()), 9);
  out.resize(len);
  return out;
}

struct PngSpec {
  int width = 9, height = 7;
  int color_type = 2;  // 0 gray, 2 rgb, 3 palette, 4 gray+alpha, 6 rgba
  int depth = 8;
  bool interlace = false;
  bool trns = false;
  bool vary_filters = false;
};

int PngChannels(int color_type) {
  switch (color_type) {
    case 0: return 1;
    case 2: return 3;
    case 3: return 1;
    case 4: return 2;
    default: return 4;
  }
}

// One row of packed samples (without the filter byte) for x = x0, x0+dx, ... on row y.
Bytes PngRow(const PngSpec& s, int y, int x0, int dx) {
  const int ch = PngChannels(s.color_type);
  const int max = (1 << s.depth) - 1;
  Bytes row;
  int acc = 0, bits = 0;
  for (int x = x0; x < s.width; x += dx) {
    for (int c = 0; c < ch; ++c) {
      int v = Pattern(x, y, c, s.color_type * 16 + s.depth);
      if (s.color_type == 3) v = (x + y * 3) % std::min(max + 1, 6);  // palette of 6
      if (s.depth == 16) {
        const int wide = v * 257 + x;
        row.push_back(char((wide >> 8) & 0xFF));
        row.push_back(char(wide & 0xFF));
      } else if (s.depth == 8) {
        row.push_back(char(v));
      } else {
        acc = (acc << s.depth) | (v & max);
        bits += s.depth;
        if (bits == 8) {
          row.push_back(char(acc));
          acc = bits = 0;
        }
      }
    }
  }
  if (bits > 0) row.push_back(char(acc << (8 - bits)));
  return row;
}

uint8_t Paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return uint8_t(a);
  return uint8_t(pb <= pc ? b : c);
}

Bytes EncodePng(const PngSpec& s) {
  Bytes png("\x89PNG\r\n\x1a\n", 8);
  Bytes ihdr;
  PutBE32(&ihdr, uint32_t(s.width));
  PutBE32(&ihdr, uint32_t(s.height));
  ihdr += char(s.depth);
  ihdr += char(s.color_type);
  ihdr += char(0);
  ihdr += char(0);
  ihdr += char(s.interlace ? 1 : 0);
  Chunk(&png, "IHDR", ihdr);
  if (s.color_type == 3) {
    Bytes plte;
    for (int i = 0; i < 6; ++i) {
      plte += char(i * 40);
      plte += char(255 - i * 30);
      plte += char((i * 97) & 0xFF);
    }
    Chunk(&png, "PLTE", plte);
  }
  if (s.trns) {
    Bytes t;
    if (s.color_type == 3) {
      t = Bytes("\x00\x80\xff", 3);
    } else if (s.color_type == 0) {
      t = Bytes("\x00\x05", 2);
    } else {
      t = Bytes("\x00\x05\x00\x06\x00\x07", 6);
    }
    Chunk(&png, "tRNS", t);
  }
  Bytes raw;
  const int bpp = std::max(1, PngChannels(s.color_type) * s.depth / 8);  // filter byte distance
  if (!s.interlace) {
    Bytes prev;
    for (int y = 0; y < s.height; ++y) {
      const Bytes row = PngRow(s, y, 0, 1);
      if (prev.empty()) prev.assign(row.size(), '\0');
      const int filter = s.vary_filters ? y % 5 : 0;
      raw += char(filter);
      for (size_t i = 0; i < row.size(); ++i) {
        const int a = i >= size_t(bpp) ? uint8_t(row[i - bpp]) : 0;
        const int b = uint8_t(prev[i]);
        const int c = i >= size_t(bpp) ? uint8_t(prev[i - bpp]) : 0;
        int pred = 0;
        switch (filter) {
          case 1: pred = a; break;
          case 2: pred = b; break;
          case 3: pred = (a + b) / 2; break;
          case 4: pred = Paeth(a, b, c); break;
        }
        raw += char(uint8_t(uint8_t(row[i]) - pred));
      }
      prev = row;
    }
  } else {
    static const int kPass[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                    {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
    for (const auto& p : kPass) {
      if (p[0] >= s.width || p[1] >= s.height) continue;
      for (int y = p[1]; y < s.height; y += p[3]) {
        raw += char(0);
        raw += PngRow(s, y, p[0], p[2]);
      }
    }
  }
  Chunk(&png, "IDAT", Zlib(raw));
  Chunk(&png, "IEND", "");
  return png;
}

void PngSeeds() {
  struct Variant {
    const char* name;
    PngSpec spec;
  };
  auto spec = [](int type, int depth, bool interlace = false, bool trns = false,
                 bool filters = false) {
    PngSpec s;
    s.color_type = type;
    s.depth = depth;
    s.interlace = interlace;
    s.trns = trns;
    s.vary_filters = filters;
    return s;
  };
  const Variant variants[] = {
      {"png-gray-1bit", spec(0, 1)},
      {"png-gray-4bit-trns", spec(0, 4, false, true)},
      {"png-gray-8bit", spec(0, 8)},
      {"png-gray-16bit", spec(0, 16)},
      {"png-rgb-8bit-filters", spec(2, 8, false, false, true)},
      {"png-rgb-16bit", spec(2, 16)},
      {"png-palette-2bit", spec(3, 2)},
      {"png-palette-8bit-trns", spec(3, 8, false, true)},
      {"png-gray-alpha-8bit", spec(4, 8)},
      {"png-rgba-8bit", spec(6, 8)},
      {"png-rgba-16bit-filters", spec(6, 16, false, false, true)},
      {"png-rgb-interlaced", spec(2, 8, true)},
      {"png-palette-4bit-interlaced", spec(3, 4, true)},
  };
  for (const Variant& v : variants) Put("decode", v.name, EncodePng(v.spec));
  const Bytes good = EncodePng(spec(2, 8));
  Put("decode", "png-truncated", good.substr(0, good.size() - 20));
  {
    Bytes b = good;
    b[29] = char(uint8_t(b[29]) ^ 1);  // IHDR's CRC
    Put("decode", "png-bad-crc", b);
  }
  {
    PngSpec s = spec(2, 8);
    Bytes b = EncodePng(s);
    // 40000 x 40000 in IHDR: refused before decoding (the CRC no longer matches either).
    b.replace(16, 8, Bytes("\x00\x00\x9c\x40\x00\x00\x9c\x40", 8));
    Put("decode", "png-huge-dimensions", b);
  }
}

// ------------------------------------------------------------------------------ other formats

void OpenCvSeeds() {
  cv::Mat color(7, 9, CV_8UC3), gray(7, 9, CV_8UC1);
  for (int y = 0; y < 7; ++y)
    for (int x = 0; x < 9; ++x) {
      for (int c = 0; c < 3; ++c) color.at<cv::Vec3b>(y, x)[c] = Pattern(x, y, c, 3);
      gray.at<uint8_t>(y, x) = Pattern(x, y, 0, 4);
    }
  struct Enc {
    const char* name;
    const char* ext;
    const cv::Mat* mat;
  };
  cv::Mat f32, big(40, 48, CV_8UC3);
  color.convertTo(f32, CV_32FC3, 1.0 / 255);
  for (int y = 0; y < big.rows; ++y)
    for (int x = 0; x < big.cols; ++x)
      for (int c = 0; c < 3; ++c) big.at<cv::Vec3b>(y, x)[c] = Pattern(x, y, c, 5);
  const Enc encs[] = {{"bmp-rgb", ".bmp", &color},     {"bmp-gray", ".bmp", &gray},
                      {"ppm", ".ppm", &color},         {"pgm", ".pgm", &gray},
                      {"pbm", ".pbm", &gray},          {"pam", ".pam", &color},
                      {"pfm", ".pfm", &f32},           {"hdr", ".hdr", &f32},
                      {"exr", ".exr", &f32},           {"jp2", ".jp2", &big},
                      {"tiff-rgb", ".tiff", &color},   {"webp", ".webp", &color},
                      {"sunraster", ".ras", &color}};
  for (const Enc& e : encs) {
    if (!cv::haveImageWriter(e.ext)) continue;
    std::vector<uint8_t> buf;
    try {
      if (!cv::imencode(e.ext, *e.mat, buf)) continue;
    } catch (const cv::Exception&) {
      continue;
    }
    Put("decode", e.name, Bytes(buf.begin(), buf.end()));
  }
  Put("decode", "pgm-ascii", "P2\n3 2\n255\n0 128 255\n10 20 30\n");
  {
    std::vector<uint8_t> lossless;
    if (cv::haveImageWriter(".webp") &&
        cv::imencode(".webp", color, lossless, {cv::IMWRITE_WEBP_QUALITY, 101}))
      Put("decode", "webp-lossless", Bytes(lossless.begin(), lossless.end()));
  }
  // Headers announcing more than max_pixels: refused before OpenCV allocates.
  {
    Bytes bmp(54, '\0');
    bmp[0] = 'B';
    bmp[1] = 'M';
    bmp[14] = 40;
    bmp.replace(18, 8, Bytes("\x30\x75\0\0\x30\x75\0\0", 8));  // 30000 x 30000
    bmp[26] = 1;
    bmp[28] = 24;
    Put("decode", "bmp-huge-dimensions", bmp);
    Bytes tiff("II*\0\x08\0\0\0\x04\0", 10);
    for (const auto& [tag, value] : std::vector<std::pair<int, uint32_t>>{
             {256, 16}, {257, 16}, {322, 1u << 20}, {323, 1u << 20}}) {
      Bytes e(12, '\0');
      e[0] = char(tag & 0xFF);
      e[1] = char(tag >> 8);
      e[2] = 4;
      e[4] = 1;
      std::memcpy(&e[8], &value, 4);
      tiff += e;
    }
    tiff += Bytes(4, '\0');
    Put("decode", "tiff-huge-tiles", tiff);
  }
  Put("decode", "not-an-image", "hello, world\n");
}

// ------------------------------------------------------------------------------ configs

void ConfigSeeds(const std::string& source_dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(source_dir + "/configs"))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    // Without the comment lines: the fuzzer gains nothing from prose.
    std::istringstream in(ReadAll(f.string()));
    std::string line, text;
    while (std::getline(in, line))
      if (line.rfind('#', 0) != 0) text += line + "\n";
    Put("config", f.stem().string() + ".yaml", text);
  }
  Put("config", "tar-source.yaml",
      "seed: 3\n"
      "source: {type: tar, shards: 'data/s-{000..002}.tar', extensions: [jpg, png], "
      "label_extension: cls, shuffle_buffer: 64, limit: 10, on_error: fail}\n"
      "pipeline:\n"
      "  - {type: decode, color: gray, max_pixels: 1000000}\n"
      "  - {type: resize, size: [32, 48], interpolation: area}\n"
      "  - {type: center_crop, size: 24}\n"
      "batch: {size: 8, layout: nhwc, dtype: uint8}\n"
      "cache: {mode: disk, path: /tmp/c, commit_seconds: 0.5, write_queue: 64MiB}\n");
  Put("config", "file-list-train.yaml",
      "source: {type: file_list, root: data, list: data/list.csv}\n"
      "threads: 2\nprefetch: 2\nmax_in_flight: 16\nshuffle: false\nfuse: false\n"
      "max_skipped: 5%\n"
      "pipeline: [{type: decode}, {type: random_resized_crop, size: [32, 32], "
      "scale: [0.5, 1], name: crop}, {type: normalize, mean: 0.5, std: 0.25}]\n"
      "cache: {mode: auto, budget: 1.5GiB, path: c, after: decode}\n"
      "distributed: {policy: stable, uneven: drop, backend: gloo, timeout_seconds: 60}\n"
      "model: {type: resnet18, stem: cifar}\n"
      "optimizer: {type: adamw, lr: 1e-3, weight_decay: 0.05, beta1: 0.9, beta2: 0.999}\n"
      "schedule: {type: step, warmup_epochs: 1, step_epochs: 2, gamma: 0.1}\n"
      "loss: {label_smoothing: 0.1}\n"
      "checkpoint: ck.pt\ncheckpoint_every: 100\ndevice: cpu\n");
  Put("config", "overrides.yaml",
      "#set batch.size=4\n#set pipeline.0.p=1.0\n#set cache={mode: memory, budget: 1%}\n"
      "source: {type: idx, root: d}\n"
      "pipeline:\n  - {type: random_horizontal_flip, p: 0.5}\n");
  Put("config", "anchors-and-tags.yaml",
      "source: &s {type: image_folder, root: !!str 12}\n"
      "pipeline: [&d {type: decode, color: rgb}, {type: center_crop, size: 8}]\n"
      "eval: {source: *s, pipeline: [*d], batch_size: 3}\n"
      "seed: 16\nepochs: !!int '2'\nrecord_indices: true\n");
  // Wrong ones: each should be refused with an error at its line.
  Put("config", "bad-syntax.yaml", "source: {type: idx\npipeline: [\n");
  Put("config", "bad-types.yaml",
      "seed: -1\nepochs: 0\nsource: [1, 2]\npipeline: {type: decode}\n"
      "batch: {size: big}\ncache: {mode: sometimes, budget: 200%}\nunknown_key: 1\n");
  Put("config", "bad-stage.yaml",
      "source: {type: image_folder, root: r}\n"
      "pipeline:\n  - {type: resise, size: 0}\n  - {type: normalize, mean: [1, 2], std: [0]}\n"
      "cache: {after: resise}\n");
  Put("config", "two-documents.yaml", "source: {type: idx}\n---\nseed: 1\n");
}

// ------------------------------------------------------------------------------ IDX

Bytes Gzip(const Bytes& in) {
  z_stream zs{};
  deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  Bytes out(deflateBound(&zs, uLong(in.size())) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = uInt(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

Bytes IdxImages(uint32_t n, uint32_t rows, uint32_t cols) {
  Bytes b;
  PutBE32(&b, 0x00000803);
  PutBE32(&b, n);
  PutBE32(&b, rows);
  PutBE32(&b, cols);
  for (uint32_t i = 0; i < n * rows * cols; ++i) b += char((i * 7 + i / cols) & 0xFF);
  return b;
}

Bytes IdxLabels(uint32_t n, uint32_t classes) {
  Bytes b;
  PutBE32(&b, 0x00000801);
  PutBE32(&b, n);
  for (uint32_t i = 0; i < n; ++i) b += char(i % classes);
  return b;
}

Bytes Pack(uint8_t flags, const std::vector<Bytes>& parts) {
  Bytes out(1, char(flags));
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += fuzz::kSeparator;
    out += parts[i];
  }
  return out;
}

void IdxSeeds() {
  const Bytes img = IdxImages(5, 4, 3), lab = IdxLabels(5, 3);
  Put("idx", "plain", Pack(0, {img, lab}));
  Put("idx", "gzip-by-harness", Pack(1 | 2, {img, lab}));
  Put("idx", "gzip-in-input", Pack(0, {Gzip(img), Gzip(lab)}));
  Put("idx", "limit-2", Pack(2 << 2, {img, lab}));
  Put("idx", "one-pixel", Pack(0, {IdxImages(1, 1, 1), IdxLabels(1, 1)}));
  Put("idx", "gzip-two-members", Pack(0, {Gzip(img.substr(0, 20)) + Gzip(img.substr(20)), lab}));
  Put("idx", "gzip-zero-padding", Pack(0, {Gzip(img) + Bytes(16, '\0'), lab}));
  // Damaged ones.
  Put("idx", "gzip-trailing-garbage", Pack(0, {Gzip(img) + "junk", lab}));
  Put("idx", "gzip-truncated", Pack(0, {Gzip(img).substr(0, 30), lab}));
  Put("idx", "truncated-pixels", Pack(0, {img.substr(0, img.size() - 5), lab}));
  Put("idx", "trailing-pixels", Pack(0, {img + "xx", lab}));
  Put("idx", "label-count-mismatch", Pack(0, {img, IdxLabels(4, 3)}));
  Put("idx", "wrong-magic", Pack(0, {lab, img}));
  Put("idx", "no-labels-file", Pack(0, {img}));
  {
    Bytes huge = img;
    huge.replace(4, 12, Bytes("\x7f\xff\xff\xff\x00\x01\x00\x00\x00\x01\x00\x00", 12));
    Put("idx", "huge-dimensions", Pack(0, {huge, lab}));
  }
}

// ------------------------------------------------------------------------------ tar

// A minimal tar writer for the header variants GNU tar does not make for tiny files.
class TarBuilder {
 public:
  // A header block; `size_field` overrides the octal size text (e.g. GNU base-256).
  void Header(const std::string& name, int64_t size, char type, const Bytes& size_field = "",
              bool ustar = true, const std::string& prefix = "") {
    Bytes h(512, '\0');
    std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
    std::snprintf(&h[100], 8, "%07o", 0644);
    std::snprintf(&h[108], 8, "%07o", 0);
    std::snprintf(&h[116], 8, "%07o", 0);
    if (size_field.empty()) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "%011llo", static_cast<unsigned long long>(size));
      std::memcpy(&h[124], buf, 11);
    } else {
      std::memcpy(&h[124], size_field.data(), std::min<size_t>(size_field.size(), 12));
    }
    std::snprintf(&h[136], 12, "%011o", 0);
    h[156] = type;
    if (ustar) {
      std::memcpy(&h[257], "ustar\0" "00", 8);
    } else {
      std::memcpy(&h[257], "ustar  \0", 8);
    }
    if (!prefix.empty()) std::memcpy(&h[345], prefix.data(), std::min<size_t>(prefix.size(), 155));
    std::memset(&h[148], ' ', 8);
    unsigned sum = 0;
    for (char c : h) sum += uint8_t(c);
    std::snprintf(&h[148], 8, "%06o", sum);
    h[155] = ' ';
    out_ += h;
  }
  void Data(const Bytes& d) {
    out_ += d;
    out_.append((512 - d.size() % 512) % 512, '\0');
  }
  void File(const std::string& name, const Bytes& d, char type = '0') {
    Header(name, int64_t(d.size()), type);
    Data(d);
  }
  void Pax(const std::vector<std::pair<std::string, std::string>>& records, char type = 'x') {
    Bytes body;
    for (const auto& [k, v] : records) {
      const std::string kv = " " + k + "=" + v + "\n";
      size_t len = kv.size() + 1;
      while (std::to_string(len).size() + kv.size() != len) ++len;
      body += std::to_string(len) + kv;
    }
    Header("PaxHeaders/x", int64_t(body.size()), type);
    Data(body);
  }
  Bytes Finish() const { return out_ + Bytes(1024, '\0'); }

 private:
  Bytes out_;
};

void TarSeeds(const std::string& work, const Bytes& jpeg, const Bytes& png) {
  // The files make_seeds.sh packs with GNU tar (ustar, gnu and pax formats).
  const std::string src = work + "/tarsrc";
  fs::remove_all(src);
  fuzz::WriteFile(src + "/00000000.jpg", jpeg);
  fuzz::WriteFile(src + "/00000000.cls", "0\n");
  fuzz::WriteFile(src + "/00000001.png", png);
  fuzz::WriteFile(src + "/00000001.cls", "2");
  const std::string deep =
      src + "/a-folder-name-long-enough-that-paths-need-more-than-one-hundred-bytes/";
  fuzz::WriteFile(deep + "sample-with-a-long-name-00000002.jpg", jpeg);
  fuzz::WriteFile(deep + "sample-with-a-long-name-00000002.cls", "1");

  // flowfeed's own writer over an image folder of two classes.
  {
    const std::string folder = work + "/folder";
    fs::remove_all(folder);
    fuzz::WriteFile(folder + "/a/0.jpg", jpeg);
    fuzz::WriteFile(folder + "/b/1.jpg", jpeg);
    fuzz::WriteFile(folder + "/b/2.png", png);
    SourceOptions so;
    so.type = "image_folder";
    so.root = folder;
    Result<std::unique_ptr<Source>> source = OpenImageFolder(so);
    if (!source.ok()) {
      std::cerr << source.status().ToString() << "\n";
      std::exit(1);
    }
    ShardWriterOptions wo;
    wo.out_dir = work + "/shards";
    wo.samples_per_shard = 2;
    wo.shuffle = false;
    wo.overwrite = true;
    std::ostringstream log;
    std::string pattern;
    Status s = WriteShards(*source.value(), wo, log, &pattern);
    if (!s.ok()) {
      std::cerr << s.ToString() << "\n";
      std::exit(1);
    }
    const Bytes s0 = ReadAll(wo.out_dir + "/shard-000000.tar");
    const Bytes s1 = ReadAll(wo.out_dir + "/shard-000001.tar");
    // WriteShards pads to 10240 bytes as GNU tar does; the zero tail after the end-of-archive
    // blocks is cut here to keep the seeds small (the reader stops at the first zero block).
    auto trim = [](Bytes b) {
      size_t end = b.size();
      while (end > 0 && b[end - 1] == '\0') --end;
      return b.substr(0, std::min(b.size(), (end + 511) / 512 * 512 + 1024));
    };
    Put("tar", "flowfeed-writer-two-shards", Pack(0, {trim(s0), trim(s1)}));
  }

  // Header variants.
  {
    TarBuilder t;
    // GNU base-256 size (0x80 then big-endian) on a member, an old-style directory, a hidden
    // resource fork, a pax global header and a GNU long link name: all stepped over or read.
    Bytes b256(12, '\0');
    b256[0] = char(0x80);
    b256[11] = char(jpeg.size() & 0xFF);
    b256[10] = char((jpeg.size() >> 8) & 0xFF);
    t.Header("dir/", 0, '\0');
    t.Pax({{"comment", "global"}}, 'g');
    t.Header("k/00000005.jpg", int64_t(jpeg.size()), '0', b256);
    t.Data(jpeg);
    t.File("k/00000005.txt", " 7 \n");
    t.File("k/._00000005.jpg", "resource fork");
    t.File("link", "", '2');
    const Bytes longlink("some/target\0", 12);
    t.Header("././@LongLink", int64_t(longlink.size()), 'K');
    t.Data(longlink);
    Put("tar", "base256-txt-labels", Pack(4, {t.Finish()}));
  }
  {
    TarBuilder t;
    // pax path and size records, then a ustar prefix field.
    t.Pax({{"path", "pax/named/00000009.jpg"}, {"size", std::to_string(jpeg.size())}});
    t.Header("ignored-name", 0, '0');
    t.Data(jpeg);
    t.File("pax/named/00000009.cls", "4");
    t.Header("00000010.png", int64_t(png.size()), '0', "", true, "a/prefix");
    t.Data(png);
    t.Header("00000010.cls", 1, '0', "", true, "a/prefix");
    t.Data("3");
    Put("tar", "pax-and-prefix", Pack(0, {t.Finish()}));
  }
  {
    TarBuilder t;
    // GNU long names ('L') for the next member; the second sample's label is under another
    // key, so it has none.
    const std::string dir = std::string(120, 'n');
    for (const char* ext : {".jpg", ".cls"}) {
      const std::string longname = dir + "/00000011" + ext;
      t.Header("././@LongLink", int64_t(longname.size() + 1), 'L', "", false);
      t.Data(longname + '\0');
      const Bytes body = std::string(ext) == ".jpg" ? jpeg : Bytes("1");
      t.Header("short", int64_t(body.size()), '0', "", false);
      t.Data(body);
    }
    Put("tar", "gnu-longname", Pack(0, {t.Finish()}));
    t.File(dir.substr(0, 80) + "/00000012.jpg", jpeg);
    t.File(dir.substr(0, 80) + "/x/00000012.cls", "1");
    Put("tar", "gnu-longname-label-elsewhere", Pack(0, {t.Finish()}));
  }
  // Damaged ones.
  {
    TarBuilder t;
    t.File("00000000.jpg", jpeg);
    t.File("00000000.cls", "zero");
    Put("tar", "label-not-a-number", Pack(0, {t.Finish()}));
  }
  {
    TarBuilder t;
    t.File("00000000.jpg", jpeg);
    t.File("00000000.png", png);
    t.File("00000000.cls", "1");
    t.File("00000001.cls", "1");
    t.File("00000000.jpg", jpeg);
    Put("tar", "two-images-and-strays", Pack(0, {t.Finish()}));
  }
  {
    TarBuilder t;
    t.File("00000000.jpg", jpeg);
    t.File("00000000.cls", "1");
    const Bytes whole = t.Finish();
    Put("tar", "truncated-member", Pack(0, {whole.substr(0, 700)}));
    Bytes bad = whole;
    bad[150] = char(bad[150] ^ 1);  // the checksum
    Put("tar", "bad-checksum", Pack(0, {bad}));
    Put("tar", "no-end-blocks", Pack(0, {whole.substr(0, whole.size() - 1024)}));
  }
  {
    TarBuilder t;
    t.Pax({{"size", "99999999999999999999"}});
    t.File("00000000.jpg", jpeg);
    Put("tar", "pax-size-overflow", Pack(0, {t.Finish()}));
    TarBuilder u;
    u.Pax({{"size", "1073741824"}});
    u.File("00000000.jpg", jpeg);
    u.File("00000000.cls", "1");
    Put("tar", "pax-size-past-end", Pack(0, {u.Finish()}));
  }
}

// ------------------------------------------------------------------------------ cache

Bytes CachePack(uint8_t flags, const std::string& dir, const Bytes& meta_override = "",
                size_t data_cut = 0, size_t index_cut = 0) {
  const Bytes meta = meta_override.empty() ? ReadAll(dir + "/flowfeed-cache.meta") : meta_override;
  Bytes index = ReadAll(dir + "/flowfeed-cache.index");
  Bytes data = ReadAll(dir + "/flowfeed-cache.data");
  if (data_cut) data = data.substr(0, data.size() - std::min(data.size(), data_cut));
  if (index_cut) index = index.substr(0, index.size() - std::min(index.size(), index_cut));
  return Pack(flags, {meta, index, data});
}

// The fixture's cache at `dir` (written for `fp`): two index segments, samples 0-2, then 3-5.
void WriteFixtureCache(const std::string& dir, const CacheFingerprint& fp) {
  fs::remove_all(dir);
  {
    Result<std::unique_ptr<SampleCache>> r =
        SampleCache::Open(fuzz::CacheFixtureOptions(dir), fuzz::kCacheSamples, fp);
    if (!r.ok()) {
      std::cerr << r.status().ToString() << "\n";
      std::exit(1);
    }
    SampleCache& cache = *r.value();
    for (int64_t i = 0; i < 3; ++i) cache.Insert(i, fuzz::CacheFixtureImage(i));
    cache.Flush();
    for (int64_t i = 3; i < fuzz::kCacheSamples; ++i) cache.Insert(i, fuzz::CacheFixtureImage(i));
    cache.Flush();
  }
}

void CacheSeeds(const std::string& work) {
  const std::string dir = work + "/cache", other = work + "/other-cache";
  WriteFixtureCache(dir, fuzz::CacheFixtureFingerprint());
  CacheFingerprint other_fp = fuzz::CacheFixtureFingerprint();
  other_fp.parts.back().second = "decode(color=gray)";
  WriteFixtureCache(other, other_fp);
  Put("cache", "valid", CachePack(0, dir));
  Put("cache", "valid-reopen", CachePack(8, dir));
  Put("cache", "valid-meta-by-harness", CachePack(1, dir, "x"));
  Put("cache", "torn-data-tail", CachePack(8, dir, "", 10));
  Put("cache", "torn-index-tail", CachePack(8, dir, "", 0, 12));
  {
    Bytes p = CachePack(0, dir);
    p[p.size() - 3] = char(p[p.size() - 3] ^ 0x10);  // the last record's pixels
    Put("cache", "corrupt-record", p);
  }
  {
    // Garbage appended to both files: a torn tail.
    Bytes p = CachePack(8, dir);
    const size_t data_at = p.rfind(fuzz::kSeparator);
    p.insert(data_at, "FFCI\x02\0\0\0garbage", 15);
    p += "garbage";
    Put("cache", "garbage-tails", p);
  }
  Put("cache", "other-fingerprint",
      CachePack(8, dir,
                "{\"format\":2,\"fingerprint\":\"0123456789abcdef\",\"parts\":[[\"format\","
                "\"2\"],[\"stages\",\"decode(color=gray)\"]]}\n"));
  Put("cache", "meta-not-json", CachePack(0, dir, "{\"format\":2,\"fingerprint\":"));
  {
    // The meta file of an older flowfeed (format 1): rebuilt.
    Bytes meta = ReadAll(dir + "/flowfeed-cache.meta");
    const std::string key = "\"format\": 2";
    meta.replace(meta.find(key), key.size(), "\"format\": 1");
    Put("cache", "meta-format-1", CachePack(8, dir, meta));
  }
  // The files of a cache with another fingerprint under a meta file naming the fixture's (one
  // copied in from another cache): rebuilt, never served. Then only the index, then only the
  // data file, from the other cache.
  Put("cache", "files-of-another-cache", CachePack(1 | 8, other, "x"));
  Put("cache", "index-of-another-cache",
      Pack(1 | 8,
           {"", ReadAll(other + "/flowfeed-cache.index"), ReadAll(dir + "/flowfeed-cache.data")}));
  Put("cache", "data-of-another-cache",
      Pack(1 | 8,
           {"", ReadAll(dir + "/flowfeed-cache.index"), ReadAll(other + "/flowfeed-cache.data")}));
  Put("cache", "no-files", Pack(0, {""}));
  // The index with a data file holding only its header: every entry is past the data's end.
  Put("cache", "index-without-data",
      Pack(1 | 2 | 8, {"", ReadAll(dir + "/flowfeed-cache.index"),
                       ReadAll(dir + "/flowfeed-cache.data").substr(0, 16)}));
  Put("cache", "forged-checksums", CachePack(1 | 4 | 8, dir));
}

}  // namespace
}  // namespace flowfeed

int main(int argc, char** argv) {
  using namespace flowfeed;
  if (argc != 4) {
    std::cerr << "usage: fuzz_make_seeds OUT_DIR SOURCE_DIR WORK_DIR\n";
    return 2;
  }
  g_out = argv[1];
  const std::string source_dir = argv[2], work = argv[3];
  JpegSeeds();
  PngSeeds();
  OpenCvSeeds();
  ConfigSeeds(source_dir);
  IdxSeeds();
  JpegSpec tiny;
  tiny.width = 8;
  tiny.height = 8;
  PngSpec tiny_png;
  tiny_png.width = 4;
  tiny_png.height = 3;
  TarSeeds(work, EncodeJpeg(tiny), EncodePng(tiny_png));
  CacheSeeds(work);
  std::cout << "seeds written under " << g_out << "\n";
  return 0;
}
