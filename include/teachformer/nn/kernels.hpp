// The hand-written CPU kernels of the blocks and models (fused norm + activation, pooling, upsampling, direct oneDNN
// convolutions, convolutions as GEMMs, sub-pixel scatter/gather, the student's fused output block) run only on
// float32 CPU tensors without grad mode; everywhere else — CUDA tensors, autocast dtypes, training — the blocks and
// models use the equivalent LibTorch operators. This switch turns the kernels off for a whole process (tests compare
// both paths; TF_NO_FAST_KERNELS=1 does the same from the environment).
#pragma once
#include <torch/types.h>

namespace teachformer::nn {

/// Turns the hand-written kernels on or off.
void set_fast_kernels(bool enabled);
/// Whether they are on (default: on, unless TF_NO_FAST_KERNELS is set to a non-zero value).
bool fast_kernels_enabled();

/// ConvTranspose3d with kernel 2 and stride 2 (no overlap) as one matrix product plus an interleaving copy (at the
/// student's narrow layers about as fast as LibTorch's oneDNN path, and it can fuse the skip addition; at wide
/// full-resolution layers oneDNN's is faster). x [B, I, D, H, W], weight [I, O, 2, 2, 2],
/// bias [O] or undefined -> [B, O, 2D, 2H, 2W]. Differentiable; counts MACs as "conv_transpose". `add_to` (optional,
/// [B, O, 2D, 2H, 2W]) is added to the result; without grad mode the sum is written into add_to's own buffer.
torch::Tensor conv_transpose3d_k2s2(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                    const torch::Tensor& add_to = {});

}  // namespace teachformer::nn
