#include "teachformer/models/registry.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>

#include "models/detail/factories.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/strings.hpp"

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


}  // namespace

std::vector<std::string> model_keys() {
  std::vector<std::string> keys;
  for (const auto& kv : registry()) keys.push_back(kv.first);
  return keys;
}

void require_model_key(const std::string& key) {
  if (registry().count(key)) return;
  TF_THROW(InvalidArgument, "unknown model '", key, "'; valid models: ", model_keys(), "; did you mean '",
           nearest_name(key, model_keys()), "'?");
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
