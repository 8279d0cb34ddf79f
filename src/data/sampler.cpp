#include "teachformer/data/sampler.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <map>
#include <cmath>

#include "teachformer/core/error.hpp"

namespace teachformer::data {

namespace {

// Keeps at most `max_locations` rows, evenly spread (the first and the last always kept).
torch::Tensor thin_locations(torch::Tensor loc, int64_t max_locations) {
  if (loc.size(0) <= max_locations) return loc;
  auto idx = torch::linspace(0, double(loc.size(0) - 1), max_locations).round().to(torch::kLong);
  return loc.index_select(0, idx).contiguous();
}

}  // namespace

void index_foreground(TrainingCase& c, int64_t max_locations) {
  c.class_locations.clear();
  if (!c.label.defined()) return;
  const auto lab = c.label[0];
  if (lab.scalar_type() != torch::kUInt8 || lab.dim() != 3) {
    const auto values = std::get<0>(at::_unique(lab.flatten()));
    for (int64_t i = 0; i < values.numel(); ++i) {
      const int64_t v = values[i].item<int64_t>();
      if (v != 0) c.class_locations[v] = thin_locations(torch::nonzero(lab == v).contiguous(), max_locations);
    }
    return;
  }
  // uint8 labels (every preprocessed case): two passes over the voxels instead of a unique and one nonzero per
  // class. A streamed case is indexed each time it is read, on a loader thread beside the model's: this keeps that
  // work small. Rows in the order nonzero gives them (z, y, x row-major).
  const auto contiguous = lab.contiguous();
  const uint8_t* p = contiguous.data_ptr<uint8_t>();
  const int64_t D = lab.size(0), H = lab.size(1), W = lab.size(2), n = D * H * W;
  std::array<int64_t, 256> count{};
  for (int64_t i = 0; i < n; ++i) ++count[p[i]];
  std::array<int64_t*, 256> out{};
  std::map<int64_t, torch::Tensor> locations;
  for (int v = 1; v < 256; ++v)
    if (count[size_t(v)] > 0) {
      auto t = torch::empty({count[size_t(v)], 3}, torch::kLong);
      out[size_t(v)] = t.data_ptr<int64_t>();
      locations[v] = t;
    }
  if (locations.empty()) return;
  int64_t i = 0;
  for (int64_t z = 0; z < D; ++z)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x, ++i) {
        const uint8_t v = p[i];
        if (v == 0) continue;
        int64_t*& o = out[v];
        o[0] = z, o[1] = y, o[2] = x;
        o += 3;
      }
  for (auto& [v, t] : locations) c.class_locations[v] = thin_locations(t, max_locations);
}

torch::Tensor crop_padded(const torch::Tensor& t, const std::vector<int64_t>& start, const std::vector<int64_t>& size) {
  const int64_t nd = t.dim();
  std::vector<int64_t> out_shape(t.sizes().begin(), t.sizes().end());
  bool inside = true;
  for (int d = 0; d < 3; ++d) {
    out_shape[nd - 3 + d] = size[d];
    if (start[d] < 0 || start[d] + size[d] > t.size(nd - 3 + d)) inside = false;
  }
  if (inside) {
    auto v = t;
    for (int d = 0; d < 3; ++d) v = v.narrow(nd - 3 + d, start[d], size[d]);
    return v.clone();
  }
  auto out = torch::zeros(out_shape, t.options());
  auto src = t;
  auto dst = out;
  for (int d = 0; d < 3; ++d) {
    const int64_t dim = nd - 3 + d;
    const int64_t lo = std::max<int64_t>(0, start[d]);
    const int64_t hi = std::min<int64_t>(t.size(dim), start[d] + size[d]);
    if (hi <= lo) return out;
    src = src.narrow(dim, lo, hi - lo);
    dst = dst.narrow(dim, lo - start[d], hi - lo);
  }
  dst.copy_(src);
  return out;
}

torch::Tensor extra_patch(const transforms::ExtraMap& extra, const std::vector<int64_t>& start,
                          const std::vector<int64_t>& region, const std::vector<int64_t>& size) {
  const int64_t f = extra.factor;
  TF_CHECK(f >= 1, InvalidArgument, "patch sampler: extra map factor must be >= 1, got ", f);
  std::vector<int64_t> out(3);
  for (int d = 0; d < 3; ++d) {
    TF_CHECK(size[d] % f == 0, InvalidArgument, "patch sampler: an extra map at factor ", f,
             " needs a patch size divisible by ", f, ", got ", size);
    out[d] = size[d] / f;
  }
  bool aligned = region == size;
  for (int d = 0; d < 3 && aligned; ++d) aligned = start[d] % f == 0;
  if (aligned) {
    // The patch covers whole map voxels: an exact crop.
    std::vector<int64_t> st(3);
    for (int d = 0; d < 3; ++d) st[d] = start[d] / f;
    return crop_padded(extra.data, st, out);
  }
  // Map voxel k covers case voxels [k f, (k + 1) f); patch-map voxel j's centre lies at map index
  // start / f + (j + 0.5) * region / size - 0.5. Crop the map voxels around the patch (one voxel of margin for the
  // interpolation) and sample them trilinearly at those positions (zeros outside the case, like the image).
  std::vector<int64_t> lo(3), n(3);
  std::vector<torch::Tensor> axes(3);
  for (int d = 0; d < 3; ++d) {
    const double step = double(region[d]) / double(size[d]);
    const double first = double(start[d]) / double(f) + 0.5 * step - 0.5;
    const double last = double(start[d]) / double(f) + (double(out[d]) - 0.5) * step - 0.5;
    lo[d] = int64_t(std::floor(first)) - 1;
    n[d] = std::max<int64_t>(2, int64_t(std::ceil(last)) + 2 - lo[d]);
    // align_corners=true: normalised -1 and 1 are the centres of the first and last cropped voxels.
    axes[d] = (torch::arange(out[d], torch::kDouble) * step + (first - double(lo[d]))) * (2.0 / double(n[d] - 1)) - 1.0;
  }
  const auto sub = crop_padded(extra.data, lo, n).to(torch::kFloat).unsqueeze(0);  // [1, C, nz, ny, nx]
  const auto g = torch::meshgrid({axes[0], axes[1], axes[2]}, "ij");
  // grid_sample's last dimension is (x, y, z) = (W, H, D).
  const auto grid = torch::stack({g[2], g[1], g[0]}, -1).unsqueeze(0).to(torch::kFloat);
  namespace F = torch::nn::functional;
  auto y = F::grid_sample(sub, grid,
                          F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(true));
  return y.squeeze(0).to(extra.data.scalar_type());
}

PatchSampler::PatchSampler(PatchSamplerOptions options, transforms::AugmentOptions augment)
    : options_(std::move(options)), augment_(std::move(augment)) {
  TF_CHECK(options_.patch_size.size() == 3, InvalidArgument, "patch sampler: patch_size must have 3 values, got ",
           options_.patch_size);
  for (auto p : options_.patch_size)
    TF_CHECK(p > 0, InvalidArgument, "patch sampler: patch_size must be positive, got ", options_.patch_size);
  TF_CHECK(options_.foreground_fraction >= 0 && options_.foreground_fraction <= 1, InvalidArgument,
           "patch sampler: foreground_fraction must be in [0, 1], got ", options_.foreground_fraction);
}

std::vector<int64_t> PatchSampler::choose_start(const TrainingCase& c, const std::vector<int64_t>& region,
                                                Rng& rng) const {
  const bool force_fg = rng.bernoulli(options_.foreground_fraction);
  std::vector<int64_t> start(3);
  // Draw both candidates so the stream advances identically whatever the case holds.
  const uint64_t pick = rng.next_u64();
  const uint64_t pick_voxel = rng.next_u64();
  std::vector<int64_t> random_start(3);
  for (int d = 0; d < 3; ++d) {
    const int64_t n = c.image.size(1 + d);
    // Positions let the patch stick out by up to half its size when the case is smaller (padded).
    const int64_t lo = std::min<int64_t>(0, (n - region[d]) / 2);
    const int64_t hi = std::max<int64_t>(lo, n - region[d]);
    random_start[d] = lo + rng.below(hi - lo + 1);
  }
  start = random_start;
  if (force_fg && !c.class_locations.empty()) {
    auto it = c.class_locations.begin();
    std::advance(it, int64_t(pick % c.class_locations.size()));
    const auto& loc = it->second;
    const int64_t idx = int64_t(pick_voxel % uint64_t(loc.size(0)));
    for (int d = 0; d < 3; ++d) {
      const int64_t n = c.image.size(1 + d);
      const int64_t centre = loc[idx][d].item<int64_t>();
      const int64_t lo = std::min<int64_t>(0, (n - region[d]) / 2);
      const int64_t hi = std::max<int64_t>(lo, n - region[d]);
      start[d] = std::clamp<int64_t>(centre - region[d] / 2, lo, hi);
    }
  }
  return start;
}

transforms::Sample PatchSampler::crop(const TrainingCase& c, const std::vector<int64_t>& start) const {
  transforms::Sample s;
  const auto& size = options_.patch_size;
  s.image = crop_padded(c.image, start, size);
  if (c.label.defined()) s.label = crop_padded(c.label, start, size);
  for (const auto& [name, extra] : c.extras) s.extras[name] = {extra_patch(extra, start, size, size), extra.factor};
  return s;
}

transforms::Sample PatchSampler::sample(const TrainingCase& c, Rng& rng) const {
  const auto& size = options_.patch_size;
  const bool scale = augment_.spatial && rng.bernoulli(augment_.p_scale);
  const double factor = rng.uniform(augment_.scale_range[0], augment_.scale_range[1]);
  if (!scale) return crop(c, choose_start(c, size, rng));
  // Scaling: crop a region `factor` times the patch and resample it into the patch grid.
  std::vector<int64_t> region(3);
  for (int d = 0; d < 3; ++d) region[d] = std::max<int64_t>(1, int64_t(std::lround(double(size[d]) * factor)));
  const auto start = choose_start(c, region, rng);
  namespace F = torch::nn::functional;
  auto resize = [&](const torch::Tensor& t, const std::vector<int64_t>& out, bool nearest) {
    auto x = t.unsqueeze(0).to(torch::kFloat);
    auto opts = F::InterpolateFuncOptions().size(out);
    opts = nearest ? opts.mode(torch::kNearest) : opts.mode(torch::kTrilinear).align_corners(false);
    auto y = F::interpolate(x, opts).squeeze(0);
    return nearest ? y.to(t.scalar_type()) : y;
  };
  transforms::Sample s;
  s.image = resize(crop_padded(c.image, start, region), size, false);
  if (c.label.defined()) s.label = resize(crop_padded(c.label, start, region), size, true);
  for (const auto& [name, extra] : c.extras) s.extras[name] = {extra_patch(extra, start, region, size), extra.factor};
  return s;
}

}  // namespace teachformer::data
