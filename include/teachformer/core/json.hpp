// JSON helpers: strict reading of option objects (unknown keys are errors) and atomic JSON files.
#pragma once
#include <array>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <string>
#include <type_traits>
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

namespace detail {
template <typename T>
struct is_sequence : std::false_type {};
template <typename U, typename A>
struct is_sequence<std::vector<U, A>> : std::true_type {};
template <typename U, size_t N>
struct is_sequence<std::array<U, N>> : std::true_type {};
}  // namespace detail

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
    check_range<T>(key, value);
    try {
      out = value.get<T>();
    } catch (const nlohmann::json::exception& e) {
      TF_THROW(ConfigError, context_, ": key '", key, "' has the wrong type (", value.dump(), "): ", e.what());
    }
  }
  // nlohmann converts numbers with a plain cast: 1e300 into an int is undefined behaviour and 2.5 becomes 2. Every
  // number bound for an integer must be a whole number in the type's range, and one bound for a float must fit it.
  template <typename T>
  void check_range(const std::string& key, const Json& value) const {
    if constexpr (std::is_same_v<T, bool>) {
      return;
    } else if constexpr (std::is_integral_v<T>) {
      if (!value.is_number()) return;  // a wrong type is reported by convert
      bool fits;
      if (value.is_number_unsigned())
        fits = value.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max());
      else if (value.is_number_integer())
        fits = value.get<int64_t>() >= int64_t(std::numeric_limits<T>::lowest()) &&
               (value.get<int64_t>() < 0 || uint64_t(value.get<int64_t>()) <= uint64_t(std::numeric_limits<T>::max()));
      else {
        const double d = value.get<double>();
        // 2^63 and 2^64 are exact doubles: compare against the first value past the range.
        fits = std::isfinite(d) && d == std::floor(d) && d >= double(std::numeric_limits<T>::lowest()) &&
               d < double(std::numeric_limits<T>::max() / 2 + 1) * 2.0;
      }
      TF_CHECK(fits, ConfigError, context_, ": key '", key, "' must be a whole number from ",
               int64_t(std::numeric_limits<T>::lowest()), " to ", uint64_t(std::numeric_limits<T>::max()), ", got ",
               value.dump());
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!value.is_number_float()) return;
      const double d = value.get<double>();
      TF_CHECK(!std::isfinite(d) || std::abs(d) <= double(std::numeric_limits<T>::max()), ConfigError, context_,
               ": key '", key, "' is out of range for a ", sizeof(T) * 8, "-bit float, got ", value.dump());
    } else if constexpr (detail::is_sequence<T>::value) {
      if (!value.is_array()) return;
      for (const auto& element : value) check_range<typename T::value_type>(key, element);
    }
  }

  const Json& object_;
  std::string context_;
  std::set<std::string> known_;
};

}  // namespace teachformer
