// Dataset checks behind `teachformer verify`: every problem at once, one line each (file, expected vs found, hint).
// Scanning problems come from open_dataset (missing channel files, wrong suffixes, channel counts, duplicate ids,
// labels without images and vice versa); this adds, per case, header checks (channel count of 4D files, grid
// mismatches between the label and its reference channel and, where the layout promises one grid, between
// channels; fields of view that do not overlap; a bbox outside the image) and voxel checks (NaN/Inf, undeclared
// label values, empty labels).
#pragma once
#include <filesystem>
#include <optional>
#include <vector>

#include "teachformer/data/dataset.hpp"

namespace teachformer::data {

/// Settings of verify_dataset.
struct VerifyOptions {
  /// Largest spacing/origin difference (mm) between grids that must be identical. Default 1e-3 mm.
  double tolerance_mm = 1e-3;
  /// Largest difference of direction cosines between grids that must be identical. Default 1e-4.
  double direction_tolerance = 1e-4;
  /// Read the pixel data (NaN/Inf, label values, empty labels); false = headers only. Default true.
  bool check_voxels = true;
  /// Cases checked at once (each worker with 1 torch thread). Default 1.
  int workers = 1;
};

/// What verify found.
struct VerifyReport {
  /// The layout.
  DatasetFormat format = DatasetFormat::NnUNet;
  /// Dataset name.
  std::string name;
  /// Labelled cases checked.
  int64_t labelled = 0;
  /// Unlabelled cases checked.
  int64_t unlabelled = 0;
  /// All problems, scanning problems first, then per case in id order.
  std::vector<Problem> problems;
  /// Number of errors.
  int errors() const;
  /// Number of warnings.
  int warnings() const;
};

/// Checks every complete case of a scanned dataset.
VerifyReport verify_dataset(const Dataset& dataset, const VerifyOptions& options = {});
/// Scans `root` (format detected unless given) and checks it. A missing root or unreadable dataset.json throws.
VerifyReport verify_dataset(const std::filesystem::path& root, std::optional<DatasetFormat> format,
                            const VerifyOptions& options = {});

}  // namespace teachformer::data
