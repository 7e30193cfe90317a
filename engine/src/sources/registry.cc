// sources/registry.cc: the source registry, the built-in source types' table and OpenSource().
#include "flowfeed/source_registry.h"

#include <set>
#include <utility>

#include "flowfeed/config.h"  // ClosestMatch

namespace flowfeed {

namespace {

std::string JoinNames(const std::vector<std::string>& names, const std::string& separator) {
  std::string out;
  for (const std::string& n : names) {
    if (!out.empty()) out += separator;
    out += n;
  }
  return out;
}

// The SourceOptions string field a key is read into; nullptr for keys of other value types.
std::string* StringField(const std::string& key, SourceOptions* options) {
  if (key == "root") return &options->root;
  if (key == "list") return &options->list;
  if (key == "images") return &options->images;
  if (key == "labels") return &options->labels;
  if (key == "shards") return &options->shards;
  if (key == "label_extension") return &options->label_extension;
  return nullptr;
}

SourceKeySpec Key(std::string name, bool required, std::string doc,
                  std::string default_value = "") {
  return SourceKeySpec{std::move(name), required, std::move(doc), std::move(default_value)};
}

constexpr char kExtensionsDefault[] = ".jpg .jpeg .png .bmp .webp .tif .tiff";

SourceInfo Info(std::string name, std::string doc, SourceTraits traits,
                std::vector<SourceKeySpec> keys, SourceFactory factory) {
  SourceInfo info;
  info.name = std::move(name);
  info.doc = std::move(doc);
  info.traits = traits;
  info.keys = std::move(keys);
  info.factory = std::move(factory);
  return info;
}

// The built-in types, in the order messages list them.
std::vector<SourceInfo> BuiltinInfos() {
  SourceTraits encoded, pixels, sharded;
  pixels.gives_pixels = true;
  sharded.sequential = true;
  return {
      Info("image_folder",
           "root/<class>/<file>, classes sorted by name (torchvision's ImageFolder).", encoded,
           {Key("root", true, "the folder of class folders"),
            Key("extensions", false, "file name endings that count as images (case-insensitive)",
                kExtensionsDefault)},
           OpenImageFolder),
      Info("file_list", "a CSV file of `path,label` lines, paths relative to root.", encoded,
           {Key("root", true, "the folder that relative paths in the list are taken from"),
            Key("list", true, "the CSV file")},
           OpenFileList),
      Info("idx",
           "MNIST-format IDX files (gzipped or not), held in memory; the pipeline needs no "
           "decode stage.",
           pixels,
           {Key("root", true, "the folder of the two files"),
            Key("images", false, "the idx3 images file, relative to root",
                "train-images-idx3-ubyte.gz"),
            Key("labels", false, "the idx1 labels file, relative to root",
                "train-labels-idx1-ubyte.gz")},
           OpenIdx),
      Info("tar", "WebDataset-style tar shards: an image member and a label member per key.",
           sharded,
           {Key("root", false, "the folder the shard files are taken from"),
            Key("shards", true, "the shard files; brace ranges and lists expand"),
            Key("label_extension", false,
                "the label member's extension (a decimal class number)", "cls"),
            Key("shuffle_buffer", false,
                "with shuffling, samples are shuffled within a window of this many (0: a full "
                "permutation)",
                "1000"),
            Key("extensions", false, "image member extensions", kExtensionsDefault)},
           OpenTarShards),
  };
}

}  // namespace

const SourceKeySpec* SourceInfo::FindKey(std::string_view key) const {
  for (const SourceKeySpec& k : keys)
    if (k.name == key) return &k;
  return nullptr;
}

bool SourceInfo::Requires(std::string_view key) const {
  const SourceKeySpec* k = FindKey(key);
  return k != nullptr && k->required;
}

Status SourceRegistry::Register(SourceInfo info) {
  if (info.name.empty()) return Status::InvalidArgument("source registry: empty type name");
  if (!info.factory)
    return Status::InvalidArgument("source registry: type '" + info.name + "' has no factory");
  if (Find(info.name) != nullptr)
    return Status::InvalidArgument("source registry: type '" + info.name +
                                   "' is already registered");
  std::set<std::string> seen;
  for (const SourceKeySpec& k : info.keys)
    if (!seen.insert(k.name).second)
      return Status::InvalidArgument("source registry: type '" + info.name + "' declares key '" +
                                     k.name + "' twice");
  sources_.push_back(std::make_unique<const SourceInfo>(std::move(info)));
  return Status::Ok();
}

const SourceInfo* SourceRegistry::Find(std::string_view name) const {
  for (const auto& s : sources_)
    if (s->name == name) return s.get();
  return nullptr;
}

Result<const SourceInfo*> SourceRegistry::Lookup(const std::string& name) const {
  if (const SourceInfo* info = Find(name)) return info;
  const std::vector<std::string> names = Names();
  std::string msg = "unknown source type '" + name + "' (expected one of: " +
                    JoinNames(names, ", ") + ")";
  const std::string close = ClosestMatch(name, names);
  if (!close.empty()) msg += "; did you mean \"" + close + "\"?";
  return Status::InvalidArgument(msg);
}

std::vector<const SourceInfo*> SourceRegistry::List() const {
  std::vector<const SourceInfo*> out;
  out.reserve(sources_.size());
  for (const auto& s : sources_) out.push_back(s.get());
  return out;
}

std::vector<std::string> SourceRegistry::Names() const {
  std::vector<std::string> out;
  out.reserve(sources_.size());
  for (const auto& s : sources_) out.push_back(s->name);
  return out;
}

std::map<std::string, std::string> SourceRegistry::KeyOwners() const {
  std::map<std::string, std::vector<std::string>> owners;
  for (const auto& s : sources_)
    for (const SourceKeySpec& k : s->keys) owners[k.name].push_back(s->name);
  std::map<std::string, std::string> out;
  for (const auto& [key, types] : owners)
    if (types.size() < sources_.size()) out[key] = JoinNames(types, " or ");
  return out;
}

void RegisterBuiltinSources(SourceRegistry* registry) {
  // The built-ins are distinct and complete, so Register() cannot fail here.
  for (SourceInfo& info : BuiltinInfos()) (void)registry->Register(std::move(info));
}

const SourceRegistry& BuiltinSources() {
  // Built on first use (thread-safe since C++11) and never changed afterwards.
  static const SourceRegistry* const registry = [] {
    auto* r = new SourceRegistry;
    RegisterBuiltinSources(r);
    return r;
  }();
  return *registry;
}

const SourceInfo* FindSourceInfo(std::string_view type) { return BuiltinSources().Find(type); }

bool SourceGivesPixels(std::string_view type) {
  const SourceInfo* info = FindSourceInfo(type);
  return info != nullptr && info->traits.gives_pixels;
}

Result<std::unique_ptr<Source>> OpenSource(const SourceRegistry& registry,
                                           const SourceOptions& options) {
  Result<const SourceInfo*> info = registry.Lookup(options.type);
  if (!info.ok()) {
    std::string msg = "source.type: " + info.status().message();
    if (!options.where.file.empty()) msg = options.where.ToString() + ": " + msg;
    return Status::InvalidArgument(msg);
  }
  if ((*info)->Accepts("root")) FLOWFEED_RETURN_IF_ERROR(CheckSourceRoot(options));
  return (*info)->factory(options);
}

Result<std::unique_ptr<Source>> OpenSource(const SourceOptions& options) {
  return OpenSource(BuiltinSources(), options);
}

void FillSourceDefaults(const SourceInfo& info, SourceOptions* options) {
  for (const SourceKeySpec& k : info.keys) {
    std::string* field = StringField(k.name, options);
    if (field != nullptr && field->empty() && !k.default_value.empty()) *field = k.default_value;
  }
}

}  // namespace flowfeed
