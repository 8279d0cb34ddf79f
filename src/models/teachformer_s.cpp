#include "teachformer/models/teachformer_s.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <ATen/Parallel.h>

#include <torch/torch.h>

#include "models/detail/factories.hpp"
#include "nn/detail/fast_ops.hpp"
#include "models/detail/low_precision_conv.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/nn/flops.hpp"
#include "teachformer/nn/kernels.hpp"

namespace teachformer::models {

// ---------------------------------------------------------------------------------------------------------------
// Options and presets

TeachFormerSOptions::TeachFormerSOptions(int64_t in_channels, int64_t out_channels)
    : in_channels_(in_channels), out_channels_(out_channels) {}

std::vector<std::string> teachformer_s_presets() { return {"tiny", "small", "base"}; }

TeachFormerSOptions teachformer_s_preset(const std::string& name, int64_t in_channels, int64_t out_channels) {
  TeachFormerSOptions o(in_channels, out_channels);
  if (name == "small") return o;  // the defaults
  if (name == "tiny")
    return o.channels({16, 16, 32, 64}).depths({0, 1, 1, 0}).transformer_depth(1).heads(2).head_channels(8);
  if (name == "base")
    return o.channels({32, 64, 128, 256}).depths({0, 1, 2, 0}).fine_decoder_depth(1).transformer_depth(4).heads(8)
        .head_channels(16);
  TF_THROW(InvalidArgument, "teachformer_s: unknown preset '", name, "'; valid presets: ", teachformer_s_presets());
}

nlohmann::json to_json(const TeachFormerSOptions& o) {
  return {{"in_channels", o.in_channels()},
          {"out_channels", o.out_channels()},
          {"channels", o.channels()},
          {"depths", o.depths()},
          {"decoder_depth", o.decoder_depth()},
          {"fine_decoder_depth", o.fine_decoder_depth()},
          {"transformer_depth", o.transformer_depth()},
          {"heads", o.heads()},
          {"mlp_ratio", o.mlp_ratio()},
          {"pos_conv", o.pos_conv()},
          {"head_channels", o.head_channels()},
          {"input_skip", o.input_skip()},
          {"deep_supervision", o.deep_supervision()},
          {"norm", o.norm()},
          {"negative_slope", o.negative_slope()},
          {"dropout", o.dropout()},
          {"norm_eps", o.norm_eps()}};
}

TeachFormerSOptions teachformer_s_options_from_json(const nlohmann::json& json) {
  JsonReader r(json, "teachformer_s options");
  std::string preset = "small";
  int64_t in_channels = 2, out_channels = 2;
  r.get("preset", preset).get("in_channels", in_channels).get("out_channels", out_channels);
  TeachFormerSOptions o = teachformer_s_preset(preset, in_channels, out_channels);
  auto channels = o.channels(), depths = o.depths();
  auto decoder_depth = o.decoder_depth(), fine_decoder_depth = o.fine_decoder_depth();
  auto transformer_depth = o.transformer_depth(), heads = o.heads();
  auto mlp_ratio = o.mlp_ratio(), head_channels = o.head_channels(), deep_supervision = o.deep_supervision();
  bool pos_conv = o.pos_conv(), input_skip = o.input_skip();
  std::string norm = o.norm();
  double negative_slope = o.negative_slope(), dropout = o.dropout(), norm_eps = o.norm_eps();
  r.get("channels", channels).get("depths", depths).get("decoder_depth", decoder_depth);
  r.get("fine_decoder_depth", fine_decoder_depth);
  r.get("transformer_depth", transformer_depth).get("heads", heads).get("mlp_ratio", mlp_ratio);
  r.get("pos_conv", pos_conv).get("head_channels", head_channels).get("input_skip", input_skip);
  r.get("deep_supervision", deep_supervision).get("norm", norm).get("negative_slope", negative_slope);
  r.get("dropout", dropout).get("norm_eps", norm_eps);
  r.finish();
  o.channels(channels).depths(depths).decoder_depth(decoder_depth).fine_decoder_depth(fine_decoder_depth);
  o.transformer_depth(transformer_depth).heads(heads);
  o.mlp_ratio(mlp_ratio).pos_conv(pos_conv).head_channels(head_channels).input_skip(input_skip);
  o.deep_supervision(deep_supervision).norm(norm).negative_slope(negative_slope).dropout(dropout).norm_eps(norm_eps);
  validate(o);
  return o;
}

void validate(const TeachFormerSOptions& o) {
  const char* ctx = "TeachFormerS";
  auto at_least = [&](const char* name, int64_t v, int64_t min) {
    TF_CHECK(v >= min, InvalidArgument, ctx, ": option ", name, " must be >= ", min, ", got ", v);
  };
  at_least("in_channels", o.in_channels(), 1);
  at_least("out_channels", o.out_channels(), 1);
  const auto& ch = o.channels();
  TF_CHECK(ch.size() >= 2 && ch.size() <= 6, InvalidArgument, ctx, ": option channels must list 2 to 6 stage widths ",
           "(stage i at 1/2^(i+1)), got ", ch);
  for (int64_t c : ch)
    TF_CHECK(c >= 1, InvalidArgument, ctx, ": option channels must be positive, got ", ch);
  TF_CHECK(o.depths().size() == ch.size(), InvalidArgument, ctx, ": option depths must have one entry per stage (",
           ch.size(), " like channels ", ch, "), got ", o.depths());
  for (int64_t d : o.depths())
    TF_CHECK(d >= 0, InvalidArgument, ctx, ": option depths must be >= 0, got ", o.depths());
  at_least("decoder_depth", o.decoder_depth(), 0);
  at_least("fine_decoder_depth", o.fine_decoder_depth(), 0);
  at_least("transformer_depth", o.transformer_depth(), 0);
  at_least("heads", o.heads(), 1);
  at_least("mlp_ratio", o.mlp_ratio(), 1);
  at_least("head_channels", o.head_channels(), 1);
  TF_CHECK(ch.back() % o.heads() == 0, InvalidArgument, ctx, ": option heads (", o.heads(),
           ") must divide the transformer width channels.back() (", ch.back(), ")");
  TF_CHECK(o.deep_supervision() >= 0 && o.deep_supervision() <= int64_t(ch.size()) - 1, InvalidArgument, ctx,
           ": option deep_supervision must be in [0, ", ch.size() - 1, "] (one head per decoder stage), got ",
           o.deep_supervision());
  TF_CHECK(o.norm() == "instance" || o.norm() == "batch", InvalidArgument, ctx,
           ": option norm must be \"instance\" or \"batch\", got \"", o.norm(), "\"");
  TF_CHECK(o.negative_slope() >= 0.0 && o.negative_slope() < 1.0, InvalidArgument, ctx,
           ": option negative_slope must be in [0, 1), got ", o.negative_slope());
  TF_CHECK(o.dropout() >= 0.0 && o.dropout() < 1.0, InvalidArgument, ctx, ": option dropout must be in [0, 1), got ",
           o.dropout());
  TF_CHECK(o.norm_eps() > 0.0, InvalidArgument, ctx, ": option norm_eps must be > 0, got ", o.norm_eps());
}

// ---------------------------------------------------------------------------------------------------------------
// Functional pieces


namespace {

// In place where nothing records the graph (any device).
bool in_place() { return !torch::GradMode::is_enabled(); }

torch::Tensor leaky(torch::Tensor x, double slope) {
  if (in_place()) return slope == 0.0 ? x.relu_() : torch::leaky_relu_(x, slope);
  return slope == 0.0 ? torch::relu(x) : torch::leaky_relu(x, slope);
}

// Depthwise 3^3 convolution (padding 1, groups = channels) as 27 shifted multiply-adds: oneDNN 2.6 has no fast 3D
// depthwise kernel and takes milliseconds for the small 1/16 grid. x [B, C, D, H, W], weight [C, 1, 3, 3, 3].
torch::Tensor depthwise3d_k3(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const int64_t c = x.size(1), d = x.size(2), h = x.size(3), w = x.size(4);
  const torch::Tensor xp = torch::constant_pad_nd(x, {1, 1, 1, 1, 1, 1});
  const torch::Tensor k = weight.reshape({c, 27});
  torch::Tensor out = bias.defined() ? bias.view({1, c, 1, 1, 1}).expand_as(x).clone() : torch::zeros_like(x);
  for (int64_t i = 0; i < 27; ++i) {
    const torch::Tensor shifted = xp.narrow(2, i / 9, d).narrow(3, (i / 3) % 3, h).narrow(4, i % 3, w);
    out.addcmul_(shifted, k.select(1, i).view({1, c, 1, 1, 1}));
  }
  return out;
}

// The output block without grad mode, fused after one GEMM: per sub-voxel phase p and half-resolution voxel,
// f = leaky(up_w[(c, p)] . x + up_b[c]) for c < hc, then logit[o] = head_w[o] . f + head_b[o] + in_w[o] . input at
// the full-resolution voxel, written straight to its interleaved position. Neither the head_channels features nor
// the logits of one phase are ever stored at full resolution. x [B, c0, d, h, w], input [B, Cin, 2d, 2h, 2w],
// up_w [(hc, 8), c0], up_b [hc], head_w [oc, hc], head_b [oc], in_w [oc, Cin] or undefined.
torch::Tensor fused_output_block(const torch::Tensor& x, const torch::Tensor& input, const torch::Tensor& up_w,
                                 const torch::Tensor& up_b, const torch::Tensor& head_w, const torch::Tensor& head_b,
                                 const torch::Tensor& in_w, double negative_slope) {
  const int64_t B = x.size(0), c0 = x.size(1), d = x.size(2), h = x.size(3), w = x.size(4), n = d * h * w;
  const int64_t hc = head_w.size(1), oc = head_w.size(0), cin = in_w.defined() ? in_w.size(1) : 0;
  const torch::Tensor inp = input.to(torch::kFloat32).contiguous();
  const torch::Tensor ub = up_b.to(torch::kFloat32).contiguous(), hw = head_w.to(torch::kFloat32).contiguous();
  const torch::Tensor hb = head_b.to(torch::kFloat32).contiguous();
  const torch::Tensor iw = in_w.defined() ? in_w.to(torch::kFloat32).contiguous() : torch::Tensor();
  torch::Tensor out = torch::empty({B, oc, 2 * d, 2 * h, 2 * w}, x.options().dtype(torch::kFloat32));
  const float slope = float(negative_slope);
  const int64_t plane = 4 * h * w, row = 2 * w;
  for (int64_t b = 0; b < B; ++b) {
    const torch::Tensor feats = torch::mm(up_w, x[b].reshape({c0, n})).contiguous();  // [(c, p), n]
    const float* f = feats.data_ptr<float>();
    const float* pub = ub.data_ptr<float>();
    const float* phw = hw.data_ptr<float>();
    const float* phb = hb.data_ptr<float>();
    const float* piw = cin ? iw.data_ptr<float>() : nullptr;
    const float* pin = inp.data_ptr<float>() + b * cin * 8 * n;
    float* po = out.data_ptr<float>() + b * oc * 8 * n;
    // One item per full-resolution plane; each output row (2w voxels, phases pw 0 and 1 interleaved) is written once
    // and the raw input read once, in order (per phase, the output went through the caches eight times).
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, plane * (hc + oc)));  // small grids: 1 thread
    at::parallel_for(0, 2 * d, grain, [&](int64_t begin, int64_t end) {
      std::vector<float> acc(2 * oc * w), val(w);  // acc[(pw, o), x]
      for (int64_t zo = begin; zo < end; ++zo) {
        const int64_t z = zo >> 1, pd = zo & 1;
        for (int64_t yo = 0; yo < 2 * h; ++yo) {
          const int64_t y = yo >> 1, ph = yo & 1, n0 = (z * h + y) * w;
          for (int64_t pw = 0; pw < 2; ++pw) {
            const int64_t p = pd * 4 + ph * 2 + pw;
            float* ap = acc.data() + pw * oc * w;
            for (int64_t o = 0; o < oc; ++o) std::fill(ap + o * w, ap + (o + 1) * w, phb[o]);
            for (int64_t c = 0; c < hc; ++c) {
              const float* src = f + (c * 8 + p) * n + n0;
              const float bias = pub[c];
              for (int64_t xx = 0; xx < w; ++xx) {
                const float v = src[xx] + bias;
                val[xx] = std::max(v, 0.0f) + slope * std::min(v, 0.0f);  // branch-free leaky ReLU
              }
              for (int64_t o = 0; o < oc; ++o) {
                const float k = phw[o * hc + c];
                float* a = ap + o * w;
                for (int64_t xx = 0; xx < w; ++xx) a[xx] += k * val[xx];
              }
            }
          }
          const int64_t off = zo * plane + yo * row;
          for (int64_t o = 0; o < oc; ++o) {
            float* dst = po + o * 8 * n + off;
            const float* a0 = acc.data() + o * w;
            const float* a1 = acc.data() + (oc + o) * w;
            for (int64_t xx = 0; xx < w; ++xx) {
              dst[2 * xx] = a0[xx];
              dst[2 * xx + 1] = a1[xx];
            }
            for (int64_t k = 0; k < cin; ++k) {
              const float kw = piw[o * cin + k];
              const float* src = pin + k * 8 * n + off;
              for (int64_t j = 0; j < row; ++j) dst[j] += kw * src[j];
            }
          }
        }
      }
    });
  }
  return out;
}

}  // namespace

namespace teachformer_s {

InstanceNormAffineImpl::InstanceNormAffineImpl(int64_t channels) : channels_(channels) { reset(); }

void InstanceNormAffineImpl::reset() {
  weight = register_parameter("weight", torch::ones({channels_}));
  bias = register_parameter("bias", torch::zeros({channels_}));
}

ConvNormActImpl::ConvNormActImpl(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride,
                                 int64_t padding, const TeachFormerSOptions& options)
    : in_(in_channels), out_(out_channels), kernel_(kernel), stride_(stride), padding_(padding), options_(options) {
  reset();
}

void ConvNormActImpl::reset() {
  conv = register_module(
      "conv", torch::nn::Conv3d(torch::nn::Conv3dOptions(in_, out_, kernel_).stride(stride_).padding(padding_).bias(false)));
  instance_norm = nullptr;
  batch_norm = nullptr;
  if (options_.norm() == "batch") {
    batch_norm = register_module("norm", torch::nn::BatchNorm3d(torch::nn::BatchNormOptions(out_).eps(options_.norm_eps())));
  } else {
    instance_norm = register_module("norm", InstanceNormAffine(out_));
  }
}

torch::Tensor ConvNormActImpl::normalize(torch::Tensor y, bool activate) {
  const double slope = options_.negative_slope();
  if (instance_norm) {
    if (nn::detail::use_fast_kernels(y)) {
      if (!y.is_contiguous()) y = y.contiguous();
      nn::detail::instance_norm_act_(y, instance_norm->weight, instance_norm->bias, options_.norm_eps(), activate, slope);
      return y;
    }
    y = torch::instance_norm(y, instance_norm->weight, instance_norm->bias, {}, {}, true, 0.0, options_.norm_eps(),
                             false);
  } else {
    y = batch_norm->forward(y);
  }
  return activate ? leaky(y, slope) : y;
}

bool ConvNormActImpl::low_precision_capable() const {
  // The stem (k3 s2 on the raw modalities, 2 input channels) gained nothing in oneDNN's bf16/int8 kernels when
  // measured, and its input is the one whose quantization costs the most accuracy.
  return (kernel_ == 3 && stride_ == 1) || (kernel_ == 2 && stride_ == 2);
}

torch::Tensor ConvNormActImpl::convolve(const torch::Tensor& x) {
  if (observing_) {
    const auto [lo_t, hi_t] = torch::aminmax(x.detach());
    const float lo = lo_t.item<float>(), hi = hi_t.item<float>();
    observed_absmax_ = std::max({observed_absmax_, hi, -lo});
    observed_min_ = std::min(observed_min_, lo);
  }
  if (low_ && nn::detail::use_fast_kernels(x)) return low_->forward(x);
  return nn::detail::conv3d(*conv, x);
}

void ConvNormActImpl::set_precision(Precision precision, float input_absmax, std::optional<float> input_min) {
  if (precision == Precision::kFloat32) {
    low_.reset();
    return;
  }
  TF_CHECK(low_precision_capable(), InvalidArgument, "TeachFormerS: a ", kernel_, "^3 stride-", stride_,
           " convolution has no ", precision_name(precision), " path (only the 3^3 units and the k2 s2 downsamplings)");
  low_ = std::make_shared<detail::LowPrecisionConv3d>(conv->weight, std::vector<int64_t>(3, stride_),
                                                      std::vector<int64_t>(3, padding_), precision, input_absmax,
                                                      input_min);
}

void ConvNormActImpl::observe(bool on) {
  observing_ = on;
  if (on) observed_absmax_ = -1.0f, observed_min_ = std::numeric_limits<float>::infinity();
}

torch::Tensor ConvNormActImpl::forward(const torch::Tensor& x) {
  return normalize(convolve(x), /*activate=*/true);
}

torch::Tensor ConvNormActImpl::forward_residual(const torch::Tensor& x) {
  torch::Tensor y = normalize(convolve(x), /*activate=*/false);
  y = in_place() ? y.add_(x) : y + x;
  return leaky(y, options_.negative_slope());
}

TransformerBlockImpl::TransformerBlockImpl(int64_t dim, int64_t heads, int64_t mlp_dim, double dropout, double eps)
    : dim_(dim), heads_(heads), mlp_dim_(mlp_dim), dropout_(dropout), eps_(eps) {
  reset();
}

void TransformerBlockImpl::reset() {
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim_}).eps(eps_)));
  qkv = register_module("qkv", torch::nn::Linear(dim_, 3 * dim_));
  proj = register_module("proj", torch::nn::Linear(dim_, dim_));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim_}).eps(eps_)));
  fc1 = register_module("fc1", torch::nn::Linear(dim_, mlp_dim_));
  fc2 = register_module("fc2", torch::nn::Linear(mlp_dim_, dim_));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, torch::Tensor* probs) {
  const int64_t b = x.size(0), n = x.size(1), dh = dim_ / heads_;
  // [B, N, 3, heads, dh] -> 3 x [B, heads, N, dh]
  const torch::Tensor qkv_t = nn::linear(*qkv, norm1->forward(x)).reshape({b, n, 3, heads_, dh}).permute({2, 0, 3, 1, 4});
  const torch::Tensor q = qkv_t[0] * (1.0 / std::sqrt(double(dh))), k = qkv_t[1], v = qkv_t[2];
  const torch::Tensor attn = torch::softmax(nn::matmul(q, k.transpose(-1, -2)), -1);
  if (probs) *probs = attn;
  torch::Tensor a = nn::matmul(attn, v).transpose(1, 2).reshape({b, n, dim_});
  a = torch::dropout(nn::linear(*proj, a), dropout_, is_training());
  torch::Tensor y = x + a;
  torch::Tensor m = nn::linear(*fc2, torch::dropout(torch::gelu(nn::linear(*fc1, norm2->forward(y))), dropout_,
                                                     is_training()));
  m = torch::dropout(m, dropout_, is_training());
  return in_place() ? m.add_(y) : y + m;
}

}  // namespace teachformer_s

// ---------------------------------------------------------------------------------------------------------------
// The model

TeachFormerSImpl::TeachFormerSImpl(const TeachFormerSOptions& options)
    : SegmentationModelImpl("TeachFormerS"), options_(options) {
  validate(options_);
  using teachformer_s::ConvNormAct;
  const auto& ch = options_.channels();
  const int64_t stages = int64_t(ch.size());
  stem = register_module("stem", ConvNormAct(options_.in_channels(), ch[0], 3, 2, 1, options_));
  down = register_module("down", torch::nn::ModuleList());
  for (int64_t i = 1; i < stages; ++i) down->push_back(ConvNormAct(ch[i - 1], ch[i], 2, 2, 0, options_));
  encoder = register_module("encoder", torch::nn::ModuleList());
  for (int64_t i = 0; i < stages; ++i) {
    torch::nn::ModuleList units;
    for (int64_t j = 0; j < options_.depths()[i]; ++j) units->push_back(ConvNormAct(ch[i], ch[i], 3, 1, 1, options_));
    encoder->push_back(units);
  }
  const int64_t dim = ch.back();
  if (options_.pos_conv())
    pos_conv = register_module(
        "pos_conv", torch::nn::Conv3d(torch::nn::Conv3dOptions(dim, dim, 3).padding(1).groups(dim)));
  transformer = register_module("transformer", torch::nn::ModuleList());
  for (int64_t k = 0; k < options_.transformer_depth(); ++k)
    transformer->push_back(teachformer_s::TransformerBlock(dim, options_.heads(), options_.mlp_ratio() * dim,
                                                           options_.dropout(), options_.norm_eps()));
  if (options_.transformer_depth() > 0)
    transformer_norm = register_module("transformer_norm",
                                       torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(options_.norm_eps())));
  up = register_module("up", torch::nn::ModuleList());
  decoder = register_module("decoder", torch::nn::ModuleList());
  for (int64_t i = 0; i + 1 < stages; ++i) {
    up->push_back(torch::nn::ConvTranspose3d(torch::nn::ConvTranspose3dOptions(ch[i + 1], ch[i], 2).stride(2)));
    torch::nn::ModuleList units;
    const int64_t depth = i == 0 ? options_.fine_decoder_depth() : options_.decoder_depth();
    for (int64_t j = 0; j < depth; ++j) units->push_back(ConvNormAct(ch[i], ch[i], 3, 1, 1, options_));
    decoder->push_back(units);
  }
  head_up = register_module(
      "head_up", torch::nn::ConvTranspose3d(torch::nn::ConvTranspose3dOptions(ch[0], options_.head_channels(), 2).stride(2)));
  const int64_t head_in = options_.head_channels() + (options_.input_skip() ? options_.in_channels() : 0);
  head = register_module("head", torch::nn::Conv3d(torch::nn::Conv3dOptions(head_in, options_.out_channels(), 1)));
  ds_heads = register_module("ds_heads", torch::nn::ModuleList());
  for (int64_t i = 0; i < options_.deep_supervision(); ++i)
    ds_heads->push_back(torch::nn::Conv3d(torch::nn::Conv3dOptions(ch[i], options_.out_channels(), 1)));

  const int64_t factor = int64_t(1) << stages;
  spec_.key = "teachformer_s";
  spec_.in_channels = options_.in_channels();
  spec_.out_channels = options_.out_channels();
  spec_.size_divisor = {factor, factor, factor};
  spec_.deep_supervision_outputs = options_.deep_supervision();
  spec_.options = to_json(options_);
}

SegOutput TeachFormerSImpl::forward(const torch::Tensor& input, const TapRequest& request) {
  check_input(input);
  using teachformer_s::ConvNormAct;
  using teachformer_s::ConvNormActImpl;
  // The fused CPU kernels for a float32 CPU input without grad; LibTorch operators elsewhere (CUDA, autocast).
  const bool fast = nn::detail::use_fast_kernels(input);
  const bool keep = request.intermediates;
  const int64_t stages = int64_t(options_.channels().size());
  SegOutput out;
  Taps& taps = out.taps;

  // Encoder: stage outputs are the skips.
  std::vector<torch::Tensor> skips(stages);
  torch::Tensor x = stem->forward(input);
  if (keep) taps.set("stem", x);
  for (int64_t i = 0; i < stages; ++i) {
    if (i > 0) x = down[i - 1]->as<ConvNormActImpl>()->forward(x);
    for (const auto& unit : *encoder[i]->as<torch::nn::ModuleList>())
      x = unit->as<ConvNormActImpl>()->forward_residual(x);
    skips[i] = x;
    if (keep) taps.set("encoder" + std::to_string(i), x);
  }

  // Transformer over the voxels of the deepest grid.
  const int64_t b = x.size(0), dim = x.size(1), gd = x.size(2), gh = x.size(3), gw = x.size(4);
  if (pos_conv) {
    torch::Tensor p = fast ? depthwise3d_k3(x, pos_conv->weight, pos_conv->bias)
                           : torch::conv3d(x, pos_conv->weight, pos_conv->bias, 1, 1, 1, dim);
    nn::count_macs("conv", nn::conv_macs(pos_conv->weight, p));
    x = x + p;
  }
  if (!transformer->is_empty()) {
    torch::Tensor tokens = x.flatten(2).transpose(1, 2);  // [B, N, C], (d, h, w) raster order
    if (keep) taps.set("tokens", tokens);
    for (size_t k = 0; k < transformer->size(); ++k) {
      torch::Tensor probs;
      tokens = transformer[k]->as<teachformer_s::TransformerBlock>()->forward(tokens,
                                                                              request.attention ? &probs : nullptr);
      if (request.attention) taps.set(std::string(kAttentionPrefix) + "block" + std::to_string(k), probs);
    }
    tokens = transformer_norm->forward(tokens);
    x = tokens.transpose(1, 2).reshape({b, dim, gd, gh, gw});
  }
  if (request.features) taps.set(kEncoderCoarse, x);

  // Decoder with additive skips; deep-supervision heads on the first stages.
  std::vector<torch::Tensor> ds(options_.deep_supervision());
  for (int64_t i = stages - 2; i >= 0; --i) {
    auto& upconv = *up[i]->as<torch::nn::ConvTranspose3d>();
    // up(x) + skip; in no-grad mode written into the skip's buffer (the skip is not used again).
    // (Intermediates keep references to the encoder outputs: then the skip is copied first.)
    x = nn::conv_transpose3d_k2s2(x, upconv.weight, upconv.bias, keep && fast ? skips[i].clone() : skips[i]);
    skips[i] = torch::Tensor();
    for (const auto& unit : *decoder[i]->as<torch::nn::ModuleList>()) x = unit->as<ConvNormActImpl>()->forward(x);
    if (keep) taps.set("decoder" + std::to_string(i), x);
    if (i < options_.deep_supervision() && request.deep_supervision)
      ds[i] = nn::detail::conv3d(*ds_heads[i]->as<torch::nn::Conv3d>(), x);
  }
  if (request.features) taps.set(kDecoderFine, x);

  // Output block at full resolution: learned x2 upsampling (k2 s2), leaky ReLU, then a 1^3 conv over
  // [features, raw input]. The upsampling and the 1^3 conv both act per sub-voxel, so they run in "phase space"
  // ([B, C, 8 phases, d h w], two matrix products) and only the out_channels logits are interleaved to full
  // resolution: the head_channels features never exist as a full-resolution tensor.
  const int64_t hc = options_.head_channels(), c0 = x.size(1), oc = options_.out_channels();
  const int64_t n = x.size(2) * x.size(3) * x.size(4);
  const torch::Tensor up_w = head_up->weight.reshape({c0, hc * 8}).t();  // [(c, kd, kh, kw), c0]
  const torch::Tensor up_b = head_up->bias.repeat_interleave(8).unsqueeze(1);
  const torch::Tensor head_w = head->weight.narrow(1, 0, hc).reshape({oc, hc});
  const torch::Tensor head_b = head->bias.unsqueeze(1);
  torch::Tensor logits;
  if (fast) {
    logits = fused_output_block(x, input, up_w, head_up->bias, head_w, head->bias,
                                options_.input_skip() ? head->weight.narrow(1, hc, options_.in_channels())
                                                            .reshape({oc, options_.in_channels()})
                                                      : torch::Tensor(),
                                options_.negative_slope());
    nn::count_macs("conv_transpose", nn::conv_transpose_macs(head_up->weight, x));
    nn::count_macs("conv", b * oc * 8 * n * (hc + (options_.input_skip() ? options_.in_channels() : 0)));
  } else {
    const torch::Tensor xf = x.reshape({b, c0, n});
    std::vector<torch::Tensor> per_sample;
    for (int64_t s = 0; s < b; ++s) {
      torch::Tensor feat = leaky(torch::addmm(up_b, up_w, xf[s]), options_.negative_slope());  // [hc * 8, n]
      per_sample.push_back(torch::addmm(head_b, head_w, feat.view({hc, 8 * n})));               // [oc, 8 n]
    }
    nn::count_macs("conv_transpose", nn::conv_transpose_macs(head_up->weight, x));
    nn::count_macs("conv", b * oc * 8 * n * hc);
    logits = nn::detail::interleave_phases(b == 1 ? per_sample[0].unsqueeze(0) : torch::stack(per_sample), b, oc, x.size(2),
                               x.size(3), x.size(4));
    if (options_.input_skip())
      logits = logits + nn::detail::conv3d(input, head->weight.narrow(1, hc, options_.in_channels()), {}, {1, 1, 1},
                                       {0, 0, 0});
  }
  out.logits = logits;
  if (request.deep_supervision) out.deep_supervision = std::move(ds);
  return out;
}

std::vector<std::pair<std::string, teachformer_s::ConvNormActImpl*>> TeachFormerSImpl::low_precision_units() {
  std::vector<std::pair<std::string, teachformer_s::ConvNormActImpl*>> units;
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    auto* unit = dynamic_cast<teachformer_s::ConvNormActImpl*>(item.value().get());
    // The first downsampling stays float32 like the stem whose output it reads: in int8 (one activation range for
    // the whole 1/2-resolution grid) it alone cost up to 1.5 points of the demo students' foreground agreement with
    // float32 (3.2 with symmetric activations), enough to fail the accuracy guard of `teachformer quantize` (99%).
    if (unit && unit->low_precision_capable() && item.key() != "down.0") units.emplace_back(item.key() + ".conv", unit);
  }
  return units;
}

void TeachFormerSImpl::start_calibration() {
  for (auto& [name, unit] : low_precision_units()) unit->observe(true);
}

Int8Calibration TeachFormerSImpl::finish_calibration() {
  Int8Calibration calibration;
  for (auto& [name, unit] : low_precision_units()) {
    unit->observe(false);
    TF_CHECK(unit->observed_absmax() >= 0.0f, InvalidArgument, "TeachFormerS: layer '", name,
             "' saw no input since start_calibration(): run forwards on calibration patches first");
    // A layer that only ever saw zeros keeps a tiny range rather than a division by zero.
    calibration.input_absmax[name] = std::max(unit->observed_absmax(), 1e-6f);
    calibration.input_min[name] = std::max(unit->observed_min(), -calibration.input_absmax[name]);
  }
  return calibration;
}

void TeachFormerSImpl::set_precision(Precision precision, const Int8Calibration* calibration) {
  if (precision == Precision::kBFloat16) {
    const std::string why = low_precision_support().bf16_unavailable();
    TF_CHECK(why.empty(), InvalidArgument, "TeachFormerS: --precision bf16: ", why, "; use fp32 or int8");
  }
  const auto units = low_precision_units();
  for (const auto& [name, unit] : units) {
    float absmax = 0.0f;
    std::optional<float> input_min;
    if (precision == Precision::kInt8) {
      TF_CHECK(calibration, InvalidArgument, "TeachFormerS: int8 needs a calibration (teachformer quantize)");
      const auto it = calibration->input_absmax.find(name);
      TF_CHECK(it != calibration->input_absmax.end(), FormatError, "TeachFormerS: the int8 calibration has no entry ",
               "for layer '", name, "' (it was made for another model configuration)");
      absmax = it->second;
      const auto min = calibration->input_min.find(name);
      if (min != calibration->input_min.end()) input_min = min->second;
    }
    unit->set_precision(precision, absmax, input_min);
  }
  precision_ = precision;
}

namespace detail {

SegmentationModel make_teachformer_s(const nlohmann::json& options) {
  return std::make_shared<TeachFormerSImpl>(teachformer_s_options_from_json(options));
}

nlohmann::json teachformer_s_defaults() { return to_json(TeachFormerSOptions(2, 2)); }

}  // namespace detail
}  // namespace teachformer::models
