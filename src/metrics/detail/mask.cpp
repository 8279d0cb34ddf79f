#include "metrics/detail/mask.hpp"

#include <algorithm>

#include "teachformer/core/error.hpp"

namespace teachformer::metrics::detail {

Box Box::united(const Box& o) const {
  if (empty()) return o;
  if (o.empty()) return *this;
  return {std::min(z0, o.z0), std::max(z1, o.z1), std::min(y0, o.y0),
          std::max(y1, o.y1), std::min(x0, o.x0), std::max(x1, o.x1)};
}

torch::Tensor as_label_tensor(const torch::Tensor& t, const char* what) {
  TF_CHECK(t.defined(), InvalidArgument, what, ": tensor is undefined");
  TF_CHECK(t.dim() == 3 || (t.dim() == 4 && t.size(0) == 1), InvalidArgument, what,
           ": expected a mask of shape [Z, Y, X] or [1, Z, Y, X], got ", t.sizes().vec());
  torch::Tensor v = t.dim() == 4 ? t.select(0, 0) : t;
  if (v.scalar_type() == torch::kBool) {
    v = v.to(torch::kUInt8);
  } else if (v.scalar_type() != torch::kUInt8) {
    TF_CHECK(!at::isFloatingType(v.scalar_type()) && !at::isComplexType(v.scalar_type()), InvalidArgument, what,
             ": expected an integer (uint8/bool) mask or label map, got dtype ", v.scalar_type());
    if (v.numel() > 0) {
      const auto lo = v.min().item<int64_t>();
      const auto hi = v.max().item<int64_t>();
      TF_CHECK(lo >= 0 && hi <= 255, InvalidArgument, what, ": label values must lie in [0, 255], found [", lo,
               ", ", hi, "]");
    }
    v = v.to(torch::kUInt8);
  }
  return v.contiguous();
}

Box bounding_box(const uint8_t* data, const Dims& d, int label) {
  int64_t z0 = d.z, z1 = -1, y0 = d.y, y1 = -1, x0 = d.x, x1 = -1;
  for (int64_t z = 0; z < d.z; ++z) {
    for (int64_t y = 0; y < d.y; ++y) {
      const uint8_t* row = data + (z * d.y + y) * d.x;
      int64_t first = -1, last = -1;
      if (label < 0) {
        for (int64_t x = 0; x < d.x; ++x)
          if (row[x]) { first = x; break; }
        if (first < 0) continue;
        for (int64_t x = d.x - 1; x >= first; --x)
          if (row[x]) { last = x; break; }
      } else {
        const auto l = static_cast<uint8_t>(label);
        for (int64_t x = 0; x < d.x; ++x)
          if (row[x] == l) { first = x; break; }
        if (first < 0) continue;
        for (int64_t x = d.x - 1; x >= first; --x)
          if (row[x] == l) { last = x; break; }
      }
      z0 = std::min(z0, z); z1 = std::max(z1, z);
      y0 = std::min(y0, y); y1 = std::max(y1, y);
      x0 = std::min(x0, first); x1 = std::max(x1, last);
    }
  }
  if (z1 < 0) return {};
  return {z0, z1 + 1, y0, y1 + 1, x0, x1 + 1};
}

std::vector<uint8_t> crop_mask(const uint8_t* data, const Dims& d, const Box& box, int label) {
  const Dims c = box.dims();
  std::vector<uint8_t> out(static_cast<size_t>(c.numel()), 0);
  if (box.empty()) return out;
  const auto l = static_cast<uint8_t>(label < 0 ? 0 : label);
  for (int64_t z = 0; z < c.z; ++z)
    for (int64_t y = 0; y < c.y; ++y) {
      const uint8_t* src = data + ((box.z0 + z) * d.y + (box.y0 + y)) * d.x + box.x0;
      uint8_t* dst = out.data() + (z * c.y + y) * c.x;
      if (label < 0) {
        for (int64_t x = 0; x < c.x; ++x) dst[x] = src[x] != 0;
      } else {
        for (int64_t x = 0; x < c.x; ++x) dst[x] = src[x] == l;
      }
    }
  return out;
}

}  // namespace teachformer::metrics::detail
