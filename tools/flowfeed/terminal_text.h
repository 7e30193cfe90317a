// tools/flowfeed/terminal_text.h: everything the CLI prints goes through one filter, so that a
// file or tar member name (inside an error, a warning, a skip list) cannot send the terminal
// control sequences: control bytes and invalid UTF-8 come out as "\xNN" (EscapeForTerminal).
// The progress line writes its own "\r" and "\033[K" through stdio, past this filter.
#pragma once

namespace flowfeed::cli {

// Puts the filter in front of std::cout and std::cerr for the rest of the process. Call once,
// from main(), before anything is printed. Not thread-safe against concurrent printing while it
// is installed (nothing prints yet then); afterwards as thread-safe as the streams themselves.
void EscapeControlBytesInOutput();

}  // namespace flowfeed::cli
