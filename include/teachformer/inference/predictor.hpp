// Prediction from a model folder: the folder's own preprocessing (channels by name, normalisation, spacing/bbox),
// Gaussian sliding window over one or more folds (running mean of probabilities, optional mirroring), argmax, and
// the result restored onto each case's reference grid with its geometry.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "teachformer/data/case.hpp"
#include "teachformer/data/dicom_dataset.hpp"
#include "teachformer/models/model_folder.hpp"
#include "teachformer/io/volume.hpp"

namespace teachformer::inference {

/// Prediction settings.
struct PredictOptions {
  /// Folds to ensemble; empty = every fold with a checkpoint.
  std::vector<int> folds;
  /// "best" or "final".
  std::string checkpoint = "best";
  /// Sliding-window overlap (MONAI semantics) and windows per forward.
  double overlap = 0.5;
  int64_t sw_batch_size = 1;
  /// Gaussian sigma as a fraction of the window.
  double sigma_scale = 0.125;
  /// Mirroring test-time augmentation over all spatial axes (8 passes; off by default on CPU).
  bool mirror = false;
  /// Also return the class probabilities on the reference grid.
  bool probabilities = false;
  /// "cpu", "cuda", ... (see core/device.hpp).
  std::string device = "cpu";
  /// Arithmetic of the CPU forward: "fp32", "bf16" or "int8" (models/low_precision.hpp); empty = the folder's own
  /// (int8 for a folder written by `teachformer quantize`, else fp32).
  std::string precision;
};

/// One predicted case.
struct CasePrediction {
  std::string id;
  /// uint8 labels [1, Z, Y, X] on the case's reference grid (CT / T2W / channel 0) with its geometry.
  io::Volume labels;
  /// float32 probabilities [K, Z, Y, X] on the reference grid (when asked for).
  std::optional<io::Volume> probabilities;
  /// Seconds for the whole case (read, preprocess, sliding window, restore).
  double seconds = 0;
  /// Seconds reading the channels, resampling them onto the plan's grid and normalising (preprocess_case).
  double preprocess_seconds = 0;
  /// Seconds in the sliding window alone.
  double network_seconds = 0;
  /// Seconds from the probabilities to the labels (and probabilities) on the reference grid: argmax and restore.
  double restore_seconds = 0;
};

/// Loads the folds of a model folder once and predicts cases.
class Predictor {
 public:
  Predictor(const std::filesystem::path& model_dir, PredictOptions options);
  /// Predicts one raw case. Throws DatasetError naming a channel the model needs but the case lacks.
  CasePrediction predict(const data::Case& c) const;
  /// Probabilities [K, Z, Y, X] on the preprocessed grid of an already preprocessed image [C, Z, Y, X] in the
  /// folder's channel order (all dataset channels; the model's are selected).
  torch::Tensor predict_preprocessed(const torch::Tensor& image) const;
  const models::ModelFolder& folder() const { return folder_; }
  /// Folds in use.
  const std::vector<int>& folds() const { return folds_; }
  /// The precision the models run at.
  models::Precision precision() const { return precision_; }

 private:
  models::ModelFolder folder_;
  PredictOptions options_;
  std::vector<int> folds_;
  std::vector<models::SegmentationModel> models_;
  std::vector<int64_t> channel_indices_;
  c10::Device device_;
  models::Precision precision_ = models::Precision::kFloat32;
};

/// Cases of `input`: a dataset in any supported layout (all cases, labelled or not), DICOM studies (series matched
/// to `channel_names` with `dicom`'s patterns; a study that cannot be matched is a DatasetError naming the series
/// found), or a plain folder of nnU-Net style files {case}_{XXXX}.{ext} whose channel XXXX is the model's channel
/// XXXX (`channel_names`).
std::vector<data::Case> cases_for_prediction(const std::filesystem::path& input,
                                             const std::vector<std::string>& channel_names,
                                             const data::DicomDatasetOptions& dicom = {});

/// One DICOM segment per foreground label class of a model folder's dataset.json (name, description, SNOMED CT
/// category/type and colour from io::segment_for_label).
std::vector<io::DicomSegment> dicom_segments(const models::ModelFolder& folder);

/// Writes `labels` (a prediction on the case's reference grid) as a DICOM Segmentation object referencing the
/// case's reference channel, which must be a DICOM series (DatasetError otherwise).
void write_dicom_seg_prediction(const std::filesystem::path& path, const data::Case& c, const io::Volume& labels,
                                const models::ModelFolder& folder);

}  // namespace teachformer::inference
