// flowfeed/source_registry.h: source types by name, with the `source:` keys they use, their
// traits and their factories.
//
// A SourceRegistry maps the `source.type` of a config to a SourceInfo, as StageRegistry does for
// pipeline entries, so that the config reader, the pipeline and the CLI ask one table what a
// type accepts and how it behaves instead of comparing type strings. The registry is an ordinary
// object: a test makes a fresh one and registers its own types; RegisterBuiltinSources() fills
// one with image_folder, file_list, idx and tar.
//
// BuiltinSources() is a registry of the built-in types, built once and never changed afterwards.
// It exists for callers that have no registry to hand (OpenSource(options), the config reader,
// the pipeline); being immutable, it is a constant table rather than shared mutable state.
//
// Thread-safety: Register() needs exclusive access; every const method may run concurrently once
// registration is over. BuiltinSources() and FindSourceInfo() may be called from any thread.
// Ownership: a SourceInfo pointer stays valid as long as its registry (BuiltinSources(): for the
// whole process).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flowfeed/options.h"
#include "flowfeed/source.h"
#include "flowfeed/status.h"

namespace flowfeed {

// One key under `source:` that a type uses. Not ParamSpec (registry.h): source keys are read
// into SourceOptions' fields by the config reader, and `extensions` is a list of strings, which
// ParamType has no name for. `type`, `limit` and `on_error` apply to every type and are not
// listed.
struct SourceKeySpec {
  std::string name;  // "root", "list", "images", ... (a SourceOptions field)
  bool required = false;
  std::string doc;
  // The value used when the key is absent, as text ("": none). SourceOptions holds the same
  // defaults, except for idx's file names, which FillSourceDefaults() writes in.
  std::string default_value;
};

// What the rest of the engine needs to know about a type without opening a source.
struct SourceTraits {
  // Read() fills sample->image with pixels instead of sample->encoded (idx): the pipeline needs
  // no decode stage, fuses nothing into one and keeps no cache in front of the first stage.
  bool gives_pixels = false;
  // Samples sit in shard files best read in order (tar): with shuffling, the sampler shuffles
  // the shards and then the samples within source.shuffle_buffer (Source::num_shards()).
  bool sequential = false;
};

// Opens a source from checked options. Failures as for OpenSource() (source.h); the caller owns
// the returned source.
using SourceFactory = std::function<Result<std::unique_ptr<Source>>(const SourceOptions&)>;

struct SourceInfo {
  std::string name;  // the `source.type` in YAML
  std::string doc;   // one or two sentences
  SourceTraits traits;
  std::vector<SourceKeySpec> keys;  // in the order `flowfeed stages` lists them
  SourceFactory factory;

  const SourceKeySpec* FindKey(std::string_view key) const;  // nullptr: the type ignores it
  bool Accepts(std::string_view key) const { return FindKey(key) != nullptr; }
  bool Requires(std::string_view key) const;
};

class SourceRegistry {
 public:
  // Fails (InvalidArgument) on an empty name, a missing factory, a key declared twice, or a name
  // already registered.
  Status Register(SourceInfo info);

  const SourceInfo* Find(std::string_view name) const;  // nullptr: unknown
  // Like Find(), but an unknown name is InvalidArgument: "unknown source type 'x' (expected one
  // of: image_folder, file_list, idx, tar); did you mean "idx"?" (the suggestion when one is
  // close, see ClosestMatch in config.h).
  Result<const SourceInfo*> Lookup(const std::string& name) const;

  // In registration order (not sorted): messages list the built-ins as users know them,
  // image_folder first.
  std::vector<const SourceInfo*> List() const;
  std::vector<std::string> Names() const;

  // The types that accept each key that not every type accepts, joined with " or " in
  // registration order: {"extensions": "image_folder or tar", "list": "file_list", ...}. For the
  // config reader's "only valid when source.type is ..." message.
  std::map<std::string, std::string> KeyOwners() const;

 private:
  // unique_ptr: pointers handed out by Find() survive later registrations.
  std::vector<std::unique_ptr<const SourceInfo>> sources_;
};

// Adds image_folder, file_list, idx and tar, in that order.
void RegisterBuiltinSources(SourceRegistry* registry);

// The built-in types (see the file comment).
const SourceRegistry& BuiltinSources();
// BuiltinSources().Find(type).
const SourceInfo* FindSourceInfo(std::string_view type);
// True when `type` is a known type whose Read() gives pixels (traits.gives_pixels).
bool SourceGivesPixels(std::string_view type);

// Opens the source that `options.type` names in `registry`. An unknown type is InvalidArgument
// (as Lookup(), prefixed with "source.type: " and options.where when set). For a type that
// accepts `root`, a root that is set but is not an existing folder fails first, the same way for
// every type (CheckSourceRoot in source.h).
// OpenSource(options) in source.h is this with BuiltinSources().
Result<std::unique_ptr<Source>> OpenSource(const SourceRegistry& registry,
                                           const SourceOptions& options);

// Writes each of the type's string-key defaults (SourceKeySpec::default_value) into the matching
// SourceOptions field when that field is empty: idx's images and labels file names. The config
// reader calls it once the type is known, so that reports and fingerprints show the files used.
void FillSourceDefaults(const SourceInfo& info, SourceOptions* options);

}  // namespace flowfeed
