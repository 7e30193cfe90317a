// flowfeed/util/strings.h: small text helpers shared by the reports, the trainer and the CLI.
// Part of flowfeed/util/ (see flowfeed/util/file.h: shared helpers, not the engine's API).
//
// ParseByteSize() and PhysicalMemoryBytes() are defined in strings.cc too, but declared in
// flowfeed/cache.h, where they have always been public API.
//
// Thread-safety: all functions are pure (or read only sysconf) and safe from any thread.
#pragma once

#include <string>

namespace flowfeed {

// printf-style formatting of one double, e.g. Fmt("%.2f", 1.5) == "1.50". `format` must take
// exactly one double; results longer than 63 characters are cut.
std::string Fmt(const char* format, double value);

}  // namespace flowfeed
