// config/overrides.cc: `--set key.path=value` applied to the YAML tree before it is read (see
// config.h), so overridden values are checked exactly like the file's. The reader remembers which
// paths were replaced, so that problems inside them are reported at "--set KEY" rather than at a
// line of the override's own text.
#include "config/reader.h"

namespace flowfeed::config {

void ConfigReader::ApplyOverride(YAML::Node root, const std::string& text) {
  const std::string quoted = "(override \"" + text + "\")";
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    OverrideError("", "override \"" + text + "\" has no '='; expected KEY.PATH=VALUE");
    return;
  }
  const std::string key = Trim(text.substr(0, eq));
  if (key.empty()) {
    OverrideError("", "override \"" + text + "\" has an empty key; expected KEY.PATH=VALUE");
    return;
  }
  const std::vector<std::string> segments = Split(key, '.');
  for (const std::string& seg : segments) {
    if (Trim(seg).empty()) {
      OverrideError(key, "empty key segment " + quoted);
      return;
    }
  }
  YAML::Node value;
  try {
    value = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    OverrideError(key, "value is not valid YAML: " + e.msg + " " + quoted);
    return;
  }

  YAML::Node cur = root;
  std::string canon;  // canonical path of `cur`
  std::string shown;  // the key as written up to `cur`, for messages
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string seg = Trim(segments[i]);
    const bool last = i + 1 == segments.size();
    const std::string where = shown.empty() ? "the top level" : "\"" + shown + "\"";
    if (cur.IsSequence()) {
      size_t index = 0;
      if (!ParseIndex(seg, &index)) {
        OverrideError(key,
                      where + " is a list; expected an item number, got \"" + seg + "\" " + quoted);
        return;
      }
      if (index >= cur.size()) {
        OverrideError(key, "index " + seg + " is out of range: " + where + " has " +
                               std::to_string(cur.size()) + " item(s) " + quoted);
        return;
      }
      canon += (canon.empty() ? "" : ".") + std::to_string(index);
      if (last) {
        cur[index] = value;
      } else {
        YAML::Node next = cur[index];
        if (!next.IsDefined() || next.IsNull()) next = YAML::Node(YAML::NodeType::Map);
        cur.reset(next);
      }
    } else if (cur.IsMap()) {
      canon += (canon.empty() ? "" : ".") + seg;
      if (last) {
        cur[seg] = value;
      } else {
        YAML::Node next = cur[seg];
        if (!next.IsDefined() || next.IsNull()) next = YAML::Node(YAML::NodeType::Map);
        cur.reset(next);
      }
    } else {
      OverrideError(key, "cannot set \"" + seg + "\" inside " + where +
                             ", which is a single value, not a map or a list " + quoted);
      return;
    }
    shown += (shown.empty() ? "" : ".") + seg;
  }
  overridden_.push_back(canon);
}

}  // namespace flowfeed::config
