// config/document.cc: the YAML text of a config to one document's tree, with the guards that
// yaml-cpp needs (see ScanDocuments), and the config's problems sorted into one message.
#include "config/document.h"

#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cctype>
#include <sstream>

namespace flowfeed::config {

namespace {

// The documents of a YAML text, seen through the parser's events: where each one's top node
// starts. yaml-cpp 0.7's LoadAll() never returns for some malformed text (a ',' where a document
// should start: the parser reports an empty document without consuming the token, again and
// again, and the list grows until memory runs out; found by fuzz/fuzz_config.cc), so documents
// are counted here, stopping at a document that starts where the previous one did.
struct DocumentScan {
  std::vector<YAML::Mark> nodes;  // the first node's mark, one per document
  bool stuck = false;             // the parser stopped consuming input at `stuck_at`
  YAML::Mark stuck_at;
};

class DocumentScanner final : public YAML::EventHandler {
 public:
  explicit DocumentScanner(DocumentScan* scan) : scan_(scan) {}
  void OnDocumentStart(const YAML::Mark& mark) override {
    start_ = mark;
    first_ = true;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(mark);
  }
  void OnMapEnd() override {}
  const YAML::Mark& start() const { return start_; }

 private:
  void Node(const YAML::Mark& mark) {
    if (first_) scan_->nodes.push_back(mark);
    first_ = false;
  }
  DocumentScan* scan_;
  YAML::Mark start_;
  bool first_ = false;
};

// Throws YAML::ParserException for a syntax error, as LoadAll() does.
DocumentScan ScanDocuments(const std::string& yaml_text) {
  DocumentScan scan;
  std::istringstream in(yaml_text);
  YAML::Parser parser(in);
  DocumentScanner handler(&scan);
  int previous_pos = -1;
  while (parser.HandleNextDocument(handler)) {
    if (handler.start().pos == previous_pos) {
      scan.stuck = true;
      scan.stuck_at = handler.start();
      break;
    }
    previous_pos = handler.start().pos;
  }
  return scan;
}

}  // namespace

bool LoadDocument(const std::string& yaml_text, ConfigReader* reader, YAML::Node* root) {
  DocumentScan scan;
  try {
    scan = ScanDocuments(yaml_text);
    if (scan.stuck) {
      const size_t at = size_t(std::max(0, scan.stuck_at.pos));
      const char c = at < yaml_text.size() ? yaml_text[at] : '?';
      reader->DocumentError(scan.stuck_at,
                            std::string("YAML syntax error: unexpected '") +
                                (std::isprint(static_cast<unsigned char>(c)) ? c : '?') + "'");
      return false;
    }
    if (!scan.nodes.empty()) *root = YAML::Load(yaml_text);  // the first document
  } catch (const YAML::ParserException& e) {
    reader->DocumentError(e.mark, "YAML syntax error: " + e.msg);
    return false;
  }
  if (scan.nodes.empty() || root->IsNull()) {
    reader->DocumentError(YAML::Mark::null_mark(), "empty config");
    return false;
  }
  if (scan.nodes.size() > 1)
    reader->DocumentError(scan.nodes[1],
                          "expected one YAML document, found " + std::to_string(scan.nodes.size()));
  if (!root->IsMap()) {
    reader->DocumentError(root->Mark(),
                          "expected a map of settings (seed: ..., source: ...) at "
                          "the top, got " +
                              Got(*root));
    return false;
  }
  return true;
}

namespace {

// Sorts problems so they read top to bottom: broken overrides, then the file by line and
// column, then values that came from overrides.
void SortErrors(const std::string& file, std::vector<ConfigError>* errors) {
  const auto group = [&](const ConfigError& e) {
    if (e.where.file == "--set") return 0;
    if (e.where.file == file) return 1;
    return 2;
  };
  std::stable_sort(errors->begin(), errors->end(), [&](const ConfigError& a, const ConfigError& b) {
    const int ga = group(a), gb = group(b);
    if (ga != gb) return ga < gb;
    if (ga != 1) return false;
    if (a.where.line != b.where.line) return a.where.line < b.where.line;
    return a.where.column < b.where.column;
  });
}

}  // namespace

Status Fail(const std::string& file, std::vector<ConfigError> found,
            std::vector<ConfigError>* errors) {
  SortErrors(file, &found);
  std::string message = std::to_string(found.size()) +
                        (found.size() == 1 ? " problem in " : " problems in ") + file + ":";
  for (const ConfigError& e : found) message += "\n" + e.ToString();
  if (errors) *errors = std::move(found);
  return Status::InvalidArgument(message);
}

}  // namespace flowfeed::config
