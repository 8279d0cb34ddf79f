// The preprocessing plan: everything needed to turn a raw case into network input, serialised as strict JSON.
// The same plan is stored with the preprocessed data and in model folders, and `predict` applies it to new cases.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/core/geometry.hpp"
#include "teachformer/transforms/lesions.hpp"
#include "teachformer/transforms/normalize.hpp"
#include "teachformer/transforms/resample.hpp"

namespace teachformer::data {

struct Dataset;

/// Normalisation of one channel.
struct ChannelPlan {
  /// Channel name (as in the dataset, e.g. "CT").
  std::string name;
  /// Its scheme and parameters.
  transforms::Normalization normalization;
};

/// A serialisable preprocessing plan.
struct PreprocessPlan {
  /// Format version of the JSON (1).
  int version = 1;
  /// Channels in network-input order with their normalisation.
  std::vector<ChannelPlan> channels;
  /// Name of the reference channel whose grid the others are resampled onto (CT, T2W/T2, else channel 0).
  std::string reference_channel;
  /// Voxel size (mm, x y z) of the preprocessed grid; absent = keep the reference grid. Ignored when cropping to
  /// a bbox (see bbox_spacing).
  std::optional<Vec3> target_spacing;
  /// Crop to the case's bounding box (HECKTOR) instead of using the reference grid's extent.
  bool crop_to_bbox = false;
  /// Voxel size (mm, x y z) of the bbox grid. Default 1 mm isotropic (a 144 mm box gives 144^3).
  Vec3 bbox_spacing{1.0, 1.0, 1.0};
  /// Interpolation of images (linear or bspline); labels always use nearest.
  transforms::Interpolation image_interpolation = transforms::Interpolation::Linear;
  /// What to do when label resampling changes the number of lesions. Default warn.
  transforms::LesionCheck lesion_check = transforms::LesionCheck::Warn;
  /// Grids whose origins differ from the target by at most this many voxels (same size, spacing and direction
  /// within 1e-4) are snapped instead of resampled. Default 0.05 voxel.
  double snap_tolerance_voxels = 0.05;

  /// Channel names in order.
  std::vector<std::string> channel_names() const;
  /// Index of `reference_channel` in `channels`.
  int reference_index() const;
  /// True while a channel still waits for fingerprint-derived window bounds.
  bool needs_fingerprint() const;
  /// Throws ConfigError naming `context` for an inconsistent plan (no channels, duplicate names, unknown
  /// reference channel, invalid normalisation, non-positive spacing, label interpolation other than nearest).
  void validate(const std::string& context) const;
  /// JSON with keys version, channels [{name, normalization}], reference_channel, target_spacing (null or
  /// [x, y, z]), bbox {crop, spacing}, image_interpolation, label_interpolation ("nearest"), lesion_check,
  /// snap_tolerance_voxels.
  nlohmann::json to_json() const;
  /// Strict inverse of to_json (unknown keys are errors), validated.
  static PreprocessPlan from_json(const nlohmann::json& j, const std::string& context);
  /// 16 hex digits identifying the plan (FNV-1a of its JSON), stored in every preprocessed case.
  std::string digest() const;
};

/// Reads and validates a plan file (errors name the path).
PreprocessPlan read_plan(const std::filesystem::path& path);

/// Where the CT window comes from.
enum class CtWindow {
  Fixed,        ///< [-1024, 1024] HU
  Fingerprint,  ///< foreground percentiles 0.5 / 99.5 of the dataset (filled in by preprocess_dataset)
};
/// "fixed" or "fingerprint".
std::string to_string(CtWindow window);
/// Parses "fixed" or "fingerprint" (InvalidArgument otherwise).
CtWindow ct_window_from_string(const std::string& name);

/// Choices that make a plan for a dataset.
struct PlanOptions {
  /// Target voxel size (mm, x y z): the bbox grid spacing for HECKTOR (default 1 mm), otherwise the spacing the
  /// reference grid is resampled to (default: keep the reference grid).
  std::optional<Vec3> target_spacing;
  /// CT window source. Default fixed.
  CtWindow ct_window = CtWindow::Fixed;
  /// Schemes named by the user, by channel name (case-insensitive); they override the defaults and make unknown
  /// channel names usable.
  std::map<std::string, transforms::Normalization> normalization;
  /// Image interpolation. Default linear.
  transforms::Interpolation image_interpolation = transforms::Interpolation::Linear;
  /// Lesion-count check. Default warn.
  transforms::LesionCheck lesion_check = transforms::LesionCheck::Warn;
};

/// The plan for `dataset`: its channels with their default (or named) schemes, the reference channel, and bbox
/// cropping for HECKTOR datasets whose cases have boxes. With CtWindow::Fingerprint the CT window is left
/// unresolved (needs_fingerprint() is true). Throws ConfigError for a channel without a known or named scheme.
PreprocessPlan make_plan(const Dataset& dataset, const PlanOptions& options);

}  // namespace teachformer::data
