#include "teachformer/models/registry.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>

#include "models/detail/factories.hpp"
#include "teachformer/core/error.hpp"

namespace teachformer::models {
namespace {

struct Entry {
  std::string description;
  std::function<SegmentationModel(const nlohmann::json&)> make;
  std::function<nlohmann::json()> defaults;
};

const std::map<std::string, Entry>& registry() {
  static std::map<std::string, Entry> entries;
  static std::once_flag once;
  std::call_once(once, [] {
    entries["unetr"] = {"UNETR (Hatamizadeh et al. 2022), MONAI-compatible teacher", detail::make_unetr,
                        detail::unetr_defaults};
    entries["swin_unetr"] = {"SwinUNETR (Hatamizadeh et al. 2022), MONAI-compatible teacher",
                             detail::make_swin_unetr, detail::swin_unetr_defaults};
    entries["hdenseformer"] = {"H-DenseFormer 3D (Shi et al. 2023), reference-compatible teacher",
                               detail::make_hdenseformer, detail::hdenseformer_defaults};
    entries["teachformer_s"] = {"TeachFormer-S: slim hybrid transformer student for CPU inference",
                                detail::make_teachformer_s, detail::teachformer_s_defaults};
  });
  return entries;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::vector<std::string> model_keys() {
  std::vector<std::string> keys;
  for (const auto& kv : registry()) keys.push_back(kv.first);
  return keys;
}

void require_model_key(const std::string& key) {
  if (registry().count(key)) return;
  std::string nearest;
  size_t best = std::string::npos;
  for (const auto& kv : registry()) {
    const size_t d = edit_distance(key, kv.first);
    if (d < best) best = d, nearest = kv.first;
  }
  TF_THROW(InvalidArgument, "unknown model '", key, "'; valid models: ", model_keys(), "; did you mean '", nearest,
           "'?");
}

std::string model_description(const std::string& key) {
  require_model_key(key);
  return registry().at(key).description;
}

SegmentationModel create_model(const std::string& key, const nlohmann::json& options) {
  require_model_key(key);
  return registry().at(key).make(options.is_null() ? nlohmann::json::object() : options);
}

nlohmann::json default_model_options(const std::string& key) {
  require_model_key(key);
  return registry().at(key).defaults();
}

}  // namespace teachformer::models
