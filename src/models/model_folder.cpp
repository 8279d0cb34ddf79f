#include "teachformer/models/model_folder.hpp"

#include <algorithm>
#include <regex>

#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/models/weights.hpp"

namespace teachformer::models {

std::string fold_folder(int fold) { return fold < 0 ? "fold_all" : "fold_" + std::to_string(fold); }

fs::path ModelFolder::checkpoint(int fold, const std::string& which) const {
  TF_CHECK(which == "best" || which == "final", InvalidArgument, "checkpoint must be 'best' or 'final', got '", which,
           "'");
  const std::string name = fold_folder(fold) + "/checkpoint_" + which + ".safetensors";
  const auto path = path_inside(root, name, "model folder '" + root.string() + "'");
  if (!fs::exists(path)) {
    std::vector<std::string> have;
    for (int f : folds) have.push_back(fold_folder(f));
    TF_THROW(IoError, "model folder '", root.string(), "' has no ", path.filename().string(), " for fold ", fold,
             "; folds with checkpoints: ", have);
  }
  return path;
}

models::SegmentationModel ModelFolder::load(int fold, const std::string& which) const {
  models::WeightsRequest request;
  request.model = model;
  request.options = options;
  request.channel_names = channels;
  return models::load_model_weights(checkpoint(fold, which), request).model;
}

ModelFolder open_model_folder(const fs::path& dir) {
  TF_CHECK(fs::is_directory(dir), IoError, "model folder '", dir.string(), "' does not exist");
  ModelFolder m;
  m.root = dir;
  // A model folder may come from someone else: what it names is read from inside it only (no symbolic link out),
  // and it holds JSON and safetensors only, nothing that is executed or unpickled.
  for (const char* name : {"config.json", "plan.json", "dataset.json"})
    if (fs::exists(dir / name) || fs::is_symlink(dir / name)) path_inside(dir, name, "model folder '" + dir.string() + "'");
  require_exists(dir / "config.json", "model config (is this a folder written by teachformer train/distill?)");
  m.config = read_json(dir / "config.json");
  auto need = [&](const char* key) -> const Json& {
    TF_CHECK(m.config.contains(key), FormatError, "'", (dir / "config.json").string(), "' has no '", key, "'");
    return m.config[key];
  };
  try {
    m.model = need("model").get<std::string>();
    m.options = need("options");
    m.channels = need("channels").get<std::vector<std::string>>();
    m.patch_size = need("patch_size").get<std::vector<int64_t>>();
  } catch (const nlohmann::json::exception& e) {
    TF_THROW(FormatError, "'", (dir / "config.json").string(), "': ", e.what());
  }
  m.plan = data::read_plan(dir / "plan.json");
  require_exists(dir / "dataset.json", "dataset description");
  m.dataset = read_json(dir / "dataset.json");
  const std::regex fold_re("fold_([0-9]+|all)");
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, match, fold_re) &&
        (fs::exists(entry.path() / "checkpoint_best.safetensors") ||
         fs::exists(entry.path() / "checkpoint_final.safetensors")))
      m.folds.push_back(match[1] == "all" ? -1 : std::stoi(match[1]));
  }
  std::sort(m.folds.begin(), m.folds.end());
  return m;
}

}  // namespace teachformer::models
