// Post-training static int8 quantization of a model folder (`teachformer quantize`): calibrate the activation ranges
// on training patches, check the accuracy against float32 on the fold's validation cases, and write a new model
// folder that predict and bench use like any other (models/low_precision.hpp has the arithmetic).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace teachformer::pipeline {

/// Settings of quantize_model_folder.
struct QuantizeOptions {
  /// The float32 model folder (written by train or distill).
  std::filesystem::path model_dir;
  /// The int8 model folder to write; must not exist. Empty = "<model_dir>_int8".
  std::filesystem::path output;
  /// Calibration patches per fold, sampled from the fold's training cases at the model's patch size (a third of them
  /// centred on foreground, as in training; no augmentation).
  int64_t calibration_patches = 32;
  /// Preprocessed dataset for calibration and the guard; empty = the one the model was trained on (config.json).
  std::filesystem::path data;
  /// Checkpoint to quantize: "best" or "final".
  std::string checkpoint = "best";
  /// Folds to quantize; empty = every fold with that checkpoint.
  std::vector<int> folds;
  /// Seed of the patch sampling.
  uint64_t seed = 0;
  /// Accuracy guard on the fold's validation cases (fold "all": every labelled case): the int8 mean Dice may be at
  /// most this much below the float32 one ...
  double max_dice_drop = 0.005;
  /// ... and the two predictions must agree on at least this fraction of the voxels either calls foreground.
  double min_agreement = 0.99;
  /// Validation cases scored per fold (0 = all).
  int64_t guard_cases = 0;
  /// Skip the guard (the folder is written with "guard": null).
  bool no_guard = false;
  /// Sliding-window overlap of the guard's predictions.
  double overlap = 0.5;
};

/// The guard of one fold.
struct QuantizeGuard {
  std::vector<std::string> cases;
  /// Mean over cases of the mean foreground Dice against the label.
  double dice_fp32 = 0, dice_int8 = 0;
  /// |voxels with the same foreground label in both| / |voxels foreground in either|, over all cases.
  double foreground_agreement = 1;
  /// Sliding-window seconds of all cases.
  double seconds_fp32 = 0, seconds_int8 = 0;
  bool passed = false;
};

/// What was done for one fold.
struct QuantizeFold {
  int fold = 0;
  int64_t patches = 0;
  /// Layers quantized and their calibrated input ranges (largest |x|).
  std::vector<std::pair<std::string, float>> layers;
  bool guarded = false;
  QuantizeGuard guard;
};

struct QuantizeSummary {
  std::filesystem::path output;
  std::vector<QuantizeFold> folds;
};

/// Quantizes a model folder. The output is written under a temporary name and renamed when complete; when a fold
/// fails the guard nothing is written and an InvalidArgument gives the measured figures. Errors name the folder.
QuantizeSummary quantize_model_folder(const QuantizeOptions& options);

}  // namespace teachformer::pipeline
