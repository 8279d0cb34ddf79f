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

Precision ModelFolder::preferred_precision() const {
  return quantization.is_null() ? Precision::kFloat32 : Precision::kInt8;
}

Int8Calibration ModelFolder::int8_calibration(int fold, const std::string& which) const {
  const std::string file = (root / "quantization.json").string();
  TF_CHECK(!quantization.is_null(), InvalidArgument, "model folder '", root.string(),
           "' has no int8 calibration (quantization.json); make one with: teachformer quantize ", root.string());
  TF_CHECK(quantization.value("checkpoint", "") == which, InvalidArgument, "'", file, "' calibrates checkpoint_",
           quantization.value("checkpoint", ""), ", not checkpoint_", which, "; use --checkpoint ",
           quantization.value("checkpoint", ""));
  const auto& folds_json = quantization["folds"];
  TF_CHECK(folds_json.contains(fold_folder(fold)), InvalidArgument, "'", file, "' has no calibration for ",
           fold_folder(fold), "; it has ", folds_json.size(), " fold(s)");
  return int8_calibration_from_json(folds_json[fold_folder(fold)]["layers"], file + " " + fold_folder(fold));
}

models::SegmentationModel ModelFolder::load(int fold, const std::string& which, Precision precision) const {
  models::WeightsRequest request;
  request.model = model;
  request.options = options;
  request.channel_names = channels;
  auto loaded = models::load_model_weights(checkpoint(fold, which), request).model;
  if (precision != Precision::kFloat32) {
    LowPrecisionModel* low = low_precision_model(*loaded);
    TF_CHECK(low, InvalidArgument, "model '", model, "' of '", root.string(), "' has no ", precision_name(precision),
             " path (only teachformer_s); use --precision fp32");
    if (precision == Precision::kInt8) {
      const Int8Calibration calibration = int8_calibration(fold, which);
      low->set_precision(precision, &calibration);
    } else {
      low->set_precision(precision);
    }
  }
  return loaded;
}

namespace {
void check_quantization(const Json& q, const fs::path& file) {
  const std::string f = file.string();
  TF_CHECK(q.is_object() && q.value("format", "") == "teachformer-quantization" && q.value("precision", "") == "int8",
           FormatError, "'", f, "': expected {\"format\": \"teachformer-quantization\", \"precision\": \"int8\", ...}");
  TF_CHECK(q.contains("checkpoint") && q["checkpoint"].is_string(), FormatError, "'", f, "' has no \"checkpoint\"");
  TF_CHECK(q.contains("folds") && q["folds"].is_object() && !q["folds"].empty(), FormatError, "'", f,
           "' has no \"folds\" object with a calibration per fold");
  for (const auto& [name, entry] : q["folds"].items()) {
    TF_CHECK(entry.is_object() && entry.contains("layers"), FormatError, "'", f, "': fold '", name,
             "' has no \"layers\"");
    int8_calibration_from_json(entry["layers"], f + " " + name);
  }
}
}  // namespace

ModelFolder open_model_folder(const fs::path& dir) {
  TF_CHECK(fs::is_directory(dir), IoError, "model folder '", dir.string(), "' does not exist");
  ModelFolder m;
  m.root = dir;
  // A model folder may come from someone else: what it names is read from inside it only (no symbolic link out),
  // and it holds JSON and safetensors only, nothing that is executed or unpickled.
  for (const char* name : {"config.json", "plan.json", "dataset.json", "quantization.json"})
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
  if (fs::exists(dir / "quantization.json")) {
    m.quantization = read_json(dir / "quantization.json");
    check_quantization(m.quantization, dir / "quantization.json");
  }
  return m;
}

}  // namespace teachformer::models
