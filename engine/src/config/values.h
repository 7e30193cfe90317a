// config/values.h: the text of config values to numbers and back, and ClosestMatch's helpers.
//
// Pure functions on strings: no YAML here, so the option tables (option_table.cc) and the reader
// (reader.cc) share one definition of what "an integer" or "a number" is. Numbers are parsed by
// hand rather than with yaml-cpp's as<T>(), so that "1.5" is not an int and "0x10" or "1_000" are
// not silently accepted. Thread-safe (no state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flowfeed::config {

// Optional sign, decimal digits, nothing else; false on overflow.
bool ParseInt64(const std::string& text, int64_t* out);
// Optional '+', decimal digits; false on overflow or a '-'.
bool ParseUInt64(const std::string& text, uint64_t* out);
// Decimal numbers only: [+-] digits [. digits] [e [+-] digits]; no hex, inf, nan or '_'.
bool ParseDouble(const std::string& text, double* out);
// YAML 1.2 core-schema booleans; "yes"/"no"/"on"/"off" are refused (they are strings in 1.2).
bool ParseBool(const std::string& text, bool* out);
// A list position in an override key ("pipeline.2.size"): digits only.
bool ParseIndex(const std::string& seg, size_t* out);

std::string Trim(const std::string& s);
std::vector<std::string> Split(const std::string& s, char sep);

// Up to 15 significant digits, no trailing zeros: 0.05, 5e-04 stays "0.0005".
std::string FormatNumber(double v);
// " >= 1", " <= 5", " in [0, 1]" or "" (closed ends; stage parameter ranges).
std::string RangeText(std::optional<double> min, std::optional<double> max);

// One end of an option's range: `open` excludes the value itself (> 0 rather than >= 0).
struct Bound {
  double value;
  bool open;
};
// " in (0, 1]", " > 0", " <= 1" or "" (either end optional, open or closed); `bytes` writes
// the ends as sizes (" in [0, 1PiB]").
std::string IntervalText(const std::optional<Bound>& lo, const std::optional<Bound>& hi,
                         bool bytes = false);
// 268435456 -> "256MiB", 2^50 -> "1PiB"; sizes that are not whole units stay byte counts.
std::string FormatBytes(int64_t v);
// Whether `v` lies within the interval.
bool InInterval(double v, const std::optional<Bound>& lo, const std::optional<Bound>& hi);

}  // namespace flowfeed::config
