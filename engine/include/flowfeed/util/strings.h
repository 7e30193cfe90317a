// flowfeed/util/strings.h: small text helpers shared by the reports, the trainer and the CLI.
// Part of flowfeed/util/ (see flowfeed/util/file.h: shared helpers, not the engine's API).
//
// ParseByteSize() and PhysicalMemoryBytes() are defined in strings.cc too, but declared in
// flowfeed/cache.h, where they have always been public API.
//
// Thread-safety: all functions are pure (or read only sysconf) and safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace flowfeed {

// Length of the valid UTF-8 sequence at s[i] (1-4), or 0 when the byte there does not start one
// (a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, cut short).
size_t Utf8SequenceLength(std::string_view s, size_t i);

// `s` with every byte that is not part of valid UTF-8 written as the four characters "\xNN"
// (lower-case hex); valid text is returned unchanged. For JSON, which holds only UTF-8: a file
// name in another encoding keeps its bytes readable (only a name that already contains "\x"
// followed by two hex digits reads ambiguously).
std::string EscapeInvalidUtf8(std::string_view s);

// `s` made safe to print to a terminal: invalid UTF-8 (as EscapeInvalidUtf8) and control bytes
// (0x00-0x1f but newline and tab, 0x7f, and the C1 controls U+0080-U+009F) as "\xNN", so a file
// or tar member name cannot move the cursor, change colours or retitle the terminal. Printable
// text, newlines and tabs are unchanged.
std::string EscapeForTerminal(std::string_view s);

// printf-style formatting of one double, e.g. Fmt("%.2f", 1.5) == "1.50". `format` must take
// exactly one double; results longer than 63 characters are cut.
std::string Fmt(const char* format, double value);

}  // namespace flowfeed
