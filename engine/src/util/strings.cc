// util/strings.cc: Fmt, the escaping of names (UTF-8, control bytes), and ParseByteSize / PhysicalMemoryBytes (declared in flowfeed/cache.h).
#include "flowfeed/util/strings.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "flowfeed/cache.h"

namespace flowfeed {

std::string Fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return i + k < s.size() ? uint8_t(s[i + k]) : uint8_t(0); };
  const auto cont = [&](size_t k) { return (byte(k) & 0xC0) == 0x80; };
  const uint8_t c = byte(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    // E0: no overlong forms (second byte >= A0); ED: no surrogates (second byte < A0).
    const uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return byte(1) >= lo && byte(1) <= hi && cont(2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    // F0: no overlong forms; F4: nothing past U+10FFFF.
    const uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return byte(1) >= lo && byte(1) <= hi && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

namespace {

void AppendHexByte(std::string* out, uint8_t b) {
  static const char* digits = "0123456789abcdef";
  *out += "\\x";
  *out += digits[b >> 4];
  *out += digits[b & 0xF];
}

std::string Escape(std::string_view s, bool controls) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    const uint8_t c = uint8_t(s[i]);
    // C1 controls are U+0080-U+009F, encoded C2 80 - C2 9F.
    const bool c0 = n == 1 && ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F);
    const bool c1 = n == 2 && c == 0xC2 && uint8_t(s[i + 1]) < 0xA0;
    const bool control = controls && (c0 || c1);
    if (n == 0 || control) {
      for (size_t k = 0; k < std::max<size_t>(n, 1); ++k) AppendHexByte(&out, uint8_t(s[i + k]));
      i += std::max<size_t>(n, 1);
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace

std::string EscapeInvalidUtf8(std::string_view s) { return Escape(s, false); }
std::string EscapeForTerminal(std::string_view s) { return Escape(s, true); }

int64_t PhysicalMemoryBytes() {
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return int64_t(8) << 30;  // unknown: assume 8 GiB
  return int64_t(pages) * int64_t(page);
}

// Accepts "<number><unit>" with optional spaces around and between: the number is decimal
// digits with an optional fraction ("1.5"); the unit, case-insensitive, is none or "B" (bytes),
// K, M, G or T each optionally followed by "i" and/or "B" -- all of them binary (1024-based):
// "8GB", "8G" and "8GiB" are the same 8 * 2^30 bytes -- or "%" of physical memory
// (0 < N <= 100). Fractions of a byte are dropped.
Result<int64_t> ParseByteSize(const std::string& text) {
  auto bad = [&text]() {
    return Status::InvalidArgument("expected a size such as 8GiB, 512MiB or 25%, got \"" + text +
                                   "\"");
  };
  size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1]))) --e;
  const std::string s = text.substr(b, e - b);

  size_t i = 0;
  uint64_t whole = 0;
  bool digits = false;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    unsigned d = unsigned(s[i] - '0');
    if (whole > (std::numeric_limits<uint64_t>::max() - d) / 10) return bad();
    whole = whole * 10 + d;
    digits = true;
    ++i;
  }
  std::string frac_text = "0.";
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      frac_text += s[i];
      digits = true;
      ++i;
    }
  }
  if (!digits) return bad();
  const double frac = frac_text.size() > 2 ? std::strtod(frac_text.c_str(), nullptr) : 0.0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  std::string unit;
  for (; i < s.size(); ++i) unit += char(std::tolower(static_cast<unsigned char>(s[i])));

  constexpr uint64_t kMaxI64 = uint64_t(std::numeric_limits<int64_t>::max());
  if (unit == "%") {
    const double pct = double(whole) + frac;
    if (!(pct > 0) || pct > 100) return bad();
    return int64_t(std::floor(double(PhysicalMemoryBytes()) * pct / 100.0));
  }
  int shift = 0;
  if (!unit.empty() && unit != "b") {
    switch (unit[0]) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      case 't': shift = 40; break;
      default: return bad();
    }
    const std::string rest = unit.substr(1);
    if (!(rest.empty() || rest == "i" || rest == "b" || rest == "ib")) return bad();
  }
  const uint64_t mult = uint64_t(1) << shift;
  if (whole > kMaxI64 / mult) return bad();
  uint64_t value = whole * mult;
  const uint64_t extra = uint64_t(std::floor(frac * double(mult)));
  if (extra > kMaxI64 - value) return bad();
  value += extra;
  return int64_t(value);
}

}  // namespace flowfeed
