// The convolutional blocks of UNETR / SwinUNETR with MONAI's semantics and attribute names
// (monai.networks.blocks.dynunet_block and unetr_block), so MONAI state_dict keys such as
// "decoder5.conv_block.conv1.conv.weight" or "encoder2.blocks.0.1.conv2.conv.weight" map one to one.
// Every tensor is [B, C, D, H, W]; every block is 3D.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include <torch/expanding_array.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "teachformer/nn/factories.hpp"

namespace teachformer::nn {

/// A list of per-dim sizes [D, H, W].
using Int3List = std::vector<std::array<int64_t, 3>>;

/// Options of Convolution (MONAI's `Convolution(..., conv_only=True)` as built by `get_conv_layer`).
struct ConvolutionOptions {
  ConvolutionOptions(int64_t in_channels, int64_t out_channels, torch::ExpandingArray<3> kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  /// Input channels.
  TORCH_ARG(int64_t, in_channels);
  /// Output channels.
  TORCH_ARG(int64_t, out_channels);
  /// Kernel size per dim (D, H, W).
  TORCH_ARG(torch::ExpandingArray<3>, kernel_size);
  /// Stride per dim; default 1. Padding is MONAI's (k - s + 1) / 2 and, when transposed, output padding
  /// 2 * padding + s - k, so a stride-s block scales the size by exactly s.
  TORCH_ARG(torch::ExpandingArray<3>, strides) = 1;
  /// Learnable bias; default false (MONAI's get_conv_layer default).
  TORCH_ARG(bool, bias) = false;
  /// Transposed convolution (upsampling); default false.
  TORCH_ARG(bool, is_transposed) = false;
};

/// A Conv3d or ConvTranspose3d registered as child "conv" (MONAI's Convolution is a Sequential with a "conv"
/// child), counted by the FLOP counter. forward: [B, in, D, H, W] -> [B, out, D', H', W'].
/// Without grad mode on float32 CPU tensors, k > 1 convolutions call oneDNN directly and the blocks below fuse an
/// instance norm with its activation (nn/kernels.hpp switches these kernels off).
class ConvolutionImpl : public torch::nn::Cloneable<ConvolutionImpl> {
 public:
  explicit ConvolutionImpl(ConvolutionOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// The options this block was built with.
  ConvolutionOptions options;
  /// The convolution when not transposed (else empty).
  torch::nn::Conv3d conv{nullptr};
  /// The transposed convolution when transposed (else empty).
  torch::nn::ConvTranspose3d conv_transpose{nullptr};
};
TORCH_MODULE(Convolution);

/// Options shared by UnetBasicBlock and UnetResBlock (MONAI's dynunet blocks).
struct UnetBlockOptions {
  UnetBlockOptions(int64_t in_channels, int64_t out_channels) : in_channels_(in_channels), out_channels_(out_channels) {}
  /// Input channels.
  TORCH_ARG(int64_t, in_channels);
  /// Output channels.
  TORCH_ARG(int64_t, out_channels);
  /// Kernel size of both convolutions; default 3.
  TORCH_ARG(torch::ExpandingArray<3>, kernel_size) = 3;
  /// Stride of the first convolution (and of the residual 1x1x1 projection); default 1.
  TORCH_ARG(torch::ExpandingArray<3>, stride) = 1;
  /// Normalisation after each convolution (see make_norm); default "instance".
  TORCH_ARG(LayerSpec, norm_name) = "instance";
  /// Activation (see make_act); default ["leakyrelu", {"negative_slope": 0.01, "inplace": true}].
  TORCH_ARG(LayerSpec, act_name) = LayerSpec("leakyrelu", {{"negative_slope", 0.01}, {"inplace", true}});
};

/// conv1 -> norm1 -> act -> conv2 -> norm2 -> act (MONAI's UnetBasicBlock; children conv1, conv2, lrelu, norm1,
/// norm2).
class UnetBasicBlockImpl : public torch::nn::Cloneable<UnetBasicBlockImpl> {
 public:
  explicit UnetBasicBlockImpl(UnetBlockOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// The options this block was built with.
  UnetBlockOptions options;
  /// The two convolutions (no bias).
  Convolution conv1{nullptr}, conv2{nullptr};
  /// Activation and the normalisations after conv1 and conv2.
  torch::nn::AnyModule lrelu, norm1, norm2;
};
TORCH_MODULE(UnetBasicBlock);

/// Residual block: act(norm2(conv2(act(norm1(conv1(x))))) + residual), where the residual is
/// norm3(conv3(x)) with a 1x1x1 conv3 when channels or stride change, x otherwise (MONAI's UnetResBlock;
/// children conv1, conv2, lrelu, norm1, norm2 and, when projecting, conv3, norm3).
class UnetResBlockImpl : public torch::nn::Cloneable<UnetResBlockImpl> {
 public:
  explicit UnetResBlockImpl(UnetBlockOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// The options this block was built with.
  UnetBlockOptions options;
  /// The two convolutions and the 1x1x1 residual projection (empty when the residual is x itself).
  Convolution conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  /// Activation and the normalisations after conv1, conv2 and conv3 (norm3 empty without conv3).
  torch::nn::AnyModule lrelu, norm1, norm2, norm3;
};
TORCH_MODULE(UnetResBlock);

/// Options of UnetrBasicBlock.
struct UnetrBasicBlockOptions {
  UnetrBasicBlockOptions(int64_t in_channels, int64_t out_channels)
      : in_channels_(in_channels), out_channels_(out_channels) {}
  /// Input channels.
  TORCH_ARG(int64_t, in_channels);
  /// Output channels.
  TORCH_ARG(int64_t, out_channels);
  /// Kernel size; default 3.
  TORCH_ARG(torch::ExpandingArray<3>, kernel_size) = 3;
  /// Stride; default 1.
  TORCH_ARG(torch::ExpandingArray<3>, stride) = 1;
  /// Normalisation; default "instance".
  TORCH_ARG(LayerSpec, norm_name) = "instance";
  /// UnetResBlock (true) or UnetBasicBlock (false) as child "layer"; default false (MONAI's default).
  TORCH_ARG(bool, res_block) = false;
};

/// MONAI's UnetrBasicBlock: one UnetResBlock or UnetBasicBlock registered as "layer".
class UnetrBasicBlockImpl : public torch::nn::Cloneable<UnetrBasicBlockImpl> {
 public:
  explicit UnetrBasicBlockImpl(UnetrBasicBlockOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// The options this block was built with.
  UnetrBasicBlockOptions options;
  /// The child "layer": exactly one of them is non-empty (res when res_block).
  UnetResBlock res{nullptr};
  /// See res.
  UnetBasicBlock basic{nullptr};
};
TORCH_MODULE(UnetrBasicBlock);

/// Options of UnetrUpBlock.
struct UnetrUpBlockOptions {
  UnetrUpBlockOptions(int64_t in_channels, int64_t out_channels)
      : in_channels_(in_channels), out_channels_(out_channels) {}
  /// Channels of the input to upsample.
  TORCH_ARG(int64_t, in_channels);
  /// Output channels; the skip connection must have this many channels too.
  TORCH_ARG(int64_t, out_channels);
  /// Kernel size of the convolution block; default 3.
  TORCH_ARG(torch::ExpandingArray<3>, kernel_size) = 3;
  /// Kernel size and stride of the transposed convolution (the upsampling factor per dim); default 2.
  TORCH_ARG(torch::ExpandingArray<3>, upsample_kernel_size) = 2;
  /// Normalisation; default "instance".
  TORCH_ARG(LayerSpec, norm_name) = "instance";
  /// UnetResBlock (true) or UnetBasicBlock (false) as "conv_block"; default false.
  TORCH_ARG(bool, res_block) = false;
};

/// MONAI's UnetrUpBlock: out = conv_block(cat(transp_conv(x), skip)). forward(x [B, in, d, h, w],
/// skip [B, out, d*s, h*s, w*s]) -> [B, out, d*s, h*s, w*s].
class UnetrUpBlockImpl : public torch::nn::Cloneable<UnetrUpBlockImpl> {
 public:
  explicit UnetrUpBlockImpl(UnetrUpBlockOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& skip);
  /// The options this block was built with.
  UnetrUpBlockOptions options;
  /// The upsampling transposed convolution.
  Convolution transp_conv{nullptr};
  /// The child "conv_block": exactly one of them is non-empty (res when res_block).
  UnetResBlock res{nullptr};
  /// See res.
  UnetBasicBlock basic{nullptr};
};
TORCH_MODULE(UnetrUpBlock);

/// Options of UnetrPrUpBlock.
struct UnetrPrUpBlockOptions {
  UnetrPrUpBlockOptions(int64_t in_channels, int64_t out_channels, int64_t num_layer)
      : in_channels_(in_channels), out_channels_(out_channels), num_layer_(num_layer) {}
  /// Input channels (the ViT hidden size).
  TORCH_ARG(int64_t, in_channels);
  /// Output channels.
  TORCH_ARG(int64_t, out_channels);
  /// Number of upsampling blocks after the initial transposed convolution (>= 0).
  TORCH_ARG(int64_t, num_layer);
  /// Kernel size of the convolution blocks; default 3.
  TORCH_ARG(torch::ExpandingArray<3>, kernel_size) = 3;
  /// Stride of the convolution blocks; default 1.
  TORCH_ARG(torch::ExpandingArray<3>, stride) = 1;
  /// Kernel size and stride of every transposed convolution; default 2 (MONAI semantics).
  TORCH_ARG(torch::ExpandingArray<3>, upsample_kernel_size) = 2;
  /// Optional per-stage override of upsample_kernel_size: num_layer + 1 entries (transp_conv_init first);
  /// empty (default) = upsample_kernel_size everywhere. Lets UNETR upsample anisotropic patch grids.
  TORCH_ARG(Int3List, upsample_kernel_sizes) = {};
  /// Normalisation; default "instance".
  TORCH_ARG(LayerSpec, norm_name) = "instance";
  /// Follow each transposed convolution with a convolution block; default false.
  TORCH_ARG(bool, conv_block) = false;
  /// The convolution block is a UnetResBlock (true) or UnetBasicBlock (false); default false.
  TORCH_ARG(bool, res_block) = false;
};

/// MONAI's UnetrPrUpBlock: transp_conv_init, then `blocks` (a ModuleList of Sequential(transposed conv,
/// conv block) when conv_block, of transposed convs otherwise). Upsamples by the product of the strides.
class UnetrPrUpBlockImpl : public torch::nn::Cloneable<UnetrPrUpBlockImpl> {
 public:
  explicit UnetrPrUpBlockImpl(UnetrPrUpBlockOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// The options this block was built with.
  UnetrPrUpBlockOptions options;
  /// The first transposed convolution (in_channels -> out_channels).
  Convolution transp_conv_init{nullptr};
  /// The num_layer upsampling stages, registered as MONAI names them ("blocks.<i>[.0|.1]").
  torch::nn::ModuleList blocks{nullptr};
};
TORCH_MODULE(UnetrPrUpBlock);

/// MONAI's UnetOutBlock: a 1x1x1 convolution with bias registered as "conv" (keys "conv.conv.weight/bias").
class UnetOutBlockImpl : public torch::nn::Cloneable<UnetOutBlockImpl> {
 public:
  UnetOutBlockImpl(int64_t in_channels, int64_t out_channels);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// Input and output channels.
  int64_t in_channels, out_channels;
  /// The 1x1x1 convolution with bias.
  Convolution conv{nullptr};
};
TORCH_MODULE(UnetOutBlock);

}  // namespace teachformer::nn
