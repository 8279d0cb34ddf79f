// Connected components of binary masks ([Z, Y, X]), labelled in raster order like scipy.ndimage.label.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

namespace teachformer::metrics {

/// Which neighbours of a voxel are connected to it.
enum class Connectivity {
  Faces = 6,     ///< the 6 face neighbours (scipy's default structure)
  Edges = 18,    ///< faces and edges
  Corners = 26,  ///< the full 3x3x3 block (picai_eval's label_structure)
};

/// "6", "18" or "26".
std::string to_string(Connectivity connectivity);
/// Parses 6, 18 or 26 (InvalidArgument listing the valid values otherwise).
Connectivity connectivity_from_int(int neighbours);

/// Labelled components of a mask.
struct Components {
  /// int32 [Z, Y, X]: 0 for background, 1..count for the components, numbered in the raster order
  /// (z, then y, then x) of each component's first voxel (the numbering of scipy.ndimage.label).
  torch::Tensor labels;
  /// Number of components.
  int64_t count = 0;
  /// Voxel count of component i + 1 at index i.
  std::vector<int64_t> sizes;
};

/// Labels the connected components of the non-zero voxels of `mask` ([Z, Y, X] or [1, Z, Y, X]; any dtype,
/// non-zero = foreground). Single pass union-find, linear in the number of voxels.
Components connected_components(const torch::Tensor& mask, Connectivity connectivity = Connectivity::Corners);

/// uint8 [Z, Y, X] mask of the largest component (the first in raster order on ties); all zeros when empty.
torch::Tensor largest_component(const torch::Tensor& mask, Connectivity connectivity = Connectivity::Corners);

/// uint8 [Z, Y, X] mask keeping only the components with at least `min_voxels` voxels.
torch::Tensor remove_small_components(const torch::Tensor& mask, int64_t min_voxels,
                                      Connectivity connectivity = Connectivity::Corners);

}  // namespace teachformer::metrics
