// A small model folder written at test time (for tests of areas that link models): config.json, plan.json,
// dataset.json and fold_<N>/checkpoint_best.safetensors of an untrained tiny TeachFormer-S with one CT channel.
#pragma once
#include <filesystem>
#include <vector>

#include <torch/torch.h>

#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/data/plan.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/models/weights.hpp"

namespace teachformer::test {

/// Options of the tiny student the fixture writes (1 input channel, 2 classes).
inline nlohmann::json tiny_student_options() {
  return {{"preset", "tiny"}, {"in_channels", 1}, {"out_channels", 2}};
}

/// Writes the folder's description files (patch 16^3) and one checkpoint per fold of `folds` (-1 = "all"); fold f
/// gets weights drawn with seed 100 + f, so folds differ.
inline void write_tiny_model_folder(const std::filesystem::path& dir, const std::vector<int>& folds) {
  data::PreprocessPlan plan;
  plan.channels = {{"CT", {}}};
  plan.reference_channel = "CT";
  const std::vector<int64_t> patch{16, 16, 16};
  std::filesystem::create_directories(dir);
  write_json(dir / "config.json", {{"kind", "untrained"},
                                   {"model", "teachformer_s"},
                                   {"options", tiny_student_options()},
                                   {"channels", {"CT"}},
                                   {"patch_size", patch}});
  write_json(dir / "plan.json", plan.to_json());
  write_json(dir / "dataset.json", {{"name", "tiny"}, {"labels", {{"background", 0}, {"tumor", 1}}}});
  for (int f : folds) {
    torch::manual_seed(100 + f);
    const auto model = models::create_model("teachformer_s", tiny_student_options());
    models::WeightsMetadata meta;
    meta.channel_names = {"CT"};
    meta.patch_size = patch;
    models::save_weights(dir / (f < 0 ? "fold_all" : "fold_" + std::to_string(f)) / "checkpoint_best.safetensors",
                         *model, meta);
  }
}

}  // namespace teachformer::test
