#include "teachformer/nn/flops.hpp"

#include <torch/torch.h>

namespace teachformer::nn {
namespace {
thread_local FlopCounter* g_active = nullptr;
}

FlopCounter::FlopCounter() : parent_(g_active) { g_active = this; }
FlopCounter::~FlopCounter() { g_active = parent_; }

void FlopCounter::add(const std::string& kind, int64_t macs) {
  total_ += macs;
  by_kind_[kind] += macs;
  if (parent_) parent_->add(kind, macs);
}

void count_macs(const char* kind, int64_t macs) {
  if (g_active) g_active->add(kind, macs);
}

bool counting_flops() { return g_active != nullptr; }

int64_t conv_macs(const torch::Tensor& weight, const torch::Tensor& out) {
  int64_t per_output = 1;
  for (int64_t d = 1; d < weight.dim(); ++d) per_output *= weight.size(d);
  return out.numel() * per_output;
}

int64_t conv_transpose_macs(const torch::Tensor& weight, const torch::Tensor& in) {
  // weight [I, O/groups, k...]: every input element scatters into O/groups * prod(k) outputs.
  int64_t per_input = 1;
  for (int64_t d = 1; d < weight.dim(); ++d) per_input *= weight.size(d);
  return in.numel() * per_input;
}

int64_t linear_macs(int64_t in_features, const torch::Tensor& out) { return out.numel() * in_features; }

int64_t matmul_macs(const torch::Tensor& a, const torch::Tensor& result) { return result.numel() * a.size(-1); }

torch::Tensor conv(torch::nn::Conv3dImpl& m, const torch::Tensor& x) {
  auto y = m.forward(x);
  if (g_active) count_macs("conv", conv_macs(m.weight, y));
  return y;
}

torch::Tensor conv(torch::nn::Conv2dImpl& m, const torch::Tensor& x) {
  auto y = m.forward(x);
  if (g_active) count_macs("conv", conv_macs(m.weight, y));
  return y;
}

torch::Tensor conv_transpose(torch::nn::ConvTranspose3dImpl& m, const torch::Tensor& x) {
  auto y = m.forward(x);
  if (g_active) count_macs("conv_transpose", conv_transpose_macs(m.weight, x));
  return y;
}

torch::Tensor linear(torch::nn::LinearImpl& m, const torch::Tensor& x) {
  auto y = m.forward(x);
  if (g_active) count_macs("linear", linear_macs(m.weight.size(1), y));
  return y;
}

torch::Tensor matmul(const torch::Tensor& a, const torch::Tensor& b) {
  auto y = torch::matmul(a, b);
  if (g_active) count_macs("matmul", matmul_macs(a, y));
  return y;
}

}  // namespace teachformer::nn
