// Memory-bound CPU kernels for inference (no grad mode): they write in place or into a given output and run
// over (batch x channel) rows with at::parallel_for. Every function here has a differentiable torch
// equivalent that the models use in grad mode; tests compare the two.
#pragma once
#include <array>

#include <torch/nn/modules/conv.h>
#include <torch/types.h>

namespace teachformer::nn::detail {

/// True when the hand-written CPU kernels below may run on `x`: no grad mode, a float32 CPU tensor, and the kernels
/// not switched off. Elsewhere (CUDA tensors, other dtypes such as an autocast bfloat16, grad mode) the models use
/// the equivalent LibTorch operators.
bool use_fast_kernels(const torch::Tensor& x);
/// (nn/kernels.hpp switches them on and off.)

/// In place: x = act((x - mean) * rsqrt(var + eps) * weight + bias) with mean/var (biased) over D, H, W of each
/// (sample, channel); act = leaky ReLU with `negative_slope` (0 = ReLU) when `activate`, else identity.
/// x [B, C, D, H, W] contiguous float32; weight/bias [C] or undefined (no affine).
void instance_norm_act_(torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, double eps,
                        bool activate, double negative_slope = 0.0);

/// 3D convolution (groups 1, dilation 1) that counts its MACs as "conv". 1^3 convolutions run as GEMMs (oneDNN 2.6 is
/// ~20x slower on the student's; callers with wide full-resolution layers keep LibTorch's path for them). Without
/// grad mode, k2 s2 convolutions run as a space-to-depth gather + GEMM and the rest call oneDNN directly (LibTorch 1.13
/// otherwise sends batch-1 inputs with C x D x H <= 20480 to a much slower im2col path). x [B, I, D, H, W],
/// weight [O, I, k, k, k], bias [O] or undefined.
torch::Tensor conv3d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     torch::IntArrayRef stride, torch::IntArrayRef padding);
/// conv3d with a module's weight, bias, stride and padding (zero padding only).
torch::Tensor conv3d(torch::nn::Conv3dImpl& module, const torch::Tensor& x);

/// 2x2x2 max pooling, stride 2: x [B, C, D, H, W] (even sizes) -> [B, C, D/2, H/2, W/2]. float32.
torch::Tensor max_pool2(const torch::Tensor& x);

/// Trilinear x2 upsampling with align_corners = false (as F.interpolate(scale_factor=2, mode='trilinear')):
/// x [B, C, D, H, W] -> [B, C, 2D, 2H, 2W]. float32.
torch::Tensor upsample_trilinear2(const torch::Tensor& x);

/// Sub-pixel scatter of one phase: out[b, c, 2z + pd, 2y + ph, 2x + pw] = phase[b, c, z, y, x].
/// out [B, C, 2D, 2H, 2W] and phase [B, C, D, H, W] need unit stride in the last dim (views such as a channel slice of
/// a buffer are fine). float32, no autograd. With `accumulate` the phase is added to what `out` holds.
void scatter_phase_(torch::Tensor& out, const torch::Tensor& phase, int pd, int ph, int pw, bool accumulate = false);


/// Writes ConvTranspose3d(k3, s2, p1, output_padding 1)(x) into `out` [B, O, 2D, 2H, 2W] (may be a view, e.g.
/// the first channels of a concatenation buffer) as eight sub-pixel phase convolutions. Differentiable when `out` is
/// a fresh tensor. weight [I, O, 3, 3, 3], bias [O] or undefined. Counts MACs as "conv_transpose".
void conv_transpose3d_k3s2_into(torch::Tensor out, const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias);

/// y [B, (C, kd, kh, kw), d h w] (the 8 sub-voxel phases of each voxel, as a k2 s2 transposed convolution's GEMM
/// gives them) -> [B, C, 2d, 2h, 2w]. Without grad mode a scatter kernel replaces the 8-dim permute copy (whose
/// innermost run has length 2). With `onto` the interleaved result is added to it; without grad mode, when `onto` is a
/// contiguous float32 tensor of the result's shape, the sum is written into onto's buffer and returned (a decoder's
/// skip addition without a separate pass over the widest feature map).
torch::Tensor interleave_phases(const torch::Tensor& y, int64_t b, int64_t c, int64_t d, int64_t h, int64_t w,
                                const torch::Tensor& onto = {});

}  // namespace teachformer::nn::detail
