// flowfeed/util/text_format.h: numbers written for people, shared by the terminal table
// (stats.cc), the progress line (progress.cc) and the report page (report_html.cc), so the three
// say a figure the same way. Part of flowfeed/util/ (see flowfeed/util/file.h). Pure functions:
// safe from any thread.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace flowfeed::text {

// 512 -> "512 B", 1536 -> "1.5 KiB", up to TiB.
inline std::string Bytes(int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

// 2041.4 -> "2,041": rounded to a whole number, thousands separated.
inline std::string Thousands(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", std::fabs(v));
  const std::string digits = buf;
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v <= -0.5 ? "-" : "") + out;
}

// {"a", "b"} and ", " -> "a, b".
inline std::string Join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

}  // namespace flowfeed::text
