#include "teachformer/core/json.hpp"

#include "teachformer/core/fs.hpp"

namespace teachformer {
namespace {

std::string walk(const Json& a, const Json& b, const std::string& path) {
  if (a == b) return {};
  if (a.is_object() && b.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (!b.contains(it.key())) return path + "/" + it.key() + ": " + it.value().dump() + " now, absent before";
      auto d = walk(it.value(), b.at(it.key()), path + "/" + it.key());
      if (!d.empty()) return d;
    }
    for (auto it = b.begin(); it != b.end(); ++it)
      if (!a.contains(it.key())) return path + "/" + it.key() + ": absent now, " + it.value().dump() + " before";
    return {};
  }
  if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (size_t i = 0; i < a.size(); ++i) {
      auto d = walk(a[i], b[i], path + "/" + std::to_string(i));
      if (!d.empty()) return d;
    }
    return {};
  }
  return (path.empty() ? "/" : path) + ": " + a.dump() + " now, " + b.dump() + " before";
}

}  // namespace

std::string first_difference(const Json& now, const Json& before) { return walk(now, before, ""); }


Json read_json(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and also out_of_range for a number like 1e400 that overflows a double.
    TF_THROW(FormatError, "'", path.string(), "' is not valid JSON: ", e.what());
  }
}

void write_json(const std::filesystem::path& path, const Json& value, int indent) {
  write_file_atomic(path, value.dump(indent) + "\n");
}

Json json_from_string_or_file(const std::string& text_or_path) {
  const auto first = text_or_path.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (text_or_path[first] == '{' || text_or_path[first] == '[')) {
    try {
      return Json::parse(text_or_path);
    } catch (const nlohmann::json::exception& e) {
      TF_THROW(ConfigError, "invalid JSON string: ", e.what());
    }
  }
  return read_json(text_or_path);
}

JsonReader::JsonReader(const Json& object, std::string context) : object_(object), context_(std::move(context)) {
  TF_CHECK(object_.is_object() || object_.is_null(), ConfigError, context_, ": expected a JSON object, got ",
           object_.dump());
}

JsonReader& JsonReader::ignore(const std::string& key) {
  known_.insert(key);
  return *this;
}

void JsonReader::finish() const {
  if (!object_.is_object()) return;
  std::vector<std::string> unknown;
  for (auto it = object_.begin(); it != object_.end(); ++it)
    if (!known_.count(it.key())) unknown.push_back(it.key());
  if (unknown.empty()) return;
  std::vector<std::string> valid(known_.begin(), known_.end());
  TF_THROW(ConfigError, context_, ": unknown key(s) ", unknown, "; valid keys are ", valid);
}

}  // namespace teachformer
