// Private helpers for reading MONAI-style constructor arguments from JSON (UNETR, SwinUNETR).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/core/error.hpp"

namespace teachformer::models::detail {

/// MONAI's ensure_tuple_rep for 3 spatial dims: an integer n -> [n, n, n]; a list must have 3 integers.
inline std::vector<int64_t> int_or_triple(const nlohmann::json& j, const std::string& context, const std::string& key) {
  if (j.is_number_integer()) return {j.get<int64_t>(), j.get<int64_t>(), j.get<int64_t>()};
  if (j.is_array() && j.size() == 3 && j[0].is_number_integer() && j[1].is_number_integer() &&
      j[2].is_number_integer())
    return j.get<std::vector<int64_t>>();
  TF_THROW(ConfigError, context, ": key '", key, "' must be an integer or a list of 3 integers [D, H, W], got ",
           j.dump());
}

/// The value as an integer list of any length (depths, num_heads).
inline std::vector<int64_t> int_list(const nlohmann::json& j, const std::string& context, const std::string& key) {
  bool ok = j.is_array();
  if (ok)
    for (const auto& v : j) ok = ok && v.is_number_integer();
  TF_CHECK(ok, ConfigError, context, ": key '", key, "' must be a list of integers, got ", j.dump());
  return j.get<std::vector<int64_t>>();
}

}  // namespace teachformer::models::detail
