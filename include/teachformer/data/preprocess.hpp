// Applying a plan to one case: every channel and the label are resampled in physical space onto the target grid
// (the reference channel's grid, that grid at the plan's target spacing, or the HECKTOR bbox at 1 mm), then each
// channel is normalised by its scheme. See docs/geometry.md.
#pragma once
#include <string>
#include <vector>

#include <torch/types.h>

#include "teachformer/data/case.hpp"
#include "teachformer/data/plan.hpp"
#include "teachformer/transforms/case_geometry.hpp"

namespace teachformer::data {

/// A case on the preprocessed grid: what training and prediction consume.
struct PreprocessedCase {
  /// Case id.
  std::string id;
  /// [C, Z, Y, X] float32, channels in plan order.
  torch::Tensor image;
  /// [1, Z, Y, X] uint8; undefined when the case is unlabelled.
  torch::Tensor label;
  /// Grids before and after preprocessing (and the patient id), for restore_to_reference.
  transforms::CaseGeometry geometry;
  /// True when `label` is defined.
  bool labelled() const { return label.defined(); }
};

/// The geometric stage alone: like PreprocessedCase but `image` holds the raw (resampled, not normalised)
/// intensities, plus what the stage noticed.
struct ResampledCase {
  /// Raw intensities on the preprocessed grid.
  PreprocessedCase data;
  /// Lesions (26-connected components of label > 0) of the original label inside the target grid's extent, and
  /// after resampling; both -1 when not counted (unlabelled, check off, or the label grid was kept).
  int64_t lesions_before = -1;
  /// See lesions_before.
  int64_t lesions_after = -1;
  /// Warnings (lesion count changed under LesionCheck::Warn), one line each.
  std::vector<std::string> warnings;
};

/// The grid the plan puts `c` on, given the reference channel's grid.
Grid target_grid(const Case& c, const Grid& reference, const PreprocessPlan& plan);

/// Loads `c` and resamples its channels (plan interpolation, fill = the channel's minimum) and label (nearest)
/// onto the target grid. Channels whose grid matches the target within the snap tolerance are taken as they are.
/// Throws DatasetError when the case's channels differ from the plan's, when the plan crops to a bbox the case
/// lacks, or when the lesion count changes under LesionCheck::Error.
ResampledCase resample_case(const Case& c, const PreprocessPlan& plan);
/// Same, on a case already loaded.
ResampledCase resample_case(const Case& c, const LoadedCase& loaded, const PreprocessPlan& plan);

/// Normalises raw intensities [C, Z, Y, X] channel by channel with the plan's schemes (float32 result).
torch::Tensor normalize_image(const torch::Tensor& raw, const PreprocessPlan& plan);

/// The whole plan on one case (labelled or not): resample_case then normalize_image. Warnings are logged.
PreprocessedCase preprocess_case(const Case& c, const PreprocessPlan& plan);

}  // namespace teachformer::data
