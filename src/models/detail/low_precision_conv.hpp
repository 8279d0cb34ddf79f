// A 3D convolution run through oneDNN at bfloat16 or int8 for inference (no grad, float32 CPU tensors in and out).
// Built only when oneDNN's headers are found (libdnnl-dev, the library Debian's LibTorch links); otherwise every
// constructor throws an InvalidArgument that says so.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <torch/types.h>

#include "teachformer/models/low_precision.hpp"

namespace teachformer::models::detail {

/// Conv3d (groups 1, dilation 1, zero padding, no bias) at `precision` (kBFloat16 or kInt8).
/// int8: activations with one scale per tensor: given `input_min`, asymmetric u8 over [min(input_min, 0),
/// input_absmax] (255 steps and a zero point: the outputs of a leaky ReLU, barely negative, get twice the resolution
/// of a symmetric code), else symmetric s8, 127 / `input_absmax`; values beyond the range saturate. s8 weights with
/// one scale per output channel (127 / max |w| of that channel); the float32 output undoes both.
/// bf16: input and weights rounded to bfloat16, products accumulated in float32.
/// The input is reordered into the primitive's own (channels-last, blocked) layout and the output back to NCDHW:
/// oneDNN's int8 kernels on plain NCDHW tensors are its reference kernels, 50-100x slower.
/// Primitives are made once per input shape and kept. Thread-safe.
class LowPrecisionConv3d {
 public:
  /// weight [O, I, k, k, k] float32 (copied; later changes to the tensor are not seen).
  LowPrecisionConv3d(const torch::Tensor& weight, std::vector<int64_t> stride, std::vector<int64_t> padding,
                     Precision precision, float input_absmax = 0.0f, std::optional<float> input_min = std::nullopt);
  ~LowPrecisionConv3d();
  /// x [B, I, D, H, W] float32 -> [B, O, D', H', W'] float32 (NCDHW, contiguous).
  torch::Tensor forward(const torch::Tensor& x);
  Precision precision() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// True when this build has the oneDNN path.
bool onednn_available();

/// The instruction set oneDNN dispatches to on this CPU ("avx512_core_bf16", "avx2_vnni", ...), or "" without oneDNN.
std::string onednn_isa();

}  // namespace teachformer::models::detail
