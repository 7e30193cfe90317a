// config/sections.cc: the config's sections (see reader.h). Each section reads its keys through
// its option table (option_table.cc); what is written here is what a row cannot say: nested
// sections, keys required together, keys that depend on the section's `type`.
#include "config/reader.h"
#include "flowfeed/source_registry.h"

namespace flowfeed::config {

void ConfigReader::ReadTop(const YAML::Node& root, PipelineOptions* options) {
  const KeyPath top;
  const Given given =
      ReadEntries(Item{root, root.Mark(), top}, Options<PipelineOptions>(), options,
                  [&](const std::string& key, const YAML::Node& key_node, const Item& item) {
                    return ReadTopSection(key, key_node, item, options);
                  });
  if (!given.Has("source")) Error(root.Mark(), top.Key("source"), "missing required key");
}

bool ConfigReader::ReadTopSection(const std::string& key, const YAML::Node& key_node,
                                  const Item& item, PipelineOptions* options) {
  const size_t before = errors_.size();
  if (key == "source") {
    ReadSource(key_node, item, &options->source);
  } else if (key == "pipeline") {
    ReadPipeline(item, &options->pipeline);
  } else if (key == "batch") {
    ReadBatch(item, &options->batch);
  } else if (key == "cache") {
    ReadCache(key_node, item, &options->cache);
  } else if (key == "distributed") {
    ReadDistributed(key_node, item, &options->distributed);
  } else if (key == "model") {
    ReadModel(item, &options->train.model);
  } else if (key == "optimizer") {
    ReadOptimizer(item, &options->train.optimizer);
  } else if (key == "schedule") {
    ReadSchedule(item, &options->train.schedule);
  } else if (key == "loss") {
    ReadLoss(item, &options->train);
  } else if (key == "eval") {
    ReadEval(key_node, item, &options->train.eval);
  }
  // `plugins` were loaded before the rest was read (load.cc), so the pipeline can use their
  // stages: nothing to do here.
  return errors_.size() == before;
}

bool ConfigReader::IsSectionMap(const Item& item, const std::string& keys) {
  if (item.node.IsNull()) return false;  // `batch:` with nothing under it: all defaults
  if (item.node.IsMap()) return true;
  Error(item, "expected a map (" + keys + "), got " + Got(item.node));
  return false;
}

void ConfigReader::ReadSource(const YAML::Node& key_node, const Item& item, SourceOptions* source) {
  const KeyPath& path = item.path;
  const YAML::Mark at = key_node.Mark();  // the `source:` key locates the section
  source->where = Locate(at, path);
  if (!item.node.IsNull() && !item.node.IsMap()) {
    Error(item, "expected a map (type, root, ...), got " + Got(item.node));
    return;
  }
  const std::vector<OptionSpec<SourceOptions>>& table = Options<SourceOptions>();
  Given given;
  if (item.node.IsMap()) given = ReadEntries(item, table, source);
  const bool type_ok = given.Ok("type");
  if (!given.Has("type")) Error(at, path.Key("type"), "missing required key");
  // Without a valid type, root is required; a type may make it optional (tar: shard patterns
  // may stand alone, absolute or relative to the current directory).
  const SourceInfo* info = type_ok ? FindSourceInfo(source->type) : nullptr;
  if (!given.Has("root") && (info == nullptr || info->Requires("root")))
    Error(at, path.Key("root"), "missing required key");
  if (info == nullptr) return;  // the type-specific checks need a valid type
  const std::string& type = source->type;
  const KeyPath type_path = path.Key("type");  // source.type, eval.source.type
  for (const SourceKeySpec& key : info->keys)
    if (key.required && key.name != "root" && !given.Has(key.name))
      Error(at, path.Key(key.name),
            "missing required key (" + type_path.display + " is " + type + ")");
  CheckTypeSpecific(given, table, type_path, type);
  FillSourceDefaults(*info, source);
}

void ConfigReader::ReadBatch(const Item& item, BatchOptions* batch) {
  if (!IsSectionMap(item, "size, drop_last, layout, dtype")) return;
  ReadEntries(item, Options<BatchOptions>(), batch);
}

void ConfigReader::ReadCache(const YAML::Node& key_node, const Item& item, CacheOptions* cache) {
  cache->where = Locate(key_node.Mark(), item.path);
  if (!IsSectionMap(item, "mode, budget, path, ...")) return;
  const Given given = ReadEntries(item, Options<CacheOptions>(), cache);
  if (cache->mode == CacheMode::kDisk && !given.Ok("path"))
    Error(key_node.Mark(), item.path.Key("path"), "missing required key (cache.mode is disk)");
}

void ConfigReader::ReadDistributed(const YAML::Node& key_node, const Item& item,
                                   DistributedOptions* dist) {
  dist->where = Locate(key_node.Mark(), item.path);
  if (!IsSectionMap(item, "policy, uneven, backend, ...")) return;
  ReadEntries(item, Options<DistributedOptions>(), dist);
}

// ------------------------------------------------------------------------------------------------
// Training sections (flowfeed train): model, optimizer, schedule, loss, eval

void ConfigReader::ReadModel(const Item& item, ModelOptions* model) {
  if (!IsSectionMap(item, "type, stem, hidden, num_classes")) return;
  const std::vector<OptionSpec<ModelOptions>>& table = Options<ModelOptions>();
  const Given given = ReadEntries(item, table, model);
  // The default type is valid; a given one must have read cleanly.
  if (!given.Has("type") || given.Ok("type"))
    CheckTypeSpecific(given, table, item.path.Key("type"), model->type);
}

void ConfigReader::ReadOptimizer(const Item& item, OptimizerOptions* optimizer) {
  if (!IsSectionMap(item, "type, lr, momentum, ...")) return;
  const std::vector<OptionSpec<OptimizerOptions>>& table = Options<OptimizerOptions>();
  const Given given = ReadEntries(item, table, optimizer);
  if (given.Has("type") && !given.Ok("type")) return;
  CheckTypeSpecific(given, table, item.path.Key("type"), optimizer->type);
  const bool momentum_ok = !given.Has("momentum") || given.Ok("momentum");
  if (optimizer->type == "sgd" && momentum_ok && optimizer->momentum == 0 && optimizer->nesterov) {
    // Nesterov's look-ahead is a momentum method. Only a nesterov the user asked for is an
    // error; the default gives way to `momentum: 0`.
    if (given.Ok("nesterov"))
      Error(given.entries.at("nesterov").value, "nesterov needs momentum > 0");
    else
      optimizer->nesterov = false;
  }
}

void ConfigReader::ReadSchedule(const Item& item, ScheduleOptions* schedule) {
  if (!IsSectionMap(item, "type, warmup_epochs, min_lr, ...")) return;
  ReadEntries(item, Options<ScheduleOptions>(), schedule);
}

void ConfigReader::ReadLoss(const Item& item, TrainOptions* train) {
  if (!IsSectionMap(item, "label_smoothing")) return;
  ReadEntries(item, Options<TrainOptions>(), train);
}

void ConfigReader::ReadEval(const YAML::Node& key_node, const Item& item, EvalOptions* eval) {
  eval->enabled = true;
  if (!item.node.IsNull() && !item.node.IsMap()) {
    Error(item, "expected a map (source, pipeline, batch_size), got " + Got(item.node));
    return;
  }
  Given given;
  if (item.node.IsMap()) {
    given = ReadEntries(item, Options<EvalOptions>(), eval,
                        [&](const std::string& key, const YAML::Node& kn, const Item& value) {
                          const size_t before = errors_.size();
                          if (key == "source") {
                            ReadSource(kn, value, &eval->source);
                          } else if (key == "pipeline") {
                            const size_t first = eval->pipeline.size();
                            ReadPipeline(value, &eval->pipeline);
                            CheckEvalDeterministic(value, first, *eval);
                          }
                          return errors_.size() == before;
                        });
  }
  if (!given.Has("source")) Error(key_node.Mark(), item.path.Key("source"), "missing required key");
}

// Evaluation must see the same images every epoch: no augmentation.
void ConfigReader::CheckEvalDeterministic(const Item& value, size_t first,
                                          const EvalOptions& eval) {
  if (!value.node.IsSequence()) return;
  for (size_t i = 0; i < value.node.size() && first + i < eval.pipeline.size(); ++i) {
    const StageSpec& spec = eval.pipeline[first + i];
    const StageInfo* info = registry_.Find(spec.type);
    if (!info || info->traits.deterministic) continue;
    KeyPath kp = value.path.Index(i);
    kp.display += " (" + spec.type + ")";
    Error(value.node[i].Mark(), kp,
          "eval pipelines must be deterministic: '" + spec.type + "' is random");
  }
}

}  // namespace flowfeed::config
