#include "teachformer/nn/unet_blocks.hpp"

#include <optional>

#include <torch/torch.h>

#include "nn/detail/fast_ops.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/nn/flops.hpp"

namespace teachformer::nn {
namespace {

std::vector<int64_t> vec(const torch::ExpandingArray<3>& a) { return std::vector<int64_t>(a->begin(), a->end()); }

bool all_ones(const torch::ExpandingArray<3>& a) {
  for (int64_t v : *a)
    if (v != 1) return false;
  return true;
}

void check_positive(const torch::ExpandingArray<3>& a, const char* block, const char* option) {
  for (int64_t v : *a) TF_CHECK(v > 0, InvalidArgument, block, ": option ", option, " must be positive, got ", vec(a));
}

bool is_pointwise(const torch::nn::Conv3dImpl& m) {
  for (int64_t k : *m.options.kernel_size())
    if (k != 1) return false;
  return true;
}

// The negative slope of a leaky ReLU (0 for a ReLU); none for any other activation, which the kernels do not fuse.
std::optional<double> rectifier_slope(const torch::nn::AnyModule& act) {
  if (const auto* leaky = act.ptr()->as<torch::nn::LeakyReLUImpl>()) return leaky->options.negative_slope();
  if (act.ptr()->as<torch::nn::ReLUImpl>()) return 0.0;
  return std::nullopt;
}

// norm then act (act may be null: the norm alone). Without grad mode, on a contiguous float32 CPU tensor, an
// instance norm with the input's own statistics followed by a (leaky) ReLU or by nothing is one in-place pass over
// `x`, which must be a fresh tensor (a convolution's output) that nothing else reads.
torch::Tensor norm_act(torch::nn::AnyModule& norm, torch::nn::AnyModule* act, torch::Tensor x) {
  const auto* in = norm.ptr()->as<torch::nn::InstanceNorm3dImpl>();
  // With running statistics the norm uses them in eval mode and updates them in training: LibTorch's operator only.
  if (in && !in->options.track_running_stats() && detail::use_fast_kernels(x) && x.dim() == 5 && x.is_contiguous()) {
    const std::optional<double> slope = act ? rectifier_slope(*act) : std::optional<double>(0.0);
    if (slope) {
      detail::instance_norm_act_(x, in->weight, in->bias, in->options.eps(), act != nullptr, *slope);
      return x;
    }
  }
  x = norm.forward(x);
  return act ? act->forward(x) : x;
}

}  // namespace

// ---------------------------------------------------------------------------------------------- Convolution

ConvolutionImpl::ConvolutionImpl(ConvolutionOptions options_) : options(std::move(options_)) { reset(); }

void ConvolutionImpl::reset() {
  TF_CHECK(options.in_channels() > 0 && options.out_channels() > 0, InvalidArgument,
           "Convolution: channels must be positive, got in ", options.in_channels(), ", out ", options.out_channels());
  check_positive(options.kernel_size(), "Convolution", "kernel_size");
  check_positive(options.strides(), "Convolution", "strides");
  std::vector<int64_t> padding(3), output_padding(3);
  for (int d = 0; d < 3; ++d) {
    const int64_t k = (*options.kernel_size())[d], s = (*options.strides())[d];
    // MONAI's get_padding / get_output_padding.
    TF_CHECK(k - s + 1 >= 0, InvalidArgument, "Convolution: kernel_size ", vec(options.kernel_size()),
             " with strides ", vec(options.strides()), " gives a negative padding");
    padding[d] = (k - s + 1) / 2;
    output_padding[d] = 2 * padding[d] + s - k;
    TF_CHECK(!options.is_transposed() || output_padding[d] >= 0, InvalidArgument, "Convolution: kernel_size ",
             vec(options.kernel_size()), " with strides ", vec(options.strides()),
             " gives a negative output padding");
  }
  conv = nullptr;
  conv_transpose = nullptr;
  if (options.is_transposed()) {
    conv_transpose = register_module(
        "conv", torch::nn::ConvTranspose3d(
                    torch::nn::ConvTranspose3dOptions(options.in_channels(), options.out_channels(),
                                                      options.kernel_size())
                        .stride(options.strides())
                        .padding(torch::ExpandingArray<3>(padding))
                        .output_padding(torch::ExpandingArray<3>(output_padding))
                        .bias(options.bias())));
  } else {
    conv = register_module(
        "conv",
        torch::nn::Conv3d(torch::nn::Conv3dOptions(options.in_channels(), options.out_channels(), options.kernel_size())
                              .stride(options.strides())
                              .padding(torch::ExpandingArray<3>(padding))
                              .bias(options.bias())));
  }
}

torch::Tensor ConvolutionImpl::forward(const torch::Tensor& x) {
  // Without grad mode on float32 CPU tensors, k > 1 convolutions call oneDNN directly: LibTorch 1.13 sends batch-1
  // inputs with few channels (the 2-modality input at 96^3) to a 2.5x slower im2col path. 1^3 and transposed
  // convolutions stay with LibTorch's oneDNN path, which measured faster at these blocks' sizes than the GEMM routes
  // the student uses (docs/benchmarks.md).
  if (conv && !is_pointwise(*conv) && detail::use_fast_kernels(x)) return detail::conv3d(*conv, x);
  return conv ? nn::conv(*conv, x) : nn::conv_transpose(*conv_transpose, x);
}

// --------------------------------------------------------------------------------- UnetBasicBlock / ResBlock

UnetBasicBlockImpl::UnetBasicBlockImpl(UnetBlockOptions options_) : options(std::move(options_)) { reset(); }

void UnetBasicBlockImpl::reset() {
  const int64_t in = options.in_channels(), out = options.out_channels();
  conv1 = register_module(
      "conv1", Convolution(ConvolutionOptions(in, out, options.kernel_size()).strides(options.stride())));
  conv2 = register_module("conv2", Convolution(ConvolutionOptions(out, out, options.kernel_size())));
  lrelu = make_act(options.act_name(), "act_name");
  register_module("lrelu", lrelu.ptr());
  norm1 = make_norm(options.norm_name(), out);
  register_module("norm1", norm1.ptr());
  norm2 = make_norm(options.norm_name(), out);
  register_module("norm2", norm2.ptr());
}

torch::Tensor UnetBasicBlockImpl::forward(const torch::Tensor& x) {
  auto out = norm_act(norm1, &lrelu, conv1->forward(x));
  return norm_act(norm2, &lrelu, conv2->forward(out));
}

UnetResBlockImpl::UnetResBlockImpl(UnetBlockOptions options_) : options(std::move(options_)) { reset(); }

void UnetResBlockImpl::reset() {
  const int64_t in = options.in_channels(), out = options.out_channels();
  conv1 = register_module(
      "conv1", Convolution(ConvolutionOptions(in, out, options.kernel_size()).strides(options.stride())));
  conv2 = register_module("conv2", Convolution(ConvolutionOptions(out, out, options.kernel_size())));
  lrelu = make_act(options.act_name(), "act_name");
  register_module("lrelu", lrelu.ptr());
  norm1 = make_norm(options.norm_name(), out);
  register_module("norm1", norm1.ptr());
  norm2 = make_norm(options.norm_name(), out);
  register_module("norm2", norm2.ptr());
  conv3 = nullptr;
  norm3 = torch::nn::AnyModule();
  if (in != out || !all_ones(options.stride())) {
    conv3 = register_module("conv3", Convolution(ConvolutionOptions(in, out, 1).strides(options.stride())));
    norm3 = make_norm(options.norm_name(), out);
    register_module("norm3", norm3.ptr());
  }
}

torch::Tensor UnetResBlockImpl::forward(const torch::Tensor& x) {
  auto out = norm_act(norm1, &lrelu, conv1->forward(x));
  out = norm_act(norm2, nullptr, conv2->forward(out));
  if (conv3) {
    out.add_(norm_act(norm3, nullptr, conv3->forward(x)));
  } else {
    out.add_(x);
  }
  if (detail::use_fast_kernels(out)) {
    // In place: `out` is this block's own sum.
    if (const auto slope = rectifier_slope(lrelu)) return torch::leaky_relu_(out, *slope);
  }
  return lrelu.forward(out);
}

// ------------------------------------------------------------------------------------------ UnetrBasicBlock

UnetrBasicBlockImpl::UnetrBasicBlockImpl(UnetrBasicBlockOptions options_) : options(std::move(options_)) {
  reset();
}

void UnetrBasicBlockImpl::reset() {
  const auto block = UnetBlockOptions(options.in_channels(), options.out_channels())
                         .kernel_size(options.kernel_size())
                         .stride(options.stride())
                         .norm_name(options.norm_name());
  res = nullptr;
  basic = nullptr;
  if (options.res_block()) {
    res = register_module("layer", UnetResBlock(block));
  } else {
    basic = register_module("layer", UnetBasicBlock(block));
  }
}

torch::Tensor UnetrBasicBlockImpl::forward(const torch::Tensor& x) {
  return res ? res->forward(x) : basic->forward(x);
}

// --------------------------------------------------------------------------------------------- UnetrUpBlock

UnetrUpBlockImpl::UnetrUpBlockImpl(UnetrUpBlockOptions options_) : options(std::move(options_)) { reset(); }

void UnetrUpBlockImpl::reset() {
  const int64_t out = options.out_channels();
  transp_conv = register_module("transp_conv", Convolution(ConvolutionOptions(options.in_channels(), out,
                                                                              options.upsample_kernel_size())
                                                               .strides(options.upsample_kernel_size())
                                                               .is_transposed(true)));
  const auto block = UnetBlockOptions(2 * out, out).kernel_size(options.kernel_size()).norm_name(options.norm_name());
  res = nullptr;
  basic = nullptr;
  if (options.res_block()) {
    res = register_module("conv_block", UnetResBlock(block));
  } else {
    basic = register_module("conv_block", UnetBasicBlock(block));
  }
}

torch::Tensor UnetrUpBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& skip) {
  auto up = transp_conv->forward(x);
  TF_CHECK(skip.dim() == 5 && skip.size(0) == up.size(0) && skip.size(1) == options.out_channels() &&
               skip.sizes().slice(2) == up.sizes().slice(2),
           InvalidArgument, "UnetrUpBlock: skip connection must be [B, ", options.out_channels(), "] + ",
           up.sizes().slice(2).vec(), " to match the upsampled input, got ", skip.sizes().vec());
  auto cat = torch::cat({up, skip}, 1);
  return res ? res->forward(cat) : basic->forward(cat);
}

// ------------------------------------------------------------------------------------------- UnetrPrUpBlock

UnetrPrUpBlockImpl::UnetrPrUpBlockImpl(UnetrPrUpBlockOptions options_) : options(std::move(options_)) { reset(); }

void UnetrPrUpBlockImpl::reset() {
  const int64_t out = options.out_channels(), n = options.num_layer();
  TF_CHECK(n >= 0, InvalidArgument, "UnetrPrUpBlock: option num_layer must be >= 0, got ", n);
  const auto& per_stage = options.upsample_kernel_sizes();
  TF_CHECK(per_stage.empty() || int64_t(per_stage.size()) == n + 1, InvalidArgument,
           "UnetrPrUpBlock: option upsample_kernel_sizes must have num_layer + 1 = ", n + 1, " entries, got ",
           per_stage.size());
  auto up_kernel = [&](int64_t stage) {
    if (per_stage.empty()) return options.upsample_kernel_size();
    return torch::ExpandingArray<3>(std::vector<int64_t>(per_stage[stage].begin(), per_stage[stage].end()));
  };
  auto up_conv = [&](int64_t in, int64_t stage) {
    const auto k = up_kernel(stage);
    return Convolution(ConvolutionOptions(in, out, k).strides(k).is_transposed(true));
  };
  transp_conv_init = register_module("transp_conv_init", up_conv(options.in_channels(), 0));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < n; ++i) {
    auto up = up_conv(out, i + 1);
    if (!options.conv_block()) {
      blocks->push_back(up);
      continue;
    }
    const auto block = UnetBlockOptions(out, out)
                           .kernel_size(options.kernel_size())
                           .stride(options.stride())
                           .norm_name(options.norm_name());
    torch::nn::Sequential seq;
    seq->push_back(up);
    if (options.res_block()) {
      seq->push_back(UnetResBlock(block));
    } else {
      seq->push_back(UnetBasicBlock(block));
    }
    blocks->push_back(seq);
  }
}

torch::Tensor UnetrPrUpBlockImpl::forward(const torch::Tensor& x) {
  auto out = transp_conv_init->forward(x);
  // Looked up through the container (not cached pointers) so that clone() keeps working.
  for (const auto& block : *blocks) {
    if (auto* up = block->as<ConvolutionImpl>()) {
      out = up->forward(out);
    } else {
      out = block->as<torch::nn::SequentialImpl>()->forward(out);
    }
  }
  return out;
}

// -------------------------------------------------------------------------------------------- UnetOutBlock

UnetOutBlockImpl::UnetOutBlockImpl(int64_t in_channels_, int64_t out_channels_)
    : in_channels(in_channels_), out_channels(out_channels_) {
  reset();
}

void UnetOutBlockImpl::reset() {
  conv = register_module("conv", Convolution(ConvolutionOptions(in_channels, out_channels, 1).bias(true)));
}

torch::Tensor UnetOutBlockImpl::forward(const torch::Tensor& x) { return conv->forward(x); }

}  // namespace teachformer::nn
