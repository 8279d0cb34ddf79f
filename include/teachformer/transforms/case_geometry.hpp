// Where a preprocessed case came from: the grids before and after preprocessing, so that predictions made on the
// preprocessed grid can be put back on the reference channel's original grid (CT for HECKTOR, T2W for PI-CAI,
// channel 0 otherwise). Stored as JSON in every preprocessed case file.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "teachformer/core/geometry.hpp"
#include "teachformer/io/volume.hpp"
#include "teachformer/transforms/resample.hpp"

namespace teachformer::transforms {

/// An axis-aligned box in world coordinates (mm, LPS), e.g. a HECKTOR bounding box x1..x2, y1..y2, z1..z2.
struct BoundingBox {
  /// Lower corner (x1, y1, z1), mm.
  Vec3 min{0.0, 0.0, 0.0};
  /// Upper corner (x2, y2, z2), mm; every component larger than `min`'s.
  Vec3 max{0.0, 0.0, 0.0};
  /// Edge lengths (mm).
  Vec3 extent() const { return {max[0] - min[0], max[1] - min[1], max[2] - min[2]}; }
  /// "x [x1, x2] y [y1, y2] z [z1, z2] mm" for messages.
  std::string to_string() const;
};

/// The grid that samples `box` at `spacing` (mm, x y z) with identity direction: size = max(1, round(extent /
/// spacing)) per axis, centred on the box, so a 144 mm box at 1 mm gives 144 voxels whose edges are the box's.
Grid grid_for_box(const BoundingBox& box, const Vec3& spacing);

/// Grid as JSON {"size": [x, y, z], "spacing": [...], "origin": [...], "direction": [9 values, row-major]}.
nlohmann::json grid_to_json(const Grid& grid);
/// Strict inverse of grid_to_json (ConfigError naming `context` on unknown/missing keys or bad values).
Grid grid_from_json(const nlohmann::json& j, const std::string& context);
/// Box as JSON {"min": [x1, y1, z1], "max": [x2, y2, z2]}.
nlohmann::json box_to_json(const BoundingBox& box);
/// Strict inverse of box_to_json.
BoundingBox box_from_json(const nlohmann::json& j, const std::string& context);

/// The geometry of one preprocessed case.
struct CaseGeometry {
  /// Patient the case belongs to (for grouped splits).
  std::string patient_id;
  /// Name of the reference channel (its original grid is `reference`).
  std::string reference_channel;
  /// Original grid of the reference channel: predictions are restored onto it.
  Grid reference;
  /// Grid of the preprocessed tensors (the bbox grid, a resampled reference grid, or the reference grid itself).
  Grid preprocessed;
  /// The crop box (HECKTOR), when the case was cropped to one.
  std::optional<BoundingBox> bbox;
  /// Channel names in order.
  std::vector<std::string> channel_names;
  /// Original grid of each channel, in channel order.
  std::vector<Grid> channel_grids;

  /// JSON with keys patient_id, reference_channel, reference, preprocessed, bbox (null when absent), channels
  /// ([{name, grid}]).
  nlohmann::json to_json() const;
  /// Strict inverse of to_json (ConfigError naming `context`).
  static CaseGeometry from_json(const nlohmann::json& j, const std::string& context);
};

/// Puts a tensor [C, Z, Y, X] on the preprocessed grid back onto the reference grid: returns a Volume [C, Zr, Yr, Xr]
/// with the reference geometry. Nearest keeps the dtype (use it for label maps); Linear/BSpline give float32 (use
/// them for probabilities or logits). Reference voxels outside the preprocessed grid (outside the bbox) get 0:
/// background for label maps, probability 0 for every channel of a probability map (argmax picks channel 0).
io::Volume restore_to_reference(const torch::Tensor& data, const CaseGeometry& geometry,
                                Interpolation interpolation);

}  // namespace teachformer::transforms
