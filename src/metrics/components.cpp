#include "teachformer/metrics/components.hpp"

#include <array>
#include <numeric>

#include "teachformer/core/error.hpp"

namespace teachformer::metrics {

std::string to_string(Connectivity c) { return std::to_string(static_cast<int>(c)); }

Connectivity connectivity_from_int(int n) {
  TF_CHECK(n == 6 || n == 18 || n == 26, InvalidArgument, "connectivity must be 6, 18 or 26, got ", n);
  return static_cast<Connectivity>(n);
}

namespace {

int64_t find_root(std::vector<int64_t>& parent, int64_t i) {
  while (parent[i] != i) {
    parent[i] = parent[parent[i]];  // path halving keeps the trees flat
    i = parent[i];
  }
  return i;
}

/// Non-zero voxels of any dtype as a contiguous uint8 [Z, Y, X] buffer.
torch::Tensor foreground_of(const torch::Tensor& mask) {
  TF_CHECK(mask.defined(), InvalidArgument, "connected_components: mask is undefined");
  TF_CHECK(mask.dim() == 3 || (mask.dim() == 4 && mask.size(0) == 1), InvalidArgument,
           "connected_components: expected a mask of shape [Z, Y, X] or [1, Z, Y, X], got ", mask.sizes().vec());
  torch::Tensor m = mask.dim() == 4 ? mask.select(0, 0) : mask;
  return m.ne(0).to(torch::kUInt8).contiguous();
}

}  // namespace

Components connected_components(const torch::Tensor& mask, Connectivity connectivity) {
  const torch::Tensor fg = foreground_of(mask);
  const int64_t nz = fg.size(0), ny = fg.size(1), nx = fg.size(2);
  const uint8_t* m = fg.data_ptr<uint8_t>();

  // Backward neighbours (already visited in raster order) for the chosen connectivity.
  std::vector<std::array<int64_t, 3>> offsets;
  for (int64_t dz = -1; dz <= 0; ++dz)
    for (int64_t dy = -1; dy <= 1; ++dy)
      for (int64_t dx = -1; dx <= 1; ++dx) {
        if (dz == 0 && (dy > 0 || (dy == 0 && dx >= 0))) continue;
        const int order = (dz != 0) + (dy != 0) + (dx != 0);
        if (connectivity == Connectivity::Faces && order > 1) continue;
        if (connectivity == Connectivity::Edges && order > 2) continue;
        offsets.push_back({dz, dy, dx});
      }

  Components out;
  out.labels = torch::zeros({nz, ny, nx}, torch::kInt32);
  int32_t* lab = out.labels.data_ptr<int32_t>();
  // Provisional labels are voxel-independent ids; parent[] holds the union-find forest over them.
  std::vector<int64_t> parent;
  std::vector<int64_t> provisional(static_cast<size_t>(nz * ny * nx), -1);
  for (int64_t z = 0; z < nz; ++z)
    for (int64_t y = 0; y < ny; ++y)
      for (int64_t x = 0; x < nx; ++x) {
        const int64_t i = (z * ny + y) * nx + x;
        if (!m[i]) continue;
        int64_t root = -1;
        for (const auto& o : offsets) {
          const int64_t zz = z + o[0], yy = y + o[1], xx = x + o[2];
          if (zz < 0 || yy < 0 || yy >= ny || xx < 0 || xx >= nx) continue;
          const int64_t j = (zz * ny + yy) * nx + xx;
          if (!m[j]) continue;
          const int64_t r = find_root(parent, provisional[j]);
          if (root < 0) {
            root = r;
          } else if (r != root) {
            // Union; the final numbering below follows first appearance, whatever the root is.
            if (r < root) {
              parent[root] = r;
              root = r;
            } else {
              parent[r] = root;
            }
          }
        }
        if (root < 0) {
          root = static_cast<int64_t>(parent.size());
          parent.push_back(root);
        }
        provisional[i] = root;
      }

  // Final labels: roots numbered by first appearance in raster order.
  std::vector<int32_t> final_label(parent.size(), 0);
  int32_t next = 0;
  for (int64_t i = 0; i < nz * ny * nx; ++i) {
    if (provisional[i] < 0) continue;
    const int64_t r = find_root(parent, provisional[i]);
    if (final_label[r] == 0) {
      final_label[r] = ++next;
      out.sizes.push_back(0);
    }
    lab[i] = final_label[r];
    ++out.sizes[final_label[r] - 1];
  }
  out.count = next;
  return out;
}

torch::Tensor largest_component(const torch::Tensor& mask, Connectivity connectivity) {
  const Components c = connected_components(mask, connectivity);
  if (c.count == 0) return torch::zeros_like(c.labels, torch::kUInt8);
  int64_t best = 0;
  for (int64_t i = 1; i < c.count; ++i)
    if (c.sizes[i] > c.sizes[best]) best = i;
  return c.labels.eq(static_cast<int32_t>(best + 1)).to(torch::kUInt8);
}

torch::Tensor remove_small_components(const torch::Tensor& mask, int64_t min_voxels, Connectivity connectivity) {
  TF_CHECK(min_voxels >= 0, InvalidArgument, "remove_small_components: min_voxels must be >= 0, got ", min_voxels);
  const Components c = connected_components(mask, connectivity);
  std::vector<uint8_t> keep(static_cast<size_t>(c.count) + 1, 0);
  for (int64_t i = 0; i < c.count; ++i) keep[i + 1] = c.sizes[i] >= min_voxels;
  torch::Tensor out = torch::zeros(c.labels.sizes(), torch::kUInt8);
  const int32_t* lab = c.labels.data_ptr<int32_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  for (int64_t i = 0; i < c.labels.numel(); ++i) o[i] = keep[lab[i]];
  return out;
}

}  // namespace teachformer::metrics
