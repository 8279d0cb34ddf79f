#include "teachformer/models/hdenseformer.hpp"

#include <cmath>

#include <torch/torch.h>

#include "models/detail/factories.hpp"
#include "nn/detail/fast_ops.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/nn/flops.hpp"

namespace teachformer::models {

// ---------------------------------------------------------------------------------------------------------------
// Options

HDenseFormerOptions::HDenseFormerOptions(int64_t in_channels, int64_t n_cls, int64_t n_filters)
    : in_channels_(in_channels), n_cls_(n_cls), n_filters_(n_filters) {}

nlohmann::json to_json(const HDenseFormerOptions& o) {
  return {{"in_channels", o.in_channels()},   {"n_cls", o.n_cls()},
          {"n_filters", o.n_filters()},       {"image_size", o.image_size()},
          {"transformer_depth", o.transformer_depth()},
          {"patch_size", o.patch_size()},     {"growth_rate", o.growth_rate()},
          {"dense_layers", o.dense_layers()}, {"heads", o.heads()},
          {"dim_head", o.dim_head()},         {"mlp_dim", o.mlp_dim()},
          {"dropout", o.dropout()},           {"layer_norm_eps", o.layer_norm_eps()},
          {"instance_norm_eps", o.instance_norm_eps()}};
}

HDenseFormerOptions hdenseformer_options_from_json(const nlohmann::json& json) {
  const char* ctx = "hdenseformer options";
  HDenseFormerOptions o(2, 2, 32);
  JsonReader r(json, ctx);
  int64_t in_channels = o.in_channels(), n_cls = o.n_cls(), n_filters = o.n_filters();
  int64_t depth = o.transformer_depth(), patch = o.patch_size(), growth = o.growth_rate(), layers = o.dense_layers();
  int64_t heads = o.heads(), dim_head = o.dim_head(), mlp_dim = o.mlp_dim();
  double dropout = o.dropout(), ln_eps = o.layer_norm_eps(), in_eps = o.instance_norm_eps();
  r.get("in_channels", in_channels).get("n_cls", n_cls).get("n_filters", n_filters);
  r.get("transformer_depth", depth).get("patch_size", patch).get("growth_rate", growth).get("dense_layers", layers);
  r.get("heads", heads).get("dim_head", dim_head).get("mlp_dim", mlp_dim);
  r.get("dropout", dropout).get("layer_norm_eps", ln_eps).get("instance_norm_eps", in_eps);
  nlohmann::json size = nullptr;
  r.get("image_size", size);
  r.finish();
  std::vector<int64_t> image_size = o.image_size();
  if (!size.is_null()) {
    if (size.is_number_integer()) {
      image_size.assign(3, size.get<int64_t>());
    } else if (size.is_array() && size.size() == 3 &&
               std::all_of(size.begin(), size.end(), [](const nlohmann::json& v) { return v.is_number_integer(); })) {
      image_size = size.get<std::vector<int64_t>>();
    } else {
      TF_THROW(ConfigError, ctx, ": key 'image_size' must be an integer or a list of 3 integers [D, H, W], got ",
               size.dump());
    }
  }
  o.in_channels(in_channels).n_cls(n_cls).n_filters(n_filters).image_size(image_size).transformer_depth(depth);
  o.patch_size(patch).growth_rate(growth).dense_layers(layers).heads(heads).dim_head(dim_head).mlp_dim(mlp_dim);
  o.dropout(dropout).layer_norm_eps(ln_eps).instance_norm_eps(in_eps);
  validate(o);
  return o;
}

void validate(const HDenseFormerOptions& o) {
  auto positive = [](const char* name, int64_t v) {
    TF_CHECK(v >= 1, InvalidArgument, "HDenseFormer: option ", name, " must be >= 1, got ", v);
  };
  positive("in_channels", o.in_channels());
  positive("n_cls", o.n_cls());
  positive("n_filters", o.n_filters());
  positive("growth_rate", o.growth_rate());
  positive("dense_layers", o.dense_layers());
  positive("heads", o.heads());
  positive("dim_head", o.dim_head());
  positive("mlp_dim", o.mlp_dim());
  TF_CHECK(o.transformer_depth() >= 4, InvalidArgument, "HDenseFormer: option transformer_depth must be >= 4 ",
           "(each path runs transformer_depth / 4 DCT blocks), got ", o.transformer_depth());
  TF_CHECK(o.patch_size() == 16, InvalidArgument, "HDenseFormer: option patch_size must be 16 (the fused pyramid ",
           "upsamples the 1/patch_size token grid x2 four times to reach full resolution), got ", o.patch_size());
  TF_CHECK(o.image_size().size() == 3, InvalidArgument, "HDenseFormer: option image_size must have 3 entries ",
           "[D, H, W], got ", o.image_size());
  for (size_t d = 0; d < 3; ++d)
    TF_CHECK(o.image_size()[d] > 0 && o.image_size()[d] % o.patch_size() == 0, InvalidArgument,
             "HDenseFormer: option image_size ", o.image_size(), " must be positive and divisible by patch_size ",
             o.patch_size(), " in every dim (dim ", d, " is ", o.image_size()[d], ")");
  TF_CHECK(o.dropout() >= 0.0 && o.dropout() < 1.0, InvalidArgument,
           "HDenseFormer: option dropout must be in [0, 1), got ", o.dropout());
  TF_CHECK(o.layer_norm_eps() > 0.0 && o.instance_norm_eps() > 0.0, InvalidArgument,
           "HDenseFormer: options layer_norm_eps and instance_norm_eps must be > 0, got ", o.layer_norm_eps(), " and ",
           o.instance_norm_eps());
}

// ---------------------------------------------------------------------------------------------------------------
// Functional pieces shared by the grad and no-grad paths

torch::Tensor conv_transpose3d_k3s2(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  TF_CHECK(x.dim() == 5 && weight.dim() == 5, InvalidArgument,
           "conv_transpose3d_k3s2: expected x [B, I, D, H, W] and weight [I, O, 3, 3, 3], got ", x.sizes().vec(),
           " and ", weight.sizes().vec());
  torch::Tensor out =
      torch::empty({x.size(0), weight.size(1), 2 * x.size(2), 2 * x.size(3), 2 * x.size(4)}, x.options());
  nn::detail::conv_transpose3d_k3s2_into(out, x, weight, bias);
  return out;
}

torch::Tensor instance_norm_relu(torch::Tensor x, const torch::Tensor& weight, const torch::Tensor& bias,
                                 double eps) {
  if (!nn::detail::use_fast_kernels(x)) {
    return torch::relu(torch::instance_norm(x, weight, bias, {}, {}, /*use_input_stats=*/true, 0.0, eps,
                                            /*cudnn_enabled=*/false));
  }
  if (!x.is_contiguous()) x = x.contiguous();
  nn::detail::instance_norm_act_(x, weight, bias, eps, /*activate=*/true);
  return x;
}

namespace {

// The hand-written CPU kernels for float32 CPU tensors without grad; LibTorch operators elsewhere.
bool fast_path(const torch::Tensor& x) { return nn::detail::use_fast_kernels(x); }

torch::Tensor max_pool(const torch::Tensor& x) { return fast_path(x) ? nn::detail::max_pool2(x) : torch::max_pool3d(x, 2, 2); }

torch::Tensor upsample2(const torch::Tensor& x) {
  if (fast_path(x)) return nn::detail::upsample_trilinear2(x);
  return torch::upsample_trilinear3d(x, c10::nullopt, /*align_corners=*/false, std::vector<double>{2.0, 2.0, 2.0});
}

}  // namespace

namespace hdenseformer {

// ---------------------------------------------------------------------------------------------------------------
// CNN pieces

AffineNormImpl::AffineNormImpl(int64_t channels) : channels_(channels) { reset(); }

void AffineNormImpl::reset() {
  weight = register_parameter("weight", torch::ones({channels_}));
  bias = register_parameter("bias", torch::zeros({channels_}));
}

BasicConv3dImpl::BasicConv3dImpl(int64_t in_channels, int64_t out_channels, double eps)
    : in_channels_(in_channels), out_channels_(out_channels), eps_(eps) {
  reset();
}

void BasicConv3dImpl::reset() {
  conv = register_module("conv", torch::nn::Conv3d(torch::nn::Conv3dOptions(in_channels_, out_channels_, 3)
                                                       .padding(1).bias(false)));
  norm = register_module("norm", AffineNorm(out_channels_));
}

torch::Tensor BasicConv3dImpl::forward(const torch::Tensor& x) {
  return instance_norm_relu(nn::detail::conv3d(*conv, x), norm->weight, norm->bias, eps_);
}

UpConvImpl::UpConvImpl(int64_t in_channels, int64_t out_channels, double eps)
    : in_channels_(in_channels), out_channels_(out_channels), eps_(eps) {
  reset();
}

void UpConvImpl::reset() {
  conv = torch::nn::Conv3d(torch::nn::Conv3dOptions(in_channels_, out_channels_, 3).padding(1));
  double_conv = register_module("double_conv", torch::nn::ModuleList(conv));
}

torch::Tensor UpConvImpl::forward(const torch::Tensor& x) {
  return upsample2(instance_norm_relu(nn::detail::conv3d(*conv, x), {}, {}, eps_));
}

// ---------------------------------------------------------------------------------------------------------------
// Transformer pieces

DenseAttentionImpl::DenseAttentionImpl(int64_t dim, int64_t heads, int64_t dim_head, double dropout)
    : dim_(dim), heads_(heads), dim_head_(dim_head), dropout_(dropout) {
  reset();
}

void DenseAttentionImpl::reset() {
  const int64_t inner = heads_ * dim_head_;
  to_qkv = register_module("to_qkv", torch::nn::Linear(torch::nn::LinearOptions(dim_, 3 * inner).bias(false)));
  to_out = register_module("to_out", torch::nn::ModuleList());
  out_proj_ = nullptr;
  out_drop_ = nullptr;
  // As the reference: no output projection when a single head already has the model width.
  if (!(heads_ == 1 && dim_head_ == dim_)) {
    out_proj_ = torch::nn::Linear(inner, dim_);
    out_drop_ = torch::nn::Dropout(dropout_);
    to_out->push_back(out_proj_);
    to_out->push_back(out_drop_);
  }
}

torch::Tensor DenseAttentionImpl::forward(const torch::Tensor& x, torch::Tensor* probs) {
  const int64_t b = x.size(0), n = x.size(1);
  auto qkv = nn::linear(*to_qkv, x).chunk(3, -1);
  auto heads = [&](const torch::Tensor& t) { return t.reshape({b, n, heads_, dim_head_}).permute({0, 2, 1, 3}); };
  const torch::Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);
  torch::Tensor attn = torch::softmax(nn::matmul(q, k.transpose(-1, -2)) * std::pow(double(dim_head_), -0.5), -1);
  if (probs) *probs = attn;
  torch::Tensor out = nn::matmul(attn, v).permute({0, 2, 1, 3}).reshape({b, n, heads_ * dim_head_});
  if (out_proj_) out = out_drop_->forward(nn::linear(*out_proj_, out));
  return out;
}

DenseForwardImpl::DenseForwardImpl(int64_t dim, int64_t hidden, int64_t out, double dropout)
    : dim_(dim), hidden_(hidden), out_(out), dropout_(dropout) {
  reset();
}

void DenseForwardImpl::reset() {
  fc1_ = torch::nn::Linear(dim_, hidden_);
  drop1_ = torch::nn::Dropout(dropout_);
  fc2_ = torch::nn::Linear(hidden_, out_);
  drop2_ = torch::nn::Dropout(dropout_);
  net = register_module("net", torch::nn::ModuleList(fc1_, torch::nn::GELU(), drop1_, fc2_, drop2_));
}

torch::Tensor DenseForwardImpl::forward(const torch::Tensor& x) {
  return drop2_->forward(nn::linear(*fc2_, drop1_->forward(torch::gelu(nn::linear(*fc1_, x)))));
}

PreNormAttentionImpl::PreNormAttentionImpl(int64_t dim, int64_t heads, int64_t dim_head, double dropout, double eps)
    : dim_(dim), heads_(heads), dim_head_(dim_head), dropout_(dropout), eps_(eps) {
  reset();
}

void PreNormAttentionImpl::reset() {
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim_}).eps(eps_)));
  fn = register_module("fn", DenseAttention(dim_, heads_, dim_head_, dropout_));
}

torch::Tensor PreNormAttentionImpl::forward(const torch::Tensor& x, torch::Tensor* probs) {
  return fn->forward(norm->forward(x), probs);
}

PreNormForwardImpl::PreNormForwardImpl(int64_t dim, int64_t hidden, double dropout, double eps)
    : dim_(dim), hidden_(hidden), dropout_(dropout), eps_(eps) {
  reset();
}

void PreNormForwardImpl::reset() {
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim_}).eps(eps_)));
  fn = register_module("fn", DenseForward(dim_, hidden_, dim_, dropout_));
}

torch::Tensor PreNormForwardImpl::forward(const torch::Tensor& x) { return fn->forward(norm->forward(x)); }

DCTBlockImpl::DCTBlockImpl(int64_t dim, const HDenseFormerOptions& options) : dim_(dim), options_(options) {
  reset();
}

void DCTBlockImpl::reset() {
  const auto& o = options_;
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t j = 0; j < o.dense_layers(); ++j) {
    layers->push_back(torch::nn::ModuleList(
        torch::nn::Linear(dim_ + j * o.growth_rate(), o.growth_rate()),
        PreNormAttention(o.growth_rate(), o.heads(), o.dim_head(), o.dropout(), o.layer_norm_eps()),
        PreNormForward(o.growth_rate(), o.mlp_dim(), o.dropout(), o.layer_norm_eps())));
  }
  out_layer = register_module(
      "out_layer", DenseForward(dim_ + o.dense_layers() * o.growth_rate(), o.mlp_dim(), dim_, o.dropout()));
}

torch::Tensor DCTBlockImpl::forward(const torch::Tensor& tokens, std::vector<torch::Tensor>* probs) {
  std::vector<torch::Tensor> features{tokens};
  features.reserve(layers->size() + 1);
  for (const auto& item : *layers) {
    auto& layer = *item->as<torch::nn::ModuleList>();
    auto& proj = *layer[0]->as<torch::nn::Linear>();
    auto& attn = *layer[1]->as<PreNormAttention>();
    auto& ff = *layer[2]->as<PreNormForward>();
    torch::Tensor p;
    torch::Tensor x = nn::linear(proj, torch::cat(features, 2));
    x = attn.forward(x, probs ? &p : nullptr) + x;
    x = ff.forward(x) + x;
    // Reference quirk, kept on purpose: the FFN runs a second time and that output (no residual) is appended.
    features.push_back(ff.forward(x));
    if (probs) probs->push_back(p);
  }
  return out_layer->forward(torch::cat(features, 2));
}

DenseTransformerPathImpl::DenseTransformerPathImpl(int64_t dim, const HDenseFormerOptions& options)
    : dim_(dim), options_(options) {
  reset();
}

void DenseTransformerPathImpl::reset() {
  const auto& o = options_;
  grid_.clear();
  int64_t tokens = 1;
  for (int64_t s : o.image_size()) grid_.push_back(s / o.patch_size()), tokens *= s / o.patch_size();
  patch_embeddings = register_module(
      "patch_embeddings", torch::nn::Conv3d(torch::nn::Conv3dOptions(1, dim_, o.patch_size()).stride(o.patch_size())));
  position_embeddings = register_parameter("position_embeddings", torch::zeros({1, tokens, dim_}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t k = 0; k < o.transformer_depth() / 4; ++k) blocks->push_back(torch::nn::ModuleList(DCTBlock(dim_, o)));
}

torch::Tensor DenseTransformerPathImpl::forward(const torch::Tensor& x, Record* record, bool with_attention) {
  const torch::Tensor embedded = nn::detail::conv3d(*patch_embeddings, x);
  if (record) record->patch_embed = embedded;
  const int64_t b = embedded.size(0);
  torch::Tensor t = embedded.flatten(2).transpose(-1, -2) + position_embeddings;  // [B, N, dim], (d, h, w) raster
  t = torch::dropout(t, options_.dropout(), is_training());
  for (const auto& item : *blocks) {
    auto& block = *(*item->as<torch::nn::ModuleList>())[0]->as<DCTBlock>();
    std::vector<torch::Tensor> probs;
    t = block.forward(t, record && with_attention ? &probs : nullptr);
    if (record) {
      record->block_tokens.push_back(t);
      record->attention.push_back(std::move(probs));
    }
  }
  // The reference's nearest interpolation to the same size after the reshape is the identity and is skipped.
  return t.transpose(-1, -2).reshape({b, dim_, grid_[0], grid_[1], grid_[2]});
}

}  // namespace hdenseformer

// ---------------------------------------------------------------------------------------------------------------
// The model

HDenseFormerImpl::HDenseFormerImpl(const HDenseFormerOptions& options)
    : SegmentationModelImpl("HDenseFormer"), options_(options) {
  validate(options_);
  using namespace hdenseformer;
  const int64_t nf = options_.n_filters(), c = options_.in_channels();
  const double eps = options_.instance_norm_eps();
  attns = register_module("attns", torch::nn::ModuleList());
  for (int64_t i = 0; i < c; ++i) attns->push_back(DenseTransformerPath(4 * nf, options_));
  deep_conv = register_module("deep_conv", UpConv(4 * nf * c, 8 * nf, eps));
  up1 = register_module("up1", UpConv(8 * nf, 4 * nf, eps));
  up2 = register_module("up2", UpConv(4 * nf, 2 * nf, eps));
  up3 = register_module("up3", UpConv(2 * nf, nf, eps));
  block_1_1_left = register_module("block_1_1_left", BasicConv3d(c, nf, eps));
  block_1_2_left = register_module("block_1_2_left", BasicConv3d(nf, nf, eps));
  block_2_1_left = register_module("block_2_1_left", BasicConv3d(nf, 2 * nf, eps));
  block_2_2_left = register_module("block_2_2_left", BasicConv3d(2 * nf, 2 * nf, eps));
  block_3_1_left = register_module("block_3_1_left", BasicConv3d(2 * nf, 4 * nf, eps));
  block_3_2_left = register_module("block_3_2_left", BasicConv3d(4 * nf, 4 * nf, eps));
  block_4_1_left = register_module("block_4_1_left", BasicConv3d(4 * nf, 8 * nf, eps));
  block_4_2_left = register_module("block_4_2_left", BasicConv3d(8 * nf, 8 * nf, eps));
  auto upconv = [](int64_t in, int64_t out) {
    return torch::nn::ConvTranspose3d(
        torch::nn::ConvTranspose3dOptions(in, out, 3).stride(2).padding(1).output_padding(1));
  };
  upconv_3 = register_module("upconv_3", upconv(8 * nf, 4 * nf));
  block_3_1_right = register_module("block_3_1_right", BasicConv3d(8 * nf, 4 * nf, eps));
  block_3_2_right = register_module("block_3_2_right", BasicConv3d(4 * nf, 4 * nf, eps));
  upconv_2 = register_module("upconv_2", upconv(4 * nf, 2 * nf));
  block_2_1_right = register_module("block_2_1_right", BasicConv3d(4 * nf, 2 * nf, eps));
  block_2_2_right = register_module("block_2_2_right", BasicConv3d(2 * nf, 2 * nf, eps));
  upconv_1 = register_module("upconv_1", upconv(2 * nf, nf));
  block_1_1_right = register_module("block_1_1_right", BasicConv3d(2 * nf, nf, eps));
  block_1_2_right = register_module("block_1_2_right", BasicConv3d(nf, nf, eps));
  auto head = [&](int64_t in) { return torch::nn::Conv3d(torch::nn::Conv3dOptions(in, options_.n_cls(), 1)); };
  conv1x1 = register_module("conv1x1", head(nf));
  conv1x1_d1 = register_module("conv1x1_d1", head(2 * nf));
  conv1x1_d2 = register_module("conv1x1_d2", head(4 * nf));
  conv1x1_d3 = register_module("conv1x1_d3", head(8 * nf));

  spec_.key = "hdenseformer";
  spec_.in_channels = c;
  spec_.out_channels = options_.n_cls();
  spec_.size_divisor = {options_.patch_size(), options_.patch_size(), options_.patch_size()};
  spec_.fixed_input_size = options_.image_size();
  spec_.deep_supervision_outputs = 3;
  spec_.options = to_json(options_);
}

namespace {

// Decoder stage input [upconv(x), skip] along channels. Without grad mode the transposed convolution writes straight
// into the concatenation buffer, so neither the upsampled tensor nor a second copy of the pair is ever allocated.
torch::Tensor up_and_concat(torch::nn::ConvTranspose3dImpl& upconv, const torch::Tensor& x, torch::Tensor& skip) {
  if (!fast_path(x)) return torch::cat({conv_transpose3d_k3s2(x, upconv.weight, upconv.bias), skip}, 1);
  const int64_t up = upconv.weight.size(1);
  torch::Tensor buffer = torch::empty({x.size(0), up + skip.size(1), 2 * x.size(2), 2 * x.size(3), 2 * x.size(4)},
                                      x.options());
  nn::detail::conv_transpose3d_k3s2_into(buffer.narrow(1, 0, up), x, upconv.weight, upconv.bias);
  buffer.narrow(1, up, skip.size(1)).copy_(skip);
  skip = torch::Tensor();  // the caller's last reference: free it now
  return buffer;
}

// a + b, in place on `a` without grad mode.
torch::Tensor add_fused(torch::Tensor a, const torch::Tensor& b) {
  return torch::GradMode::is_enabled() ? a + b : a.add_(b);
}

}  // namespace

SegOutput HDenseFormerImpl::forward(const torch::Tensor& input, const TapRequest& request) {
  TF_CHECK(input.dim() == 5, InvalidArgument, "hdenseformer: input must be [B, C, D, H, W], got shape ",
           input.sizes().vec());
  TF_CHECK(input.sizes().slice(2).vec() == options_.image_size(), InvalidArgument, "hdenseformer: input spatial shape ",
           input.sizes().slice(2).vec(), " must equal option image_size ", options_.image_size(),
           " (the position embedding is built for that size; use a sliding window for other sizes)");
  check_input(input);
  const bool fast = !torch::GradMode::is_enabled();  // in-place updates below: snapshot what the taps keep
  const bool keep = request.intermediates;
  SegOutput out;
  Taps& taps = out.taps;
  auto snapshot = [&](const torch::Tensor& t) { return fast ? t.clone() : t; };  // before an in-place change

  // One transformer path per modality, then fusion and the fused pyramid.
  std::vector<torch::Tensor> paths;
  for (int64_t i = 0; i < options_.in_channels(); ++i) {
    auto& path = *attns[i]->as<hdenseformer::DenseTransformerPath>();
    hdenseformer::DenseTransformerPathImpl::Record record;
    const bool want_record = keep || request.attention;
    paths.push_back(path.forward(input.narrow(1, i, 1), want_record ? &record : nullptr, request.attention));
    const std::string mpe = "mpe" + std::to_string(i);
    if (keep) {
      taps.set("intermediate." + mpe + "_patch_embed", record.patch_embed);
      for (size_t k = 0; k < record.block_tokens.size(); ++k)
        taps.set("intermediate." + mpe + "_dct" + std::to_string(k) + "_tokens", record.block_tokens[k]);
      taps.set("intermediate." + mpe + "_out", paths.back());
    }
    if (request.attention)
      for (size_t k = 0; k < record.attention.size(); ++k)
        for (size_t j = 0; j < record.attention[k].size(); ++j)
          taps.set(std::string(kAttentionPrefix) + mpe + ".dct" + std::to_string(k) + ".layer" + std::to_string(j),
                   record.attention[k][j]);
  }
  torch::Tensor attnout = deep_conv->forward(torch::cat(paths, 1));  // 8nf @ 1/8
  paths.clear();
  torch::Tensor at1 = up1->forward(attnout);  // 4nf @ 1/4
  torch::Tensor at2 = up2->forward(at1);      // 2nf @ 1/2
  if (keep) {
    taps.set("intermediate.deep_conv", attnout);
    taps.set("intermediate.up1", at1);
    taps.set("intermediate.up2", at2);
  }

  // Encoder. Level 1 is computed before up3 so that at most two full-resolution tensors are alive here.
  torch::Tensor ds0 = block_1_2_left->forward(block_1_1_left->forward(input));
  torch::Tensor level1_before = keep ? snapshot(ds0) : torch::Tensor();
  {
    torch::Tensor at3 = up3->forward(at2);  // nf @ 1/1
    if (keep) taps.set("intermediate.up3", at3);
    ds0 = add_fused(ds0, at3);
  }
  if (keep) taps.set("intermediate.block_1_2_left", level1_before);
  torch::Tensor ds1 = add_fused(block_2_2_left->forward(block_2_1_left->forward(max_pool(ds0))), at2);
  at2 = torch::Tensor();
  torch::Tensor ds2 = add_fused(block_3_2_left->forward(block_3_1_left->forward(max_pool(ds1))), at1);
  at1 = torch::Tensor();
  torch::Tensor x = block_4_2_left->forward(block_4_1_left->forward(max_pool(ds2)));
  if (keep) taps.set("intermediate.block_4_2_left", snapshot(x));
  x = add_fused(x, attnout);
  attnout = torch::Tensor();
  if (request.features) taps.set(kEncoderCoarse, x);

  // Decoder with deep-supervision heads.
  // One statement per step: a temporary would live (and hold its memory) until the end of its full expression.
  const bool ds = request.deep_supervision;
  torch::Tensor out3 = ds ? nn::detail::conv3d(*conv1x1_d3, x) : torch::Tensor();
  x = block_3_1_right->forward(up_and_concat(*upconv_3, x, ds2));
  x = block_3_2_right->forward(x);
  torch::Tensor out2 = ds ? nn::detail::conv3d(*conv1x1_d2, x) : torch::Tensor();
  x = block_2_1_right->forward(up_and_concat(*upconv_2, x, ds1));
  x = block_2_2_right->forward(x);
  if (request.features) taps.set(kDecoderFine, x);
  torch::Tensor out1 = ds ? nn::detail::conv3d(*conv1x1_d1, x) : torch::Tensor();
  x = block_1_1_right->forward(up_and_concat(*upconv_1, x, ds0));
  x = block_1_2_right->forward(x);
  if (request.features) taps.set(kDecoderLast, x);
  out.logits = nn::detail::conv3d(*conv1x1, x);
  if (ds) out.deep_supervision = {out1, out2, out3};
  return out;
}

namespace detail {

SegmentationModel make_hdenseformer(const nlohmann::json& options) {
  return std::make_shared<HDenseFormerImpl>(hdenseformer_options_from_json(options));
}

nlohmann::json hdenseformer_defaults() { return to_json(HDenseFormerOptions(2, 2, 32)); }

}  // namespace detail
}  // namespace teachformer::models
