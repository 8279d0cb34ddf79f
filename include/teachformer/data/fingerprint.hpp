// Dataset fingerprint: per-channel intensity statistics, grid sizes and label statistics, computed per case on
// the preprocessed grid from the raw (not yet normalised) intensities, stored in each preprocessed case file, and
// aggregated into <dir>/fingerprint.json. The CT window of `--ct-window fingerprint` is the foreground
// percentile range p00_5..p99_5 of the CT channel.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "teachformer/core/geometry.hpp"

namespace teachformer::data {

/// Summary statistics of a set of intensities.
struct IntensitySummary {
  /// Number of voxels summarised (0: the other fields are NaN and written as null).
  int64_t count = 0;
  /// Mean.
  double mean = 0.0;
  /// Standard deviation (population).
  double std = 0.0;
  /// Minimum.
  double min = 0.0;
  /// Maximum.
  double max = 0.0;
  /// 0.5th percentile (linear interpolation between order statistics, as numpy).
  double p00_5 = 0.0;
  /// 99.5th percentile.
  double p99_5 = 0.0;
  /// {"count", "mean", "std", "min", "max", "p00_5", "p99_5"} (nulls when count is 0).
  nlohmann::json to_json() const;
  /// Strict inverse of to_json.
  static IntensitySummary from_json(const nlohmann::json& j, const std::string& context);
};

/// Statistics of one channel of one case.
struct ChannelStats {
  /// Over the label's foreground (label > 0); count 0 for unlabelled cases.
  IntensitySummary foreground;
  /// Over all voxels of the preprocessed grid.
  IntensitySummary all;
  /// Up to `kFingerprintSamples` foreground intensities drawn deterministically (seeded by case id and channel)
  /// for dataset-level percentiles.
  std::vector<float> foreground_sample;
  /// Up to `kFingerprintSamples` intensities over all voxels.
  std::vector<float> all_sample;
};

/// Intensities kept per case, channel and region for dataset percentiles.
inline constexpr int64_t kFingerprintSamples = 1000;

/// Statistics of one case.
struct CaseStats {
  /// Case id.
  std::string id;
  /// Patient id.
  std::string patient_id;
  /// Per channel, in channel order.
  std::vector<ChannelStats> channels;
  /// Preprocessed grid size (x, y, z) and spacing (mm).
  Size3 shape{0, 0, 0};
  /// Spacing of the preprocessed grid (mm, x y z).
  Vec3 spacing{0.0, 0.0, 0.0};
  /// Original reference-channel grid size (x, y, z).
  Size3 original_shape{0, 0, 0};
  /// Original reference-channel spacing (mm, x y z).
  Vec3 original_spacing{0.0, 0.0, 0.0};
  /// True when the case has a label.
  bool labelled = false;
  /// Voxel count per label value on the preprocessed grid (labelled cases).
  std::map<int, int64_t> label_voxels;
  /// Number of lesions (26-connected components of label > 0) on the preprocessed grid.
  int64_t lesions = 0;

  /// JSON (samples included, as lists).
  nlohmann::json to_json() const;
  /// Strict inverse of to_json.
  static CaseStats from_json(const nlohmann::json& j, const std::string& context);
};

/// Summary of `values` (copied; exact percentiles by selection).
IntensitySummary summarize(std::vector<float> values);

/// Statistics of raw intensities `image` [C, Z, Y, X] and label [1, Z, Y, X] (undefined when unlabelled) on the
/// preprocessed grid. Deterministic: samples are drawn with a generator seeded from `id`.
CaseStats compute_case_stats(const std::string& id, const std::string& patient_id, const torch::Tensor& image,
                             const torch::Tensor& label);

/// Dataset-level aggregation.
struct DatasetFingerprint {
  /// Channel names in order.
  std::vector<std::string> channel_names;
  /// Per channel: count, mean and std pooled exactly over the cases' voxels, min/max exact, percentiles from the
  /// pooled per-case samples.
  std::vector<IntensitySummary> foreground;
  /// Same over all voxels.
  std::vector<IntensitySummary> all;
  /// The cases.
  std::vector<CaseStats> cases;
  /// fingerprint.json: {"channel_names", "intensity": {name: {"foreground": .., "all": ..}}, "cases": [{id,
  /// patient_id, shape, spacing, original_shape, original_spacing, labelled, label_voxels, lesions, intensity}],
  /// "spacing_median", "shape_median"} (samples left out).
  nlohmann::json to_json() const;
};

/// Aggregates case statistics.
DatasetFingerprint aggregate_fingerprint(const std::vector<std::string>& channel_names,
                                         const std::vector<CaseStats>& cases);

}  // namespace teachformer::data
