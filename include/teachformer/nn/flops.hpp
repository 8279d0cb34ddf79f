// Analytic FLOP counting. Models route their convolutions, linear layers and matmuls through the counted
// ops below; while a FlopCounter is alive on the current thread each op adds its multiply-accumulates.
// Convention: GFLOPs = 2 * MACs / 1e9 (one multiply plus one add), counting conv, transposed conv, linear
// and matmul/bmm only (norms, activations, pooling and interpolation are ignored, as fvcore/ptflops do).
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

namespace teachformer::nn {

/// RAII: counts MACs of the counted ops run on this thread during its lifetime. Nestable.
class FlopCounter {
 public:
  FlopCounter();
  ~FlopCounter();
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;
  /// Multiply-accumulates counted so far.
  int64_t macs() const { return total_; }
  /// 2 * MACs / 1e9.
  double gflops() const { return 2.0 * double(total_) / 1e9; }
  /// MACs by op kind ("conv", "conv_transpose", "linear", "matmul").
  const std::map<std::string, int64_t>& by_kind() const { return by_kind_; }
  /// Adds MACs (used by the counted ops; also for custom ops).
  void add(const std::string& kind, int64_t macs);

 private:
  FlopCounter* parent_;
  int64_t total_ = 0;
  std::map<std::string, int64_t> by_kind_;
};

/// Adds MACs to the active counter(s) on this thread; no-op when none is active.
void count_macs(const char* kind, int64_t macs);
/// True when a FlopCounter is alive on this thread.
bool counting_flops();

/// MACs of a convolution producing `out` with weight [O, I/groups, k...]: numel(out) * I/groups * prod(k).
int64_t conv_macs(const torch::Tensor& weight, const torch::Tensor& out);
/// MACs of a transposed convolution reading `in` with weight [I, O/groups, k...]: numel(in) * O/groups * prod(k).
int64_t conv_transpose_macs(const torch::Tensor& weight, const torch::Tensor& in);
/// MACs of a linear layer producing `out` from `in_features` inputs: numel(out) * in_features.
int64_t linear_macs(int64_t in_features, const torch::Tensor& out);
/// MACs of (batched) a @ b: numel(result) * a.size(-1).
int64_t matmul_macs(const torch::Tensor& a, const torch::Tensor& result);

/// Counted forward of the standard modules and of matmul.
torch::Tensor conv(torch::nn::Conv3dImpl& m, const torch::Tensor& x);
torch::Tensor conv(torch::nn::Conv2dImpl& m, const torch::Tensor& x);
torch::Tensor conv_transpose(torch::nn::ConvTranspose3dImpl& m, const torch::Tensor& x);
torch::Tensor linear(torch::nn::LinearImpl& m, const torch::Tensor& x);
torch::Tensor matmul(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace teachformer::nn
