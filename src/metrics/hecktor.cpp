#include "teachformer/metrics/hecktor.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "metrics/detail/mask.hpp"
#include "teachformer/core/error.hpp"

namespace teachformer::metrics {

torch::Tensor voxels_inside(const Grid& grid, const transforms::BoundingBox& box) {
  const int64_t nx = grid.size[0], ny = grid.size[1], nz = grid.size[2];
  torch::Tensor out = torch::zeros({nz, ny, nx}, torch::kUInt8);
  uint8_t* o = out.data_ptr<uint8_t>();
  const Geometry& g = grid.geometry;
  // world = origin + D diag(spacing) index: one step along each index axis moves by a column of D times spacing.
  Vec3 step[3];
  for (int a = 0; a < 3; ++a)
    for (int r = 0; r < 3; ++r) step[a][r] = g.direction[r * 3 + a] * g.spacing[a];
  constexpr double kSlack = 1e-6;
  for (int64_t k = 0; k < nz; ++k)
    for (int64_t j = 0; j < ny; ++j) {
      Vec3 w;
      for (int r = 0; r < 3; ++r) w[r] = g.origin[r] + step[2][r] * double(k) + step[1][r] * double(j);
      uint8_t* row = o + (k * ny + j) * nx;
      for (int64_t i = 0; i < nx; ++i) {
        bool in = true;
        for (int r = 0; r < 3 && in; ++r) {
          const double p = w[r] + step[0][r] * double(i);
          in = p >= box.min[r] - kSlack && p <= box.max[r] + kSlack;
        }
        row[i] = in;
      }
    }
  return out;
}

torch::Tensor crop_to_world_box(const torch::Tensor& labels, const Grid& grid, const transforms::BoundingBox& box,
                                int64_t* inside_voxels) {
  torch::Tensor l = detail::as_label_tensor(labels, "crop_to_world_box");
  TF_CHECK(l.size(0) == grid.size[2] && l.size(1) == grid.size[1] && l.size(2) == grid.size[0], InvalidArgument,
           "crop_to_world_box: label map shape ", l.sizes().vec(), " does not match the grid size (x, y, z) ",
           grid.size);
  const torch::Tensor inside = voxels_inside(grid, box);
  const detail::Dims d = detail::dims_of(inside);
  const detail::Box b = detail::bounding_box(inside.data_ptr<uint8_t>(), d, -1);
  if (inside_voxels) *inside_voxels = inside.sum().item<int64_t>();
  if (b.empty()) return torch::zeros({0, 0, 0}, torch::kUInt8);
  using torch::indexing::Slice;
  torch::Tensor crop = l.index({Slice(b.z0, b.z1), Slice(b.y0, b.y1), Slice(b.x0, b.x1)});
  const torch::Tensor in = inside.index({Slice(b.z0, b.z1), Slice(b.y0, b.y1), Slice(b.x0, b.x1)});
  return (crop * in).contiguous();
}

}  // namespace teachformer::metrics
