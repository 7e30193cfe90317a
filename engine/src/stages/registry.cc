#include "flowfeed/registry.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace flowfeed {

const char* ParamTypeName(ParamType t) {
  switch (t) {
    case ParamType::kBool: return "bool";
    case ParamType::kInt: return "int";
    case ParamType::kFloat: return "float";
    case ParamType::kString: return "string";
    case ParamType::kIntList: return "int list";
    case ParamType::kFloatList: return "float list";
  }
  return "?";
}

namespace {
ParamSpec Base(std::string name, ParamType type, std::string doc, std::optional<double> min,
               std::optional<double> max) {
  ParamSpec p;
  p.name = std::move(name);
  p.type = type;
  p.doc = std::move(doc);
  p.min = min;
  p.max = max;
  return p;
}
}  // namespace

ParamSpec ParamSpec::Bool(std::string name, bool def, std::string doc) {
  ParamSpec p = Base(std::move(name), ParamType::kBool, std::move(doc), std::nullopt, std::nullopt);
  p.default_value = ParamValue(def);
  return p;
}

ParamSpec ParamSpec::Int(std::string name, std::optional<int64_t> def, std::string doc,
                         std::optional<double> min, std::optional<double> max) {
  ParamSpec p = Base(std::move(name), ParamType::kInt, std::move(doc), min, max);
  if (def) p.default_value = ParamValue(*def);
  return p;
}

ParamSpec ParamSpec::Float(std::string name, std::optional<double> def, std::string doc,
                           std::optional<double> min, std::optional<double> max) {
  ParamSpec p = Base(std::move(name), ParamType::kFloat, std::move(doc), min, max);
  if (def) p.default_value = ParamValue(*def);
  return p;
}

ParamSpec ParamSpec::String(std::string name, std::optional<std::string> def, std::string doc,
                            std::vector<std::string> choices) {
  ParamSpec p = Base(std::move(name), ParamType::kString, std::move(doc), std::nullopt, std::nullopt);
  if (def) p.default_value = ParamValue(*def);
  p.choices = std::move(choices);
  return p;
}

ParamSpec ParamSpec::FloatList(std::string name, std::optional<std::vector<double>> def,
                               std::string doc, int min_items, int max_items,
                               std::optional<double> min, std::optional<double> max) {
  ParamSpec p = Base(std::move(name), ParamType::kFloatList, std::move(doc), min, max);
  if (def) p.default_value = ParamValue(*def);
  p.min_items = min_items;
  p.max_items = max_items;
  return p;
}

ParamSpec ParamSpec::IntList(std::string name, std::optional<std::vector<int64_t>> def,
                             std::string doc, int min_items, int max_items,
                             std::optional<double> min, std::optional<double> max) {
  ParamSpec p = Base(std::move(name), ParamType::kIntList, std::move(doc), min, max);
  if (def) p.default_value = ParamValue(*def);
  p.min_items = min_items;
  p.max_items = max_items;
  return p;
}

namespace {
std::string FormatNumber(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
}  // namespace

std::string ParamSpec::FormatValue(const ParamValue& v) {
  struct Visitor {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return FormatNumber(d); }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const std::vector<int64_t>& l) const {
      std::string s = "[";
      for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + std::to_string(l[i]);
      return s + "]";
    }
    std::string operator()(const std::vector<double>& l) const {
      std::string s = "[";
      for (size_t i = 0; i < l.size(); ++i) s += (i ? ", " : "") + FormatNumber(l[i]);
      return s + "]";
    }
  };
  return std::visit(Visitor{}, v);
}

const ParamValue& StageParams::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw std::invalid_argument("stage parameter '" + name + "' is not set");
  return it->second;
}

namespace {
[[noreturn]] void WrongType(const std::string& name, const char* want) {
  throw std::invalid_argument("stage parameter '" + name + "' is not a " + want);
}
}  // namespace

bool StageParams::Bool(const std::string& name) const {
  const auto& v = Get(name);
  if (auto* b = std::get_if<bool>(&v)) return *b;
  WrongType(name, "bool");
}

int64_t StageParams::Int(const std::string& name) const {
  const auto& v = Get(name);
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  WrongType(name, "int");
}

double StageParams::Float(const std::string& name) const {
  const auto& v = Get(name);
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* i = std::get_if<int64_t>(&v)) return double(*i);
  WrongType(name, "float");
}

const std::string& StageParams::String(const std::string& name) const {
  const auto& v = Get(name);
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  WrongType(name, "string");
}

const std::vector<int64_t>& StageParams::IntList(const std::string& name) const {
  const auto& v = Get(name);
  if (auto* l = std::get_if<std::vector<int64_t>>(&v)) return *l;
  WrongType(name, "int list");
}

std::vector<double> StageParams::FloatList(const std::string& name) const {
  const auto& v = Get(name);
  if (auto* l = std::get_if<std::vector<double>>(&v)) return *l;
  if (auto* l = std::get_if<std::vector<int64_t>>(&v)) return std::vector<double>(l->begin(), l->end());
  WrongType(name, "float list");
}

std::string StageParams::ToString() const {
  std::string s;
  for (const auto& [k, v] : values_) {
    if (!s.empty()) s += ' ';
    s += k + "=" + ParamSpec::FormatValue(v);
  }
  return s;
}

const ParamSpec* StageInfo::FindParam(std::string_view param) const {
  for (const auto& p : params)
    if (p.name == param) return &p;
  return nullptr;
}

Status StageRegistry::Register(StageInfo info) {
  if (info.name.empty()) return Status::InvalidArgument("stage type with an empty name");
  if (!info.factory)
    return Status::InvalidArgument("stage type '" + info.name + "' has no factory");
  auto it = stages_.find(info.name);
  if (it != stages_.end())
    return Status::InvalidArgument("stage type '" + info.name + "' from " + info.origin +
                                   " is already registered by " + it->second.origin);
  std::string name = info.name;
  stages_.emplace(std::move(name), std::move(info));
  return Status::Ok();
}

const StageInfo* StageRegistry::Find(std::string_view name) const {
  auto it = stages_.find(name);
  return it == stages_.end() ? nullptr : &it->second;
}

std::vector<const StageInfo*> StageRegistry::List() const {
  std::vector<const StageInfo*> out;
  for (const auto& [k, v] : stages_) out.push_back(&v);
  return out;
}

std::vector<std::string> StageRegistry::Names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : stages_) out.push_back(k);
  return out;
}

}  // namespace flowfeed
