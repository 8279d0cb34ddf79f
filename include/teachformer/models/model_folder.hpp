// Model folders: what `train` and `distill` write and what `predict` and `distill --teacher` read.
//   <dir>/config.json        {"kind", "model", "options", "channels", "patch_size", "preset", "trainer",
//                             "objective", "teachers", "dataset", "tool_version"} (resolved, self-describing)
//   <dir>/plan.json          the preprocessing plan (channels by name, normalisation, spacing/bbox)
//   <dir>/dataset.json       the preprocessed dataset's description (labels, cases)
//   <dir>/fingerprint.json   intensity statistics of the training data
//   <dir>/splits_final.json  the folds (nnU-Net format)
//   <dir>/fold_<N>/checkpoint_{best,final}.safetensors (weights + metadata), checkpoint_latest.safetensors (resume),
//                  log.jsonl
//   <dir>/quantization.json  (folders written by `teachformer quantize` only) the int8 calibration per fold, the
//                            checkpoint it was made from and the accuracy guard measured when it was written
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/data/plan.hpp"
#include "teachformer/models/low_precision.hpp"
#include "teachformer/models/seg_model.hpp"

namespace teachformer::models {

/// A model folder opened for reading.
struct ModelFolder {
  std::filesystem::path root;
  /// config.json.
  nlohmann::json config;
  /// plan.json.
  data::PreprocessPlan plan;
  /// dataset.json (labels at "labels").
  nlohmann::json dataset;
  /// Model key and options (from config.json).
  std::string model;
  nlohmann::json options;
  /// Input channel names in order.
  std::vector<std::string> channels;
  /// Training patch size [D, H, W] (the sliding-window roi).
  std::vector<int64_t> patch_size;
  /// Folds that have a checkpoint, sorted (-1 = "all").
  std::vector<int> folds;
  /// quantization.json (null when the folder has none).
  nlohmann::json quantization;

  /// The precision predict uses unless told otherwise: int8 for a quantized folder, else fp32.
  Precision preferred_precision() const;

  /// fold_<N>/checkpoint_<which>.safetensors ("best" or "final"); throws IoError listing what exists.
  std::filesystem::path checkpoint(int fold, const std::string& which = "best") const;
  /// Builds the model from config.json and loads that checkpoint (eval mode, CPU), then switches its inference to
  /// `precision`: InvalidArgument when the model has no such path; int8 needs this folder's calibration for that fold
  /// and checkpoint (InvalidArgument naming the folder and `teachformer quantize` otherwise).
  models::SegmentationModel load(int fold, const std::string& which = "best",
                                 Precision precision = Precision::kFloat32) const;
  /// The int8 calibration of a fold (InvalidArgument when the folder has none for it or for `which`).
  Int8Calibration int8_calibration(int fold, const std::string& which) const;
};

/// "fold_<N>", or "fold_all" for fold -1.
std::string fold_folder(int fold);

/// Opens a model folder; errors name the folder and the missing or malformed file.
ModelFolder open_model_folder(const std::filesystem::path& dir);

}  // namespace teachformer::models
