// Private helpers of the metrics area: raw [Z, Y, X] uint8 buffers, index boxes and tensor validation.
#pragma once
#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace teachformer::metrics::detail {

/// Extents of a [Z, Y, X] buffer (x fastest).
struct Dims {
  int64_t z = 0, y = 0, x = 0;
  int64_t numel() const { return z * y * x; }
};

/// Half-open index box [z0, z1) x [y0, y1) x [x0, x1); empty when any extent is <= 0.
struct Box {
  int64_t z0 = 0, z1 = 0, y0 = 0, y1 = 0, x0 = 0, x1 = 0;
  bool empty() const { return z1 <= z0 || y1 <= y0 || x1 <= x0; }
  Dims dims() const { return {z1 - z0, y1 - y0, x1 - x0}; }
  /// Smallest box holding both (an empty box is ignored).
  Box united(const Box& other) const;
};

/// Validates a mask or label map given as [Z, Y, X] or [1, Z, Y, X] (uint8 or bool; any other integer type
/// is accepted when its values fit in [0, 255]) and returns it as a contiguous uint8 [Z, Y, X] tensor.
/// `what` names the argument in messages.
torch::Tensor as_label_tensor(const torch::Tensor& t, const char* what);

/// Dims of a [Z, Y, X] tensor.
inline Dims dims_of(const torch::Tensor& t) { return {t.size(0), t.size(1), t.size(2)}; }

/// Bounding box of the voxels equal to `label` (label < 0: any non-zero voxel).
Box bounding_box(const uint8_t* data, const Dims& d, int label);

/// Copies the voxels of `box` as a 0/1 mask of (value == label) (label < 0: value != 0).
std::vector<uint8_t> crop_mask(const uint8_t* data, const Dims& d, const Box& box, int label);

}  // namespace teachformer::metrics::detail
