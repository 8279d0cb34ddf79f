#include "teachformer/transforms/lesions.hpp"

#include <torch/torch.h>

#include <numeric>

#include "teachformer/core/error.hpp"

namespace teachformer::transforms {
namespace {

int32_t find_root(std::vector<int32_t>& parent, int32_t x) {
  while (parent[size_t(x)] != x) {
    parent[size_t(x)] = parent[size_t(parent[size_t(x)])];
    x = parent[size_t(x)];
  }
  return x;
}

}  // namespace

std::vector<int64_t> component_sizes(const torch::Tensor& mask_in, int connectivity) {
  TF_CHECK(connectivity == 6 || connectivity == 18 || connectivity == 26, InvalidArgument,
           "component_sizes: connectivity must be 6, 18 or 26, got ", connectivity);
  TF_CHECK(mask_in.defined() && (mask_in.dim() == 3 || (mask_in.dim() == 4 && mask_in.size(0) == 1)), InvalidArgument,
           "component_sizes: mask must be [Z, Y, X] or [1, Z, Y, X], got ",
           mask_in.defined() ? mask_in.sizes().vec() : std::vector<int64_t>{});
  const auto mask = (mask_in.dim() == 4 ? mask_in[0] : mask_in).detach().to(torch::kCPU).ne(0).contiguous();
  const int64_t nz = mask.size(0), ny = mask.size(1), nx = mask.size(2);
  const bool* m = mask.data_ptr<bool>();
  // Backward neighbours (already visited in raster order) allowed by the connectivity.
  std::vector<int64_t> offsets;
  std::vector<std::array<int, 3>> deltas;
  for (int dz = -1; dz <= 0; ++dz)
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) {
        if (dz == 0 && (dy > 0 || (dy == 0 && dx >= 0))) continue;
        const int manhattan = std::abs(dz) + std::abs(dy) + std::abs(dx);
        if (connectivity == 6 && manhattan > 1) continue;
        if (connectivity == 18 && manhattan > 2) continue;
        deltas.push_back({dz, dy, dx});
      }
  std::vector<int32_t> labels(size_t(nz * ny * nx), -1);
  std::vector<int32_t> parent;
  for (int64_t z = 0; z < nz; ++z)
    for (int64_t y = 0; y < ny; ++y)
      for (int64_t x = 0; x < nx; ++x) {
        const int64_t idx = (z * ny + y) * nx + x;
        if (!m[idx]) continue;
        int32_t label = -1;
        for (const auto& d : deltas) {
          const int64_t zz = z + d[0], yy = y + d[1], xx = x + d[2];
          if (zz < 0 || yy < 0 || yy >= ny || xx < 0 || xx >= nx) continue;
          const int32_t other = labels[size_t((zz * ny + yy) * nx + xx)];
          if (other < 0) continue;
          if (label < 0) {
            label = find_root(parent, other);
          } else {
            const int32_t a = find_root(parent, label), b = find_root(parent, other);
            if (a != b) parent[size_t(std::max(a, b))] = std::min(a, b);
            label = std::min(a, b);
          }
        }
        if (label < 0) {
          label = int32_t(parent.size());
          parent.push_back(label);
        }
        labels[size_t(idx)] = label;
      }
  // Roots are the smallest provisional label of each component, so root order = raster order of first voxels.
  std::vector<int64_t> root_index(parent.size(), -1);
  std::vector<int64_t> sizes;
  for (size_t l = 0; l < parent.size(); ++l) {
    const int32_t r = find_root(parent, int32_t(l));
    if (r == int32_t(l)) {
      root_index[l] = int64_t(sizes.size());
      sizes.push_back(0);
    }
  }
  for (const int32_t l : labels)
    if (l >= 0) ++sizes[size_t(root_index[size_t(find_root(parent, l))])];
  return sizes;
}

int64_t count_components(const torch::Tensor& mask, int connectivity) {
  return int64_t(component_sizes(mask, connectivity).size());
}

std::string to_string(LesionCheck check) {
  switch (check) {
    case LesionCheck::Off: return "off";
    case LesionCheck::Warn: return "warn";
    case LesionCheck::Error: return "error";
  }
  return "unknown";
}

LesionCheck lesion_check_from_string(const std::string& name, const std::string& context) {
  if (name == "off") return LesionCheck::Off;
  if (name == "warn") return LesionCheck::Warn;
  if (name == "error") return LesionCheck::Error;
  TF_THROW(InvalidArgument, context, ": unknown value '", name, "'; expected off, warn or error");
}

std::optional<std::string> check_lesion_count(int64_t before, int64_t after, LesionCheck check,
                                              const std::string& context) {
  if (check == LesionCheck::Off || before == after) return std::nullopt;
  const std::string message = detail::cat(
      context, ": the label has ", after, " lesion(s) (26-connected components) after resampling but ", before,
      " before; resampling merged, split or lost lesions (hint: use a finer target spacing, or --lesion-check off "
      "to accept)");
  TF_CHECK(check != LesionCheck::Error, DatasetError, message);
  return message;
}

}  // namespace teachformer::transforms
