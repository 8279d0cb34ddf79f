// JSON helpers: strict reading of option objects (unknown keys are errors) and atomic JSON files.
#pragma once
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/core/error.hpp"

namespace teachformer {

using Json = nlohmann::json;

/// Reads a JSON file; errors name the path and the parse position.
Json read_json(const std::filesystem::path& path);
/// Writes JSON atomically, pretty-printed with `indent` spaces.
void write_json(const std::filesystem::path& path, const Json& value, int indent = 2);
/// The first key (a JSON pointer such as "/trainer/epochs") where `now` and `before` differ, with both values:
/// "/trainer/epochs: 36 now, 12 before"; empty when equal.
std::string first_difference(const Json& now, const Json& before);
/// Parses `text` as JSON if it starts with '{' or '[', otherwise reads it as a file path.
Json json_from_string_or_file(const std::string& text_or_path);

/// Strict reader for an options object: every key must be consumed by get()/require(), and finish()
/// throws ConfigError listing unknown keys together with the valid ones.
///
///   JsonReader r(j, "UNETR options");
///   r.get("feature_size", opts.feature_size());
///   r.finish();
class JsonReader {
 public:
  JsonReader(const Json& object, std::string context);
  /// Reads `key` into `out` when present; `out` keeps its value (the default) otherwise.
  template <typename T>
  JsonReader& get(const std::string& key, T& out) {
    known_.insert(key);
    auto it = object_.find(key);
    if (it != object_.end() && !it->is_null()) convert(key, *it, out);
    return *this;
  }
  /// Reads `key` into `out`; throws ConfigError when missing.
  template <typename T>
  JsonReader& require(const std::string& key, T& out) {
    TF_CHECK(object_.contains(key), ConfigError, context_, ": required key '", key, "' is missing");
    return get(key, out);
  }
  /// Marks `key` as known without reading it (accepted and ignored).
  JsonReader& ignore(const std::string& key);
  /// True when the object holds `key`.
  bool has(const std::string& key) const { return object_.contains(key); }
  /// Throws ConfigError when the object holds keys that were never asked for.
  void finish() const;

 private:
  template <typename T>
  void convert(const std::string& key, const Json& value, T& out) {
    try {
      out = value.get<T>();
    } catch (const nlohmann::json::exception& e) {
      TF_THROW(ConfigError, context_, ": key '", key, "' has the wrong type (", value.dump(), "): ", e.what());
    }
  }
  const Json& object_;
  std::string context_;
  std::set<std::string> known_;
};

}  // namespace teachformer
