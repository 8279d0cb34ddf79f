#include "teachformer/metrics/distance_transform.hpp"

#include <cmath>

#include "metrics/detail/edt.hpp"
#include "metrics/detail/mask.hpp"
#include "teachformer/core/error.hpp"

namespace teachformer::metrics {

namespace {
void check_spacing(const Vec3& spacing, const char* what) {
  for (int a = 0; a < 3; ++a)
    TF_CHECK(std::isfinite(spacing[a]) && spacing[a] > 0, InvalidArgument, what,
             ": spacing must be positive and finite in every axis, got ", spacing);
}
}  // namespace

torch::Tensor squared_distance_transform(const torch::Tensor& features, const Vec3& spacing) {
  check_spacing(spacing, "squared_distance_transform");
  TF_CHECK(features.defined() && (features.dim() == 3 || (features.dim() == 4 && features.size(0) == 1)),
           InvalidArgument, "squared_distance_transform: expected features of shape [Z, Y, X] or [1, Z, Y, X], got ",
           features.defined() ? features.sizes().vec() : std::vector<int64_t>{});
  torch::Tensor f = (features.dim() == 4 ? features.select(0, 0) : features).ne(0).to(torch::kUInt8).contiguous();
  const detail::Dims d = detail::dims_of(f);
  torch::Tensor out = torch::empty({d.z, d.y, d.x}, torch::kFloat64);
  detail::squared_edt(f.data_ptr<uint8_t>(), d, spacing, out.data_ptr<double>());
  return out;
}

torch::Tensor distance_transform(const torch::Tensor& features, const Vec3& spacing) {
  return squared_distance_transform(features, spacing).sqrt_();
}

}  // namespace teachformer::metrics
