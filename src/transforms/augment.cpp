#include "teachformer/transforms/augment.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::transforms {

AugmentOptions augment_options_from_json(const nlohmann::json& j) {
  AugmentOptions o;
  JsonReader r(j, "augmentation options");
  r.get("p_flip", o.p_flip).get("p_rot90", o.p_rot90).get("p_scale", o.p_scale).get("scale_range", o.scale_range);
  r.get("p_intensity_scale", o.p_intensity_scale).get("intensity_scale_range", o.intensity_scale_range);
  r.get("p_intensity_shift", o.p_intensity_shift).get("intensity_shift_std", o.intensity_shift_std);
  r.get("p_gamma", o.p_gamma).get("gamma_range", o.gamma_range).get("p_noise", o.p_noise);
  r.get("noise_variance_max", o.noise_variance_max).get("intensity", o.intensity).get("spatial", o.spatial);
  r.finish();
  for (const auto* range : {&o.scale_range, &o.intensity_scale_range, &o.gamma_range})
    TF_CHECK(range->size() == 2 && (*range)[0] > 0 && (*range)[0] <= (*range)[1], ConfigError,
             "augmentation options: ranges must be [min, max] with 0 < min <= max, got ", *range);
  return o;
}

nlohmann::json to_json(const AugmentOptions& o) {
  return {{"p_flip", o.p_flip},
          {"p_rot90", o.p_rot90},
          {"p_scale", o.p_scale},
          {"scale_range", o.scale_range},
          {"p_intensity_scale", o.p_intensity_scale},
          {"intensity_scale_range", o.intensity_scale_range},
          {"p_intensity_shift", o.p_intensity_shift},
          {"intensity_shift_std", o.intensity_shift_std},
          {"p_gamma", o.p_gamma},
          {"gamma_range", o.gamma_range},
          {"p_noise", o.p_noise},
          {"noise_variance_max", o.noise_variance_max},
          {"intensity", o.intensity},
          {"spatial", o.spatial}};
}

torch::Tensor flip_spatial(const torch::Tensor& t, const std::vector<int64_t>& axes) {
  if (axes.empty()) return t;
  std::vector<int64_t> dims;
  for (int64_t a : axes) dims.push_back(t.dim() - 3 + a);
  return t.flip(dims);
}

torch::Tensor rot90_inplane(const torch::Tensor& t, int64_t k) {
  k = ((k % 4) + 4) % 4;
  if (k == 0) return t;
  return torch::rot90(t, k, {t.dim() - 2, t.dim() - 1}).contiguous();
}

void augment_spatial(Sample& s, const AugmentOptions& o, Rng& rng) {
  if (!o.spatial) return;
  // Draw every decision first so the random stream does not depend on which tensors exist.
  std::vector<int64_t> axes;
  for (int64_t a = 0; a < 3; ++a)
    if (rng.bernoulli(o.p_flip)) axes.push_back(a);
  const bool rotate = rng.bernoulli(o.p_rot90);
  const int64_t k = 1 + rng.below(3);
  const bool square = s.image.size(-1) == s.image.size(-2);
  auto apply = [&](torch::Tensor& t) {
    if (!t.defined()) return;
    t = flip_spatial(t, axes);
    if (rotate && square) t = rot90_inplane(t, k);
    t = t.contiguous();
  };
  apply(s.image);
  apply(s.label);
  for (auto& kv : s.extras) apply(kv.second.data);
}

void augment_intensity(Sample& s, const AugmentOptions& o, Rng& rng) {
  if (!o.intensity) return;
  torch::NoGradGuard no_grad;
  auto img = s.image;
  const int64_t channels = img.size(0);
  for (int64_t c = 0; c < channels; ++c) {
    auto ch = img[c];
    if (rng.bernoulli(o.p_intensity_scale))
      ch.mul_(rng.uniform(o.intensity_scale_range[0], o.intensity_scale_range[1]));
    if (rng.bernoulli(o.p_intensity_shift)) ch.add_(rng.normal() * o.intensity_shift_std);
    if (rng.bernoulli(o.p_gamma)) {
      const double gamma = rng.uniform(o.gamma_range[0], o.gamma_range[1]);
      const float lo = ch.min().item<float>();
      const float hi = ch.max().item<float>();
      const float range = hi - lo;
      if (range > 1e-7f) ch.sub_(lo).div_(range).clamp_(0, 1).pow_(gamma).mul_(range).add_(lo);
    }
  }
  if (rng.bernoulli(o.p_noise)) {
    const double var = rng.uniform(0.0, o.noise_variance_max);
    auto gen = at::detail::createCPUGenerator(rng.derive_seed());
    img.add_(at::normal(0.0, std::sqrt(var), img.sizes(), gen));
  }
}

}  // namespace teachformer::transforms
