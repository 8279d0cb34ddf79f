// Overlap and surface metrics of binary masks and label maps ([Z, Y, X] tensors, spacing (x, y, z) in mm).
//
// Empty-mask policy (the fixture/MONAI convention, see docs/metrics.md):
//   prediction empty, reference not: Dice 0, IoU 0, recall 0, precision NaN, HD95 NaN, HD/ASSD/MASD +inf, NSD 0;
//   reference empty, prediction not: Dice NaN, IoU NaN, recall NaN, precision 0, HD95 NaN, HD/ASSD/MASD +inf,
//                                    NSD NaN;
//   both empty: every ratio and distance NaN.
// Every BinaryMetrics carries its EmptyCase so summaries count these cases instead of dropping them.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

#include "teachformer/core/geometry.hpp"
#include "teachformer/metrics/surface_distance.hpp"

namespace teachformer::metrics {

/// Which of the two masks is empty.
enum class EmptyCase {
  None,            ///< both masks have voxels
  PredictionEmpty, ///< the prediction is empty, the reference is not
  ReferenceEmpty,  ///< the reference is empty, the prediction is not
  BothEmpty,       ///< neither has a voxel
};
/// "ok", "pred_empty", "ref_empty" or "both_empty".
std::string to_string(EmptyCase empty);

/// Voxel counts of a prediction against a reference.
struct OverlapCounts {
  /// Voxels in both masks.
  int64_t tp = 0;
  /// Voxels in the prediction only.
  int64_t fp = 0;
  /// Voxels in the reference only.
  int64_t fn = 0;
  /// Voxels in neither (within the evaluated region).
  int64_t tn = 0;
  /// Prediction voxels (tp + fp).
  int64_t n_pred() const { return tp + fp; }
  /// Reference voxels (tp + fn).
  int64_t n_ref() const { return tp + fn; }
};

/// What to compute and how.
struct MetricOptions {
  /// Compute HD95/HD/ASSD/NSD (distance transforms); false: overlap metrics only. Default true.
  bool surface_metrics = true;
  /// Surface representation: VoxelSurface (MONAI, default) or Surfels (DeepMind, area-weighted).
  SurfaceMethod method = SurfaceMethod::VoxelSurface;
  /// Percentile of the robust Hausdorff distance (default 95).
  double percentile = 95.0;
  /// Tolerance (mm) of the normalised surface Dice: a surface element within this distance of the other surface
  /// counts as overlapping. Default 2 mm.
  double nsd_tolerance_mm = 2.0;
};

/// Metrics of one binary prediction against one reference.
struct BinaryMetrics {
  /// Voxel counts.
  OverlapCounts counts;
  /// Which mask is empty.
  EmptyCase empty = EmptyCase::BothEmpty;
  /// Volume of one voxel (mm^3).
  double voxel_volume_mm3 = 0;
  /// 2 TP / (2 TP + FP + FN).
  double dice = 0;
  /// TP / (TP + FP + FN) (Jaccard).
  double iou = 0;
  /// TP / (TP + FP) (positive predictive value).
  double precision = 0;
  /// TP / (TP + FN) (sensitivity).
  double recall = 0;
  /// Prediction volume (mm^3).
  double volume_pred_mm3 = 0;
  /// Reference volume (mm^3).
  double volume_ref_mm3 = 0;
  /// Robust Hausdorff distance (mm): the larger of the two directed `percentile`-th percentiles (voxel method,
  /// linear interpolation) or DeepMind's area-weighted robust Hausdorff (surfel method). NaN if not computed.
  double hd95 = 0;
  /// Hausdorff distance (mm), the largest surface distance in either direction.
  double hd = 0;
  /// Average symmetric surface distance (mm): the mean distance over the surface elements of both masks pooled
  /// (MONAI's symmetric average surface distance; area-weighted for surfels).
  double assd = 0;
  /// Mean average surface distance (mm): the average of the two directed mean distances (Metrics Reloaded's
  /// MASD; area-weighted for surfels). Differs from ASSD when the two surfaces have different sizes.
  double masd = 0;
  /// Normalised surface Dice at `nsd_tolerance_mm`, in [0, 1].
  double nsd = 0;
};

/// Metrics of `pred` against `ref` (each [Z, Y, X] or [1, Z, Y, X], non-zero = foreground, same shape) with voxel
/// `spacing` (x, y, z) in mm.
BinaryMetrics compute_binary_metrics(const torch::Tensor& pred, const torch::Tensor& ref, const Vec3& spacing,
                                     const MetricOptions& options = {});

/// Per-label metrics of two uint8 label maps (each [Z, Y, X] or [1, Z, Y, X], same shape): for each label l in
/// `labels` (1..255), the masks (pred == l) and (ref == l). A label absent from both gives BothEmpty metrics.
std::map<int, BinaryMetrics> compute_label_metrics(const torch::Tensor& pred, const torch::Tensor& ref,
                                                   const Vec3& spacing, const std::vector<int>& labels,
                                                   const MetricOptions& options = {});

/// Sorted non-zero values present in a uint8 label map.
std::vector<int> present_labels(const torch::Tensor& labels);

/// Metrics from counts alone (ratios, volumes, EmptyCase) with the distance fields set by the empty-mask policy
/// (NaN when both masks are non-empty: they need surfaces). Used for labels absent from a case.
BinaryMetrics metrics_from_counts(const OverlapCounts& counts, double voxel_volume_mm3);

/// Sets hd95/hd/assd/nsd of `m` from surface distances, applying the empty-mask policy.
void apply_surface_distances(BinaryMetrics& m, const SurfaceDistances& distances, const MetricOptions& options);

}  // namespace teachformer::metrics
