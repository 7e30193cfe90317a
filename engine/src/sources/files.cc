// sources/files.cc: sources backed by one file per sample (image folders, CSV file lists) and
// ReadFileBytes() (a forward to util's ReadFile). OpenSource() dispatches through the registry
// (sources/registry.cc).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "flowfeed/source.h"
#include "flowfeed/util/file.h"

namespace flowfeed {

namespace {

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool EndsWithNoCase(const std::string& s, const std::string& suffix) {
  if (suffix.size() > s.size()) return false;
  const size_t off = s.size() - suffix.size();
  for (size_t i = 0; i < suffix.size(); ++i)
    if (AsciiLower(s[off + i]) != AsciiLower(suffix[i])) return false;
  return true;
}

std::string JoinExtensions(const std::vector<std::string>& exts) {
  std::string s;
  for (const auto& e : exts) {
    if (!s.empty()) s += ", ";
    s += e;
  }
  return s.empty() ? "none" : s;
}

// "Classes" of a source without names: "0" .. "n-1".
std::vector<std::string> NumberedClasses(int64_t n) {
  std::vector<std::string> out;
  out.reserve(size_t(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) out.push_back(std::to_string(i));
  return out;
}

struct FileEntry {
  std::string path;
  int64_t label;
};

// Shared by the image folder and the file list: a fixed list of (path, label).
class FileSource final : public Source {
 public:
  FileSource(std::string kind, std::string where, std::vector<FileEntry> files,
             std::vector<std::string> classes)
      : kind_(std::move(kind)),
        where_(std::move(where)),
        files_(std::move(files)),
        classes_(std::move(classes)) {}

  int64_t size() const override { return int64_t(files_.size()); }
  int64_t label(int64_t index) const override { return files_[size_t(index)].label; }
  std::string_view key(int64_t index) const override { return files_[size_t(index)].path; }
  const std::vector<std::string>& classes() const override { return classes_; }

  Status Read(int64_t index, Sample* sample) const override {
    if (index < 0 || index >= size())
      return Status::InvalidArgument(kind_ + " " + where_ + ": sample index " +
                                     std::to_string(index) + " out of range [0, " +
                                     std::to_string(size()) + ")");
    const FileEntry& f = files_[size_t(index)];
    sample->image.Clear();
    sample->index = index;
    sample->label = f.label;
    sample->source = f.path;
    return ReadFileBytes(f.path, &sample->encoded);
  }

  std::vector<std::string> Files() const override {
    std::vector<std::string> out;
    out.reserve(files_.size());
    for (const FileEntry& f : files_) out.push_back(f.path);
    return out;
  }

  std::string Describe() const override {
    return kind_ + " " + where_ + ": " + std::to_string(files_.size()) + " files, " +
           std::to_string(classes_.size()) + " classes";
  }

 private:
  std::string kind_;
  std::string where_;
  std::vector<FileEntry> files_;
  std::vector<std::string> classes_;
};

// ---- image folder listing ----

struct DirEntry {
  enum Kind { kDir, kFile, kOther };
  std::string name;
  Kind kind;  // kOther: a dangling symlink, a FIFO, socket or device, or one stat() failed on
  int stat_error = 0;  // errno of stat() when it failed
};

// Lists `dir` (without "." and ".." and without hidden entries), following symlinks to find
// out what each entry is. Nothing is left out here: the callers decide what the other entries
// mean (an image-named one in a class folder is a sample that is skipped when read, with its
// reason, so the skip budget and the report see it).
Status ListDir(const std::string& dir, std::vector<DirEntry>* out) {
  out->clear();
  DIR* d = opendir(dir.c_str());
  if (!d) return ErrnoStatus(dir, errno);
  Status status;
  for (;;) {
    errno = 0;
    struct dirent* e = readdir(d);
    if (!e) {
      if (errno != 0) status = Status::IoError(ErrnoMessage(dir, errno));
      break;
    }
    if (e->d_name[0] == '.') continue;  // ".", ".." and hidden files and folders
    std::string name = e->d_name;
    struct stat st;
    const std::string path = JoinPath(dir, name);
    if (stat(path.c_str(), &st) != 0) {
      const int err = errno;
      if (lstat(path.c_str(), &st) != 0) continue;  // raced away since readdir()
      out->push_back({std::move(name), DirEntry::kOther, err});  // a dangling symlink, a loop
    } else {
      out->push_back({std::move(name), S_ISDIR(st.st_mode)   ? DirEntry::kDir
                                       : S_ISREG(st.st_mode) ? DirEntry::kFile
                                                             : DirEntry::kOther});
    }
  }
  closedir(d);
  return status;
}

bool IsImageName(const std::string& name, const std::vector<std::string>& exts) {
  for (const auto& e : exts) {
    if (e.empty()) continue;
    if (e[0] == '.' ? EndsWithNoCase(name, e) : EndsWithNoCase(name, "." + e)) return true;
  }
  return false;
}

// An image file under a class folder: the folder it is in (relative to the class folder, "" for
// the class folder itself) and its name. Sorting these pairs gives torchvision's order, which
// sorts os.walk()'s folders by path and then the file names within each folder.
using RelFile = std::pair<std::string, std::string>;

// Collects image files under `dir` (whose path relative to the class folder is `rel`),
// recursively, following symlinks. `visiting` holds the (device, inode) of the folders on the current path, so a symlink loop
// ends the descent instead of recursing forever.
Status CollectImages(const std::string& dir, const std::string& rel,
                     const std::vector<std::string>& exts,
                     std::set<std::pair<dev_t, ino_t>>* visiting, std::vector<RelFile>* out) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return ErrnoStatus(dir, errno);
  auto id = std::make_pair(st.st_dev, st.st_ino);
  if (!visiting->insert(id).second) return Status::Ok();  // a symlink loop
  std::vector<DirEntry> entries;
  Status s = ListDir(dir, &entries);
  if (s.ok()) {
    for (const auto& e : entries) {
      if (e.kind == DirEntry::kDir) {
        s = CollectImages(JoinPath(dir, e.name), JoinPath(rel, e.name), exts, visiting, out);
        if (!s.ok()) break;
      } else if (IsImageName(e.name, exts)) {
        out->emplace_back(rel, e.name);  // not a regular file: skipped with its reason when read
      }
    }
  }
  visiting->erase(id);
  return s;
}

// Parses a non-negative decimal integer that fits in int64 (no sign, no spaces).
bool ParseLabel(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    int d = c - '0';
    if (v > (std::numeric_limits<int64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return s.substr(b, e - b);
}

// Splits one CSV line into fields; a field may be double-quoted (with "" for a quote inside).
// Returns false on an unterminated quote or text after a closing quote.
bool SplitCsv(const std::string& line, std::vector<std::string>* fields) {
  fields->clear();
  size_t i = 0;
  const size_t n = line.size();
  for (;;) {
    while (i < n && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::string field;
    if (i < n && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < n) {
        if (line[i] == '"') {
          if (i + 1 < n && line[i + 1] == '"') {
            field += '"';
            i += 2;
          } else {
            ++i;
            closed = true;
            break;
          }
        } else {
          field += line[i++];
        }
      }
      if (!closed) return false;
      while (i < n && (line[i] == ' ' || line[i] == '\t')) ++i;
      if (i < n && line[i] != ',') return false;
    } else {
      size_t start = i;
      while (i < n && line[i] != ',') ++i;
      field = Trim(line.substr(start, i - start));
    }
    fields->push_back(std::move(field));
    if (i >= n) return true;
    ++i;  // the comma
  }
}

// Labels above this are refused: classes() names every label up to the largest.
constexpr int64_t kMaxListLabel = (int64_t(1) << 24) - 1;

}  // namespace

// Kept in source.h, where plugins and the CLI find it; the one implementation is util's.
Status ReadFileBytes(const std::string& path, std::vector<uint8_t>* out) {
  return ReadFile(path, out);
}

Status CheckSourceRoot(const SourceOptions& options, const std::string& key) {
  const std::string& root = options.root;
  if (root.empty()) return Status::Ok();
  struct stat st;
  const bool exists = stat(root.c_str(), &st) == 0;
  const int err = exists ? 0 : errno;
  if (exists && S_ISDIR(st.st_mode)) return Status::Ok();
  if (!exists && err != ENOENT && err != ENOTDIR)
    return Status::IoError(key + ": " + ErrnoMessage(root, err));
  std::string message = key + ": " + root + (exists ? " is not a directory" : " does not exist");
  // A relative root depends on where the command runs: say where that made it look.
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(root, ec);
  if (root[0] != '/' && !ec)
    message += " (relative to the current directory: " + absolute.lexically_normal().string() + ")";
  return Status::NotFound(message);
}

Result<std::unique_ptr<Source>> OpenImageFolder(const SourceOptions& options) {
  const std::string& root = options.root;
  if (root.empty()) return Status::InvalidArgument("source.root: required for image_folder");
  FLOWFEED_RETURN_IF_ERROR(CheckSourceRoot(options));

  std::vector<DirEntry> top;
  Status s = ListDir(root, &top);
  if (!s.ok()) return s.WithContext("source.root");
  std::vector<std::string> classes;
  for (auto& e : top) {
    // A class folder whose symlink is broken would shift every later class's label: refused.
    if (e.stat_error != 0 && e.stat_error != ENOENT)
      return Status::IoError("source.root: " + ErrnoMessage(JoinPath(root, e.name), e.stat_error));
    if (e.stat_error == ENOENT)
      return Status::NotFound("source.root: " + JoinPath(root, e.name) +
                              " is a dangling symlink (a class folder whose target is missing?); "
                              "fix or remove it");
    if (e.kind == DirEntry::kDir) classes.push_back(std::move(e.name));
  }
  std::sort(classes.begin(), classes.end());  // byte order, like Python's sorted()

  std::vector<FileEntry> files;
  std::vector<RelFile> rel;
  for (size_t c = 0; c < classes.size(); ++c) {
    rel.clear();
    std::set<std::pair<dev_t, ino_t>> visiting;
    s = CollectImages(JoinPath(root, classes[c]), "", options.extensions, &visiting, &rel);
    if (!s.ok()) return s.WithContext("source.root");
    std::sort(rel.begin(), rel.end());
    const std::string class_dir = JoinPath(root, classes[c]);
    for (const auto& [folder, name] : rel)
      files.push_back({JoinPath(JoinPath(class_dir, folder), name), int64_t(c)});
  }
  if (files.empty())
    return Status::NotFound("source.root: " + root +
                            " has no class folders with images (extensions: " +
                            JoinExtensions(options.extensions) + ")");
  if (options.limit > 0 && int64_t(files.size()) > options.limit)
    files.resize(size_t(options.limit));
  return std::unique_ptr<Source>(
      new FileSource("image_folder", root, std::move(files), std::move(classes)));
}

Result<std::unique_ptr<Source>> OpenFileList(const SourceOptions& options) {
  const std::string& list = options.list;
  if (list.empty()) return Status::InvalidArgument("source.list: required for file_list");
  std::vector<uint8_t> bytes;
  Status s = ReadFileBytes(list, &bytes);
  if (!s.ok()) return s.WithContext("source.list");

  std::string base = options.root;
  if (base.empty()) {
    size_t slash = list.rfind('/');
    if (slash != std::string::npos) base = list.substr(0, slash + 1);
  }

  std::vector<FileEntry> files;
  int64_t max_label = -1;
  bool seen_data = false;
  std::vector<std::string> fields;
  size_t pos = 0;
  int line_no = 0;
  const std::string text(bytes.begin(), bytes.end());
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line_no == 1 && line.size() >= 3 && uint8_t(line[0]) == 0xEF && uint8_t(line[1]) == 0xBB &&
        uint8_t(line[2]) == 0xBF)
      line.erase(0, 3);  // UTF-8 byte order mark
    const std::string trimmed = Trim(line);
    if (trimmed.empty() || trimmed[0] == '#') continue;
    const std::string where = list + ":" + std::to_string(line_no);
    if (!SplitCsv(trimmed, &fields) || fields.size() != 2 || fields[0].empty())
      return Status::InvalidArgument(where + ": expected path,label");
    if (!seen_data) {
      seen_data = true;
      std::string a = fields[0], b = fields[1];
      for (auto& c : a) c = AsciiLower(c);
      for (auto& c : b) c = AsciiLower(c);
      if (a == "path" && b == "label") continue;  // the header
    }
    int64_t label;
    if (!ParseLabel(fields[1], &label))
      return Status::InvalidArgument(where + ": label must be a non-negative integer, got '" +
                                     fields[1] + "'");
    if (label > kMaxListLabel)
      return Status::InvalidArgument(where + ": label " + fields[1] + " is too large (max " +
                                     std::to_string(kMaxListLabel) + ")");
    max_label = std::max(max_label, label);
    std::string path = fields[0][0] == '/' ? fields[0] : JoinPath(base, fields[0]);
    files.push_back({std::move(path), label});
  }
  if (files.empty()) return Status::NotFound("source.list: " + list + " lists no files");
  if (options.limit > 0 && int64_t(files.size()) > options.limit) {
    files.resize(size_t(options.limit));
  }
  return std::unique_ptr<Source>(
      new FileSource("file_list", list, std::move(files), NumberedClasses(max_label + 1)));
}

}  // namespace flowfeed
