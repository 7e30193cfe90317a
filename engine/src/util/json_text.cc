// util/json_text.cc: see util/json_text.h.
#include "util/json_text.h"

#include <utility>

#include "flowfeed/util/strings.h"

namespace flowfeed {

namespace {

bool ValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void EscapeStrings(nlohmann::json* j) {
  if (j->is_string()) {
    std::string& s = j->get_ref<std::string&>();
    if (!ValidUtf8(s)) s = EscapeInvalidUtf8(s);
  } else if (j->is_array()) {
    for (nlohmann::json& item : *j) EscapeStrings(&item);
  } else if (j->is_object()) {
    bool keys_valid = true;
    for (auto it = j->begin(); it != j->end(); ++it) {
      keys_valid = keys_valid && ValidUtf8(it.key());
      EscapeStrings(&it.value());
    }
    if (keys_valid) return;
    nlohmann::json fixed = nlohmann::json::object();
    for (auto it = j->begin(); it != j->end(); ++it)
      fixed[EscapeInvalidUtf8(it.key())] = std::move(it.value());
    *j = std::move(fixed);
  }
}

}  // namespace

std::string DumpJson(nlohmann::json j, int indent) {
  EscapeStrings(&j);
  // `replace` only as a backstop: every string is valid UTF-8 by now.
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace flowfeed
