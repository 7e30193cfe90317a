// util/json_text.h: JSON text that any string can go into. File names are bytes, not text: a
// skipped file whose name is Latin-1 would make nlohmann::json's dump() throw (type_error.316)
// and lose the whole report at the end of a run. Private to the engine (keeps nlohmann out of
// the public headers). Thread-safety: pure function, safe from any thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace flowfeed {

// j.dump(indent), after every string and object key that is not valid UTF-8 had its invalid
// bytes written as "\xNN" (EscapeInvalidUtf8), so the bytes stay readable. Never throws for
// encoding reasons.
std::string DumpJson(nlohmann::json j, int indent = -1);

}  // namespace flowfeed
