#include "teachformer/models/seg_model.hpp"

#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::models {

void Taps::set(const std::string& name, torch::Tensor value) {
  for (auto& item : items_) {
    if (item.first == name) {
      item.second = std::move(value);
      return;
    }
  }
  items_.emplace_back(name, std::move(value));
}

bool Taps::contains(const std::string& name) const {
  for (const auto& item : items_)
    if (item.first == name) return true;
  return false;
}

const torch::Tensor& Taps::at(const std::string& name) const {
  for (const auto& item : items_)
    if (item.first == name) return item.second;
  TF_THROW(InvalidArgument, "no tap named '", name, "'; available: ", names());
}

std::vector<std::string> Taps::names() const {
  std::vector<std::string> out;
  for (const auto& item : items_) out.push_back(item.first);
  return out;
}

void SegmentationModelImpl::check_input(const torch::Tensor& x) const {
  const ModelSpec& s = spec();
  TF_CHECK(x.dim() == 5, InvalidArgument, s.key, ": input must be [B, C, D, H, W], got shape ", x.sizes().vec());
  TF_CHECK(x.size(1) == s.in_channels, InvalidArgument, s.key, ": input has ", x.size(1),
           " channels but option in_channels is ", s.in_channels, " (input shape ", x.sizes().vec(), ")");
  for (int d = 0; d < 3; ++d) {
    const int64_t n = x.size(2 + d);
    const int64_t div = s.size_divisor.size() == 3 ? s.size_divisor[d] : 1;
    TF_CHECK(n % div == 0 && n > 0, InvalidArgument, s.key, ": input spatial shape ", x.sizes().slice(2).vec(),
             " must be divisible by ", div, " in every dim (dim ", d, " is ", n, ")");
  }
  if (!s.fixed_input_size.empty()) {
    TF_CHECK(x.sizes().slice(2).vec() == s.fixed_input_size, InvalidArgument, s.key, ": input spatial shape ",
             x.sizes().slice(2).vec(), " must equal option img_size ", s.fixed_input_size,
             " (the position embedding is built for that size)");
  }
}

std::vector<torch::Tensor> all_outputs(const SegOutput& output) {
  std::vector<torch::Tensor> outs{output.logits};
  outs.insert(outs.end(), output.deep_supervision.begin(), output.deep_supervision.end());
  return outs;
}

int64_t count_parameters(const torch::nn::Module& module, bool trainable_only) {
  int64_t n = 0;
  for (const auto& p : module.parameters())
    if (!trainable_only || p.requires_grad()) n += p.numel();
  return n;
}

}  // namespace teachformer::models
