// config/document.h: a config's YAML text to the tree the reader reads, and its problems to the
// Status the loader returns. Internal to the config loader (load.cc); thread-safe (no state
// beyond the arguments).
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "config/reader.h"
#include "flowfeed/config.h"
#include "flowfeed/status.h"

namespace flowfeed::config {

// Parses `yaml_text` into *root: the first document, a map. Problems (a syntax error, an empty
// text, several documents, a top that is not a map) go to `reader`; false when there is nothing
// to read on (several documents still give the first one). Throws YAML::Exception only for what
// yaml-cpp reports outside parsing, which the loader calls an internal error.
bool LoadDocument(const std::string& yaml_text, ConfigReader* reader, YAML::Node* root);

// The InvalidArgument listing `found`, one problem per line, sorted to read top to bottom:
// broken overrides, then the file by line and column, then values that came from overrides.
// `errors` (when given) receives them as records.
Status Fail(const std::string& file, std::vector<ConfigError> found,
            std::vector<ConfigError>* errors);

}  // namespace flowfeed::config
