// TeachFormer-S: the slim hybrid CNN-transformer student, designed for CPU inference on multimodal 3D volumes.
//
// Layout (S = number of stages = channels.size(), default 4; every resolution is relative to the input):
//   stem       Conv3d(in_channels -> channels[0], k3, s2, p1) + norm + act: the modalities are fused in the very first
//              convolution and the network leaves full resolution at once (full-resolution convolutions dominate
//              CPU time).
//   encoder    stage i (1/2^(i+1)): stage 0 is the stem; stage i > 0 downsamples with Conv3d(k2, s2) + norm + act;
//              then depths[i] residual units x + act(norm(Conv3d 3^3(x))).
//   bottleneck at 1/2^S (1/16 by default): a depthwise 3^3 position convolution (x + dwconv(x), so no fixed input
//              size), then transformer_depth pre-norm transformer blocks over the voxels of that grid as tokens
//              (multi-head softmax attention + GELU MLP).
//   decoder    for i = S-2 .. 0: ConvTranspose3d(k2, s2) to channels[i], + the encoder skip of stage i (added),
//              then decoder_depth units act(norm(Conv3d 3^3)).
//   output     ConvTranspose3d(channels[0] -> head_channels, k2, s2) + act at full resolution, then a 1^3 conv over
//              [those features, the raw input channels] -> out_channels logits.
//   deep supervision: 1^3 conv heads on decoder stages at 1/2 and 1/4 (and further ones with deep_supervision > 2).
// All channel widths default to multiples of 16 (oneDNN's AVX-512 blocking). Inputs of any size divisible by 2^S.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "teachformer/models/low_precision.hpp"
#include "teachformer/models/seg_model.hpp"

namespace teachformer::models {

namespace detail {
class LowPrecisionConv3d;
}

/// Options of TeachFormerS. Defaults are the "small" preset (985,266 parameters with 2 input channels and 2
/// classes).
struct TeachFormerSOptions {
  /// in_channels = modalities (fused in the first conv), out_channels = classes incl. background.
  TeachFormerSOptions(int64_t in_channels, int64_t out_channels);
  /// Input channels (modalities). Required.
  TORCH_ARG(int64_t, in_channels);
  /// Output channels (classes including background); logits, no softmax. Required.
  TORCH_ARG(int64_t, out_channels);
  /// Widths of the stages at 1/2, 1/4, ..., 1/2^S; the last one is the transformer width. Default [16, 32, 64, 128].
  TORCH_ARG(std::vector<int64_t>, channels) = std::vector<int64_t>{16, 32, 64, 128};
  /// Residual 3^3 conv units per encoder stage (same length as channels). Default [0, 1, 1, 0].
  TORCH_ARG(std::vector<int64_t>, depths) = std::vector<int64_t>{0, 1, 1, 0};
  /// 3^3 conv units per decoder stage (after adding the skip), except the finest one. Default 1.
  TORCH_ARG(int64_t, decoder_depth) = 1;
  /// 3^3 conv units of the finest decoder stage (1/2 resolution): the widest grid after the stem, where one unit
  /// costs about a third of the network's multiply-adds and several passes over its largest feature map. Default 0
  /// (its detail comes from the stem skip, the learned x2 upsampling and the raw-input skip of the output block).
  TORCH_ARG(int64_t, fine_decoder_depth) = 0;
  /// Transformer blocks at the deepest stage. Default 4.
  TORCH_ARG(int64_t, transformer_depth) = 4;
  /// Attention heads; must divide channels.back(). Default 4.
  TORCH_ARG(int64_t, heads) = 4;
  /// MLP hidden width = mlp_ratio x channels.back(). Default 2.
  TORCH_ARG(int64_t, mlp_ratio) = 2;
  /// Add a depthwise 3^3 convolution of the token grid before the transformer (conditional position encoding).
  /// Default true.
  TORCH_ARG(bool, pos_conv) = true;
  /// Width of the full-resolution features of the output block. Default 8.
  TORCH_ARG(int64_t, head_channels) = 8;
  /// Feed the raw input channels to the final 1^3 conv (full-resolution intensity detail). Default true.
  TORCH_ARG(bool, input_skip) = true;
  /// Number of deep-supervision heads, on decoder stages at 1/2, 1/4, ... (0 to S-1). Default 2.
  TORCH_ARG(int64_t, deep_supervision) = 2;
  /// Convolution normalisation: "instance" (affine, as nnU-Net; works at batch 1-2) or "batch". Default "instance".
  TORCH_ARG(std::string, norm) = "instance";
  /// Negative slope of the leaky ReLU after every normalised conv (0 = ReLU). Default 0.01.
  TORCH_ARG(double, negative_slope) = 0.01;
  /// Dropout of the attention output and the MLP (training only). Default 0.
  TORCH_ARG(double, dropout) = 0.0;
  /// Epsilon of every normalisation (instance/batch/layer). Default 1e-5.
  TORCH_ARG(double, norm_eps) = 1e-5;
};

/// Names of the presets: "tiny", "small" (the defaults), "base".
std::vector<std::string> teachformer_s_presets();
/// The options of a preset (InvalidArgument listing the presets for an unknown name).
TeachFormerSOptions teachformer_s_preset(const std::string& name, int64_t in_channels, int64_t out_channels);
/// Options -> JSON with every option (no "preset" key).
nlohmann::json to_json(const TeachFormerSOptions& options);
/// JSON -> options (strict: unknown keys are ConfigError). A "preset" key ("tiny", "small", "base") selects the base
/// values, which the other keys then override; in_channels / out_channels default to 2 / 2. Validated.
TeachFormerSOptions teachformer_s_options_from_json(const nlohmann::json& json);
/// Throws InvalidArgument naming the option, its value and the rule when the options cannot build a model.
void validate(const TeachFormerSOptions& options);

namespace teachformer_s {

/// Affine parameters of an InstanceNorm3d (state_dict "weight", "bias", [C]; no running statistics).
class InstanceNormAffineImpl : public torch::nn::Cloneable<InstanceNormAffineImpl> {
 public:
  /// channels = C.
  explicit InstanceNormAffineImpl(int64_t channels);
  /// Creates and registers the parameters and children (LibTorch Cloneable contract).
  void reset() override;
  torch::Tensor weight;  ///< scale [C], initialised to 1
  torch::Tensor bias;    ///< shift [C], initialised to 0

 private:
  int64_t channels_;
};
TORCH_MODULE(InstanceNormAffine);

/// Conv3d (no bias) + normalisation + leaky ReLU. state_dict: conv.weight [O, I, k, k, k], norm.weight/bias [O]
/// (+ norm.running_mean/running_var/num_batches_tracked with norm "batch").
class ConvNormActImpl : public torch::nn::Cloneable<ConvNormActImpl> {
 public:
  /// kernel k, stride s, padding p; `options` supplies norm, norm_eps and negative_slope.
  ConvNormActImpl(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding,
                  const TeachFormerSOptions& options);
  /// Creates and registers the parameters and children (LibTorch Cloneable contract).
  void reset() override;
  /// act(norm(conv(x))): x [B, I, D, H, W] -> [B, O, D', H', W'].
  torch::Tensor forward(const torch::Tensor& x);
  /// act(norm(conv(x)) + x) (a residual unit; needs I == O and stride 1).
  torch::Tensor forward_residual(const torch::Tensor& x);
  torch::nn::Conv3d conv = nullptr;                  ///< the convolution, no bias
  InstanceNormAffine instance_norm = nullptr;        ///< registered as "norm" with norm "instance"
  torch::nn::BatchNorm3d batch_norm = nullptr;       ///< registered as "norm" with norm "batch"

  /// True for the layers a low precision runs (see the TeachFormerSImpl comment).
  bool low_precision_capable() const;
  /// From now on the convolution runs at `precision` in no-grad CPU float32 forwards (grad mode and other devices
  /// keep float32); int8 needs the calibrated largest |input| > 0 and, for asymmetric activations, the smallest
  /// input. Reads the current weights. fp32 drops the kernel.
  void set_precision(Precision precision, float input_absmax = 0.0f, std::optional<float> input_min = std::nullopt);
  /// While on, forward calls record the largest |input| and the smallest input (observed_absmax(), -1 before any;
  /// observed_min()).
  void observe(bool on);
  float observed_absmax() const { return observed_absmax_; }
  float observed_min() const { return observed_min_; }

 private:
  torch::Tensor normalize(torch::Tensor y, bool activate);
  torch::Tensor convolve(const torch::Tensor& x);
  int64_t in_, out_, kernel_, stride_, padding_;
  TeachFormerSOptions options_;
  std::shared_ptr<detail::LowPrecisionConv3d> low_;
  bool observing_ = false;
  float observed_absmax_ = -1.0f;
  float observed_min_ = 0.0f;
};
TORCH_MODULE(ConvNormAct);

/// Pre-norm transformer block over tokens [B, N, C]: x + proj(attn(LN(x))), then x + MLP(LN(x)) with GELU.
/// state_dict: norm1, attn.qkv (bias), attn.proj, norm2, mlp.fc1, mlp.fc2.
class TransformerBlockImpl : public torch::nn::Cloneable<TransformerBlockImpl> {
 public:
  /// Token width dim, heads (dividing dim), MLP width, dropout (attention output and MLP), LayerNorm eps.
  TransformerBlockImpl(int64_t dim, int64_t heads, int64_t mlp_dim, double dropout, double eps);
  /// Creates and registers the parameters and children (LibTorch Cloneable contract).
  void reset() override;
  /// tokens [B, N, dim] -> [B, N, dim]; `probs` (optional) receives the attention [B, heads, N, N].
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* probs = nullptr);
  /// Pre-norms of the attention and of the MLP (LayerNorm(dim, eps)).
  torch::nn::LayerNorm norm1 = nullptr, norm2 = nullptr;
  /// qkv: dim -> 3 dim (bias), [q | k | v] with heads as the outer split of each; proj: dim -> dim;
  /// fc1: dim -> mlp_dim, fc2: mlp_dim -> dim (GELU between).
  torch::nn::Linear qkv = nullptr, proj = nullptr, fc1 = nullptr, fc2 = nullptr;

 private:
  int64_t dim_, heads_, mlp_dim_;
  double dropout_, eps_;
};
TORCH_MODULE(TransformerBlock);

}  // namespace teachformer_s

/// TeachFormer-S. forward(x [B, in_channels, D, H, W], every size divisible by 2^S) returns
///  - logits [B, out_channels, D, H, W];
///  - deep_supervision: [1/2, 1/4, ...] logits from 1^3 heads on the decoder stages (deep_supervision of them);
///  - taps (features): `encoder_coarse` = the transformer output at 1/2^S [B, channels.back(), D/2^S, ...]
///    (deepest stage); `decoder_fine` = decoder stage D_{n-1} at 1/2 [B, channels[0], D/2, H/2, W/2] (input of the
///    output block, which is the last decoder stage D_n: it upsamples to full resolution in phase space, so its
///    features never exist as a tensor and there is no `decoder_last` tap);
///  - taps (attention): "attention.block{k}" [B, heads, N, N] per transformer block, N = voxels of the 1/2^S grid;
///  - taps (intermediates): "stem", "encoder{i}" (stage outputs, the skips), "tokens" (after the position conv, as
///    [B, N, C]), "decoder{i}" (decoder stage outputs at 1/2^(i+1)).
/// Low precision (LowPrecisionModel): bf16 and int8 run the 3^3 stride-1 ConvNormAct units and the k2 s2
/// downsamplings but the first through oneDNN (the stem, the first downsampling, the transformer, the transposed
/// convolutions and the output block stay float32); the calibration keys are their conv prefixes ("down.1.conv",
/// "encoder.1.0.conv", "decoder.1.0.conv"; an older calibration's "down.0.conv" is not used).
class TeachFormerSImpl : public SegmentationModelImpl, public LowPrecisionModel {
 public:
  /// Builds the model; throws InvalidArgument for invalid options (see validate).
  explicit TeachFormerSImpl(const TeachFormerSOptions& options);
  SegOutput forward(const torch::Tensor& x, const TapRequest& request = {}) override;
  const ModelSpec& spec() const override { return spec_; }
  /// The options the model was built with.
  const TeachFormerSOptions& options() const { return options_; }
  void start_calibration() override;
  Int8Calibration finish_calibration() override;
  void set_precision(Precision precision, const Int8Calibration* calibration = nullptr) override;
  Precision precision() const override { return precision_; }

  teachformer_s::ConvNormAct stem = nullptr;  ///< in_channels -> channels[0], k3 s2
  torch::nn::ModuleList down = nullptr;       ///< stage i >= 1: ConvNormAct k2 s2 (index i - 1)
  torch::nn::ModuleList encoder = nullptr;    ///< stage i: ModuleList of depths[i] ConvNormAct 3^3 residual units
  torch::nn::Conv3d pos_conv = nullptr;       ///< depthwise 3^3 (groups = channels.back()), or null
  torch::nn::ModuleList transformer = nullptr;  ///< TransformerBlock x transformer_depth
  torch::nn::LayerNorm transformer_norm = nullptr;  ///< final LayerNorm of the tokens
  torch::nn::ModuleList up = nullptr;       ///< index i: ConvTranspose3d(channels[i+1] -> channels[i], k2 s2)
  torch::nn::ModuleList decoder = nullptr;  ///< index i: ModuleList of decoder_depth ConvNormAct 3^3
  torch::nn::ConvTranspose3d head_up = nullptr;  ///< channels[0] -> head_channels, k2 s2 (full resolution)
  torch::nn::Conv3d head = nullptr;              ///< 1^3: head_channels (+ in_channels) -> out_channels
  torch::nn::ModuleList ds_heads = nullptr;      ///< 1^3 conv per deep-supervision output (1/2 first)

 private:
  /// The units a low precision runs, by conv prefix.
  std::vector<std::pair<std::string, teachformer_s::ConvNormActImpl*>> low_precision_units();
  TeachFormerSOptions options_;
  ModelSpec spec_;
  Precision precision_ = Precision::kFloat32;
};
TORCH_MODULE(TeachFormerS);


}  // namespace teachformer::models
