#include "teachformer/nn/swin.hpp"

#include <cmath>

#include <torch/torch.h>

#include "nn/detail/init.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/nn/flops.hpp"
#include "teachformer/nn/unet_blocks.hpp"

namespace teachformer::nn {
namespace {

using Int3 = std::array<int64_t, 3>;

Int3 arr(const torch::ExpandingArray<3>& a) { return {(*a)[0], (*a)[1], (*a)[2]}; }
std::vector<int64_t> vec(const Int3& a) { return {a[0], a[1], a[2]}; }

void check_rate(double rate, const char* block, const char* option) {
  TF_CHECK(rate >= 0.0 && rate <= 1.0, InvalidArgument, block, ": option ", option, " must be in [0, 1], got ", rate);
}

void check_positive(const Int3& a, const char* block, const char* option) {
  for (int64_t v : a) TF_CHECK(v > 0, InvalidArgument, block, ": option ", option, " must be positive, got ", vec(a));
}

// MONAI's get_window_size: a dim not larger than the window uses the whole dim as window and no shift.
void effective_window(const Int3& size, const Int3& window, const Int3& shift, Int3& out_window, Int3& out_shift) {
  for (int d = 0; d < 3; ++d) {
    out_window[d] = size[d] <= window[d] ? size[d] : window[d];
    out_shift[d] = size[d] <= window[d] ? 0 : shift[d];
  }
}

// Python slice bounds for slice(start, stop) over `len` elements (nullopt = omitted).
std::pair<int64_t, int64_t> py_slice(int64_t len, std::optional<int64_t> start, std::optional<int64_t> stop) {
  auto norm = [len](int64_t v) { return v < 0 ? std::max<int64_t>(len + v, 0) : std::min(v, len); };
  const int64_t b = start ? norm(*start) : 0, e = stop ? norm(*stop) : len;
  return {b, std::max(b, e)};
}

torch::Tensor drop_path(const torch::Tensor& x, double p, bool training) {
  if (p == 0.0 || !training) return x;
  const double keep = 1.0 - p;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  auto mask = torch::empty(shape, x.options()).bernoulli_(keep);
  if (keep > 0.0) mask.div_(keep);
  return x * mask;
}

}  // namespace

torch::Tensor window_partition(const torch::Tensor& x, const std::array<int64_t, 3>& w) {
  const int64_t b = x.size(0), d = x.size(1), h = x.size(2), wd = x.size(3), c = x.size(4);
  return x.view({b, d / w[0], w[0], h / w[1], w[1], wd / w[2], w[2], c})
      .permute({0, 1, 3, 5, 2, 4, 6, 7})
      .reshape({-1, w[0] * w[1] * w[2], c});
}

torch::Tensor window_reverse(const torch::Tensor& windows, const std::array<int64_t, 3>& w, int64_t b,
                             const std::array<int64_t, 3>& dims) {
  return windows.view({b, dims[0] / w[0], dims[1] / w[1], dims[2] / w[2], w[0], w[1], w[2], -1})
      .permute({0, 1, 4, 2, 5, 3, 6, 7})
      .reshape({b, dims[0], dims[1], dims[2], -1});
}


// ---------------------------------------------------------------------------------------------- PatchEmbed

PatchEmbedImpl::PatchEmbedImpl(PatchEmbedOptions options_) : options(std::move(options_)) { reset(); }

void PatchEmbedImpl::reset() {
  TF_CHECK(options.in_chans() > 0 && options.embed_dim() > 0, InvalidArgument,
           "PatchEmbed: in_chans and embed_dim must be positive, got ", options.in_chans(), " and ",
           options.embed_dim());
  check_positive(arr(options.patch_size()), "PatchEmbed", "patch_size");
  proj = register_module("proj", torch::nn::Conv3d(torch::nn::Conv3dOptions(options.in_chans(), options.embed_dim(),
                                                                            options.patch_size())
                                                       .stride(options.patch_size())));
  norm = nullptr;
  if (options.norm())
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({options.embed_dim()})));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  TF_CHECK(x.dim() == 5 && x.size(1) == options.in_chans(), InvalidArgument, "PatchEmbed: input must be [B, ",
           options.in_chans(), ", D, H, W], got ", x.sizes().vec());
  const Int3 p = arr(options.patch_size());
  std::vector<int64_t> pad{0, 0, 0, 0, 0, 0};  // (W, H, D) pairs as F.pad orders them
  bool padded = false;
  for (int d = 0; d < 3; ++d) {
    const int64_t rem = x.size(2 + d) % p[d];
    if (rem) pad[2 * (2 - d) + 1] = p[d] - rem, padded = true;
  }
  auto y = nn::conv(*proj, padded ? torch::constant_pad_nd(x, pad, 0) : x);
  if (!norm) return y;
  // LayerNorm over channels, back to [B, C, D, H, W] as a view of channels-last memory.
  return norm->forward(y.permute({0, 2, 3, 4, 1})).permute({0, 4, 1, 2, 3});
}

// ----------------------------------------------------------------------------------------- WindowAttention

WindowAttentionImpl::WindowAttentionImpl(WindowAttentionOptions options_) : options(std::move(options_)) {
  reset();
}

void WindowAttentionImpl::reset() {
  const char* name = "WindowAttention";
  TF_CHECK(options.dim() > 0 && options.num_heads() > 0 && options.dim() % options.num_heads() == 0,
           InvalidArgument, name, ": dim must be divisible by num_heads, got dim ", options.dim(), " and num_heads ",
           options.num_heads());
  check_rate(options.attn_drop(), name, "attn_drop");
  check_rate(options.proj_drop(), name, "proj_drop");
  const Int3 w = arr(options.window_size());
  check_positive(w, name, "window_size");
  const int64_t n = w[0] * w[1] * w[2];
  relative_position_bias_table = register_parameter(
      "relative_position_bias_table",
      torch::zeros({(2 * w[0] - 1) * (2 * w[1] - 1) * (2 * w[2] - 1), options.num_heads()}));
  detail::trunc_normal_(relative_position_bias_table, 0.0, 0.02, -2.0, 2.0);
  // index[i][j] = ((di + wD - 1) * (2wH - 1) + (hi + wH - 1)) * (2wW - 1) + (wi + wW - 1) for the offset
  // (di, hi, wi) = coords(i) - coords(j), coords in (D, H, W) raster order (MONAI's construction).
  auto index = torch::empty({n, n}, torch::kLong);
  auto acc = index.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = i / (w[1] * w[2]), ih = (i / w[2]) % w[1], iw = i % w[2];
    for (int64_t j = 0; j < n; ++j) {
      const int64_t jd = j / (w[1] * w[2]), jh = (j / w[2]) % w[1], jw = j % w[2];
      acc[i][j] = (id - jd + w[0] - 1) * (2 * w[1] - 1) * (2 * w[2] - 1) + (ih - jh + w[1] - 1) * (2 * w[2] - 1) +
                  (iw - jw + w[2] - 1);
    }
  }
  relative_position_index = register_buffer("relative_position_index", index);
  qkv = register_module("qkv", torch::nn::Linear(
                                   torch::nn::LinearOptions(options.dim(), 3 * options.dim()).bias(options.qkv_bias())));
  attn_drop = register_module("attn_drop", torch::nn::Dropout(options.attn_drop()));
  proj = register_module("proj", torch::nn::Linear(options.dim(), options.dim()));
  proj_drop = register_module("proj_drop", torch::nn::Dropout(options.proj_drop()));
}

torch::Tensor WindowAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                           torch::Tensor* attention) {
  const int64_t bw = x.size(0), n = x.size(1), c = x.size(2), heads = options.num_heads();
  TF_CHECK(x.dim() == 3 && c == options.dim() && n <= relative_position_index.size(0), InvalidArgument,
           "WindowAttention: input must be [B * windows, n <= ", relative_position_index.size(0), ", ", options.dim(),
           "], got ", x.sizes().vec());
  auto parts = nn::linear(*qkv, x).view({bw, n, 3, heads, c / heads}).permute({2, 0, 3, 1, 4});
  const double scale = 1.0 / std::sqrt(double(c / heads));
  auto attn = nn::matmul(parts[0] * scale, parts[1].transpose(-2, -1));  // [Bw, heads, n, n]
  auto idx = relative_position_index.slice(0, 0, n).slice(1, 0, n).reshape({-1});
  auto bias = relative_position_bias_table.index_select(0, idx).view({n, n, heads}).permute({2, 0, 1});
  attn.add_(bias);  // broadcast over windows; the matmul output is ours to modify
  if (mask.defined()) {
    const int64_t nw = mask.size(0);
    TF_CHECK(bw % nw == 0 && mask.size(1) == n, InvalidArgument, "WindowAttention: mask ", mask.sizes().vec(),
             " does not fit ", bw, " windows of ", n, " tokens");
    attn.view({bw / nw, nw, heads, n, n}).add_(mask.unsqueeze(1));
  }
  attn = attn.softmax(-1);
  if (attention) *attention = attn;
  auto out = nn::matmul(attn_drop->forward(attn), parts[2]);  // [Bw, heads, n, d]
  out = out.transpose(1, 2).reshape({bw, n, c});
  return proj_drop->forward(nn::linear(*proj, out));
}

// ------------------------------------------------------------------------------------ SwinTransformerBlock

SwinTransformerBlockImpl::SwinTransformerBlockImpl(SwinTransformerBlockOptions options_)
    : options(std::move(options_)) {
  reset();
}

void SwinTransformerBlockImpl::reset() {
  const char* name = "SwinTransformerBlock";
  check_rate(options.drop(), name, "drop");
  check_rate(options.attn_drop(), name, "attn_drop");
  check_rate(options.drop_path(), name, "drop_path");
  TF_CHECK(options.mlp_ratio() > 0, InvalidArgument, name, ": option mlp_ratio must be positive, got ",
           options.mlp_ratio());
  const Int3 w = arr(options.window_size()), s = arr(options.shift_size());
  for (int d = 0; d < 3; ++d)
    TF_CHECK(s[d] >= 0 && s[d] < w[d], InvalidArgument, name, ": shift_size ", vec(s),
             " must be in [0, window_size) per dim, window_size ", vec(w));
  const int64_t dim = options.dim();
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  attn = register_module("attn", WindowAttention(WindowAttentionOptions(dim, options.num_heads(),
                                                                        options.window_size())
                                                     .qkv_bias(options.qkv_bias())
                                                     .attn_drop(options.attn_drop())
                                                     .proj_drop(options.drop())));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  mlp = register_module("mlp", MLPBlock(MLPBlockOptions(dim, int64_t(double(dim) * options.mlp_ratio()))
                                            .dropout_rate(options.drop())
                                            .dropout_mode("swin")));
}

torch::Tensor SwinTransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                                torch::Tensor* attention) {
  TF_CHECK(x.dim() == 5 && x.size(4) == options.dim(), InvalidArgument,
           "SwinTransformerBlock: input must be channels-last [B, D, H, W, ", options.dim(), "], got ",
           x.sizes().vec());
  const int64_t b = x.size(0);
  const Int3 size{x.size(1), x.size(2), x.size(3)};
  Int3 w, s;
  effective_window(size, arr(options.window_size()), arr(options.shift_size()), w, s);
  Int3 padded;
  std::vector<int64_t> pad{0, 0, 0, 0, 0, 0, 0, 0};  // (C, W, H, D) pairs as F.pad orders them
  bool any_pad = false;
  for (int d = 0; d < 3; ++d) {
    const int64_t p = (w[d] - size[d] % w[d]) % w[d];
    padded[d] = size[d] + p;
    pad[2 * (3 - d) + 1] = p;
    any_pad = any_pad || p > 0;
  }
  const bool shifted = s[0] > 0 || s[1] > 0 || s[2] > 0;
  auto h = norm1->forward(x);
  if (any_pad) h = torch::constant_pad_nd(h, pad, 0);
  if (shifted) h = torch::roll(h, {-s[0], -s[1], -s[2]}, {1, 2, 3});
  auto windows = attn->forward(window_partition(h, w), shifted ? mask : torch::Tensor(), attention);
  h = window_reverse(windows, w, b, padded);
  if (shifted) h = torch::roll(h, {s[0], s[1], s[2]}, {1, 2, 3});
  if (any_pad) h = h.slice(1, 0, size[0]).slice(2, 0, size[1]).slice(3, 0, size[2]);
  auto y = x + drop_path(h, options.drop_path(), is_training());
  return y + drop_path(mlp->forward(norm2->forward(y)), options.drop_path(), is_training());
}

// -------------------------------------------------------------------------------------------- PatchMerging

PatchMergingImpl::PatchMergingImpl(PatchMergingOptions options_) : options(std::move(options_)) { reset(); }

void PatchMergingImpl::reset() {
  TF_CHECK(options.version() == "merging" || options.version() == "mergingv2", InvalidArgument,
           "PatchMerging: option version must be \"merging\" or \"mergingv2\", got \"", options.version(), "\"");
  TF_CHECK(options.dim() > 0, InvalidArgument, "PatchMerging: dim must be positive, got ", options.dim());
  const int64_t dim = options.dim();
  reduction = register_module("reduction", torch::nn::Linear(torch::nn::LinearOptions(8 * dim, 2 * dim).bias(false)));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({8 * dim})));
}

torch::Tensor PatchMergingImpl::forward(const torch::Tensor& x) {
  TF_CHECK(x.dim() == 5 && x.size(4) == options.dim(), InvalidArgument,
           "PatchMerging: input must be channels-last [B, D, H, W, ", options.dim(), "], got ", x.sizes().vec());
  torch::Tensor y = x;
  const int64_t d = x.size(1), h = x.size(2), w = x.size(3);
  if (d % 2 || h % 2 || w % 2) y = torch::constant_pad_nd(x, {0, 0, 0, w % 2, 0, h % 2, 0, d % 2}, 0);
  auto part = [&](int64_t i, int64_t j, int64_t k) {
    return y.slice(1, i, torch::indexing::None, 2).slice(2, j, torch::indexing::None, 2).slice(3, k,
                                                                                              torch::indexing::None, 2);
  };
  std::vector<torch::Tensor> parts;
  if (options.version() == "mergingv2") {
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t k = 0; k < 2; ++k) parts.push_back(part(i, j, k));
  } else {
    // MONAI 1.5's "merging" order (verified against the MONAI 1.5.0 fixture): single offsets before pairs.
    const int64_t order[8][3] = {{0, 0, 0}, {1, 0, 0}, {0, 1, 0}, {0, 0, 1},
                                 {1, 1, 0}, {1, 0, 1}, {0, 1, 1}, {1, 1, 1}};
    for (const auto& o : order) parts.push_back(part(o[0], o[1], o[2]));
  }
  return nn::linear(*reduction, norm->forward(torch::cat(parts, -1)));
}

torch::Tensor compute_mask(const Int3& dims, const Int3& window_size, const Int3& shift_size, torch::Device device) {
  // Region labels exactly as MONAI assigns them: three slices per dim, later assignments overwrite earlier ones
  // (with a zero shift the last slice is the whole dim).
  auto img = torch::zeros({1, dims[0], dims[1], dims[2], 1});
  auto slices = [](int64_t len, int64_t w, int64_t s) {
    return std::array<std::pair<int64_t, int64_t>, 3>{py_slice(len, std::nullopt, -w), py_slice(len, -w, -s),
                                                      py_slice(len, -s, std::nullopt)};
  };
  const auto sd = slices(dims[0], window_size[0], shift_size[0]);
  const auto sh = slices(dims[1], window_size[1], shift_size[1]);
  const auto sw = slices(dims[2], window_size[2], shift_size[2]);
  double cnt = 0;
  for (const auto& a : sd)
    for (const auto& b : sh)
      for (const auto& c : sw) {
        img.slice(1, a.first, a.second).slice(2, b.first, b.second).slice(3, c.first, c.second).fill_(cnt);
        cnt += 1;
      }
  auto windows = window_partition(img, window_size).squeeze(-1);  // [nW, n]
  auto diff = windows.unsqueeze(1) - windows.unsqueeze(2);
  return torch::zeros_like(diff).masked_fill_(diff != 0, -100.0).to(device);
}

// ------------------------------------------------------------------------------------------ SwinBasicLayer

SwinBasicLayerImpl::SwinBasicLayerImpl(SwinBasicLayerOptions options_) : options(std::move(options_)) { reset(); }

void SwinBasicLayerImpl::reset() {
  const char* name = "SwinBasicLayer";
  TF_CHECK(options.depth() >= 1, InvalidArgument, name, ": option depth must be >= 1, got ", options.depth());
  TF_CHECK(options.drop_path().empty() || int64_t(options.drop_path().size()) == options.depth(), InvalidArgument,
           name, ": option drop_path must have depth = ", options.depth(), " entries, got ",
           options.drop_path().size());
  const std::string& ds = options.downsample();
  TF_CHECK(ds.empty() || ds == "merging" || ds == "mergingv2", InvalidArgument, name,
           ": option downsample must be \"merging\", \"mergingv2\" or \"\", got \"", ds, "\"");
  const Int3 w = arr(options.window_size());
  check_positive(w, name, "window_size");
  const Int3 shift{w[0] / 2, w[1] / 2, w[2] / 2};
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.depth(); ++i) {
    blocks->push_back(SwinTransformerBlock(
        SwinTransformerBlockOptions(options.dim(), options.num_heads(), options.window_size(),
                                    i % 2 == 0 ? torch::ExpandingArray<3>(0) : torch::ExpandingArray<3>(vec(shift)))
            .mlp_ratio(options.mlp_ratio())
            .qkv_bias(options.qkv_bias())
            .drop(options.drop())
            .attn_drop(options.attn_drop())
            .drop_path(options.drop_path().empty() ? 0.0 : options.drop_path()[i])));
  }
  downsample = nullptr;
  if (!ds.empty()) downsample = register_module("downsample", PatchMerging(PatchMergingOptions(options.dim()).version(ds)));
}

torch::Tensor SwinBasicLayerImpl::forward(const torch::Tensor& x, std::vector<torch::Tensor>* attentions) {
  TF_CHECK(x.dim() == 5 && x.size(1) == options.dim(), InvalidArgument, "SwinBasicLayer: input must be [B, ",
           options.dim(), ", D, H, W], got ", x.sizes().vec());
  const Int3 size{x.size(2), x.size(3), x.size(4)}, w0 = arr(options.window_size());
  Int3 w, s;
  effective_window(size, w0, {w0[0] / 2, w0[1] / 2, w0[2] / 2}, w, s);
  Int3 padded;
  for (int d = 0; d < 3; ++d) padded[d] = (size[d] + w[d] - 1) / w[d] * w[d];
  // Only shifted blocks read the mask; with no shift left (small dims) none is needed.
  const bool shifted = s[0] > 0 || s[1] > 0 || s[2] > 0;
  const auto mask = shifted ? compute_mask(padded, w, s, x.device()).to(x.dtype()) : torch::Tensor();
  // Channels-last; contiguous() is free when x is already a channels-first view of channels-last memory.
  auto h = x.permute({0, 2, 3, 4, 1}).contiguous();
  for (const auto& module : *blocks) {
    torch::Tensor att;
    h = module->as<SwinTransformerBlockImpl>()->forward(h, mask, attentions ? &att : nullptr);
    if (attentions) attentions->push_back(att);
  }
  if (downsample) h = downsample->forward(h);
  return h.permute({0, 4, 1, 2, 3});
}

// ----------------------------------------------------------------------------------------- SwinTransformer

SwinTransformerImpl::SwinTransformerImpl(SwinTransformerOptions options_) : options(std::move(options_)) {
  reset();
}

void SwinTransformerImpl::reset() {
  const char* name = "SwinTransformer";
  const auto& depths = options.depths();
  const auto& heads = options.num_heads();
  TF_CHECK(depths.size() == 4, InvalidArgument, name, ": option depths must have 4 entries (one per stage), got ",
           depths);
  TF_CHECK(heads.size() == 4, InvalidArgument, name, ": option num_heads must have 4 entries (one per stage), got ",
           heads);
  check_rate(options.drop_rate(), name, "drop_rate");
  check_rate(options.attn_drop_rate(), name, "attn_drop_rate");
  check_rate(options.drop_path_rate(), name, "drop_path_rate");
  TF_CHECK(options.downsample() == "merging" || options.downsample() == "mergingv2", InvalidArgument, name,
           ": option downsample must be \"merging\" or \"mergingv2\", got \"", options.downsample(), "\"");
  int64_t total = 0;
  for (int i = 0; i < 4; ++i) {
    const int64_t dim = options.embed_dim() << i;
    TF_CHECK(depths[i] >= 1, InvalidArgument, name, ": every entry of depths must be >= 1, got ", depths);
    TF_CHECK(heads[i] >= 1 && dim % heads[i] == 0, InvalidArgument, name, ": stage ", i + 1, " width ", dim,
             " (feature_size * 2^", i, ") must be divisible by num_heads[", i, "] = ", heads[i]);
    total += depths[i];
  }
  patch_embed = register_module("patch_embed", PatchEmbed(PatchEmbedOptions(options.in_chans(), options.embed_dim())
                                                              .patch_size(options.patch_size())
                                                              .norm(options.patch_norm())));
  pos_drop = register_module("pos_drop", torch::nn::Dropout(options.drop_rate()));
  // Stochastic depth rises linearly over all blocks (torch.linspace(0, rate, total)).
  std::vector<double> dpr(total);
  for (int64_t i = 0; i < total; ++i)
    dpr[i] = total > 1 ? options.drop_path_rate() * double(i) / double(total - 1) : 0.0;
  torch::nn::ModuleList* stages[4] = {&layers1, &layers2, &layers3, &layers4};
  torch::nn::ModuleList* convs[4] = {&layers1c, &layers2c, &layers3c, &layers4c};
  int64_t offset = 0;
  for (int i = 0; i < 4; ++i) {
    const int64_t dim = options.embed_dim() << i;
    *stages[i] = register_module("layers" + std::to_string(i + 1), torch::nn::ModuleList());
    (*stages[i])->push_back(SwinBasicLayer(
        SwinBasicLayerOptions(dim, depths[i], heads[i], options.window_size())
            .drop_path(std::vector<double>(dpr.begin() + offset, dpr.begin() + offset + depths[i]))
            .mlp_ratio(options.mlp_ratio())
            .qkv_bias(options.qkv_bias())
            .drop(options.drop_rate())
            .attn_drop(options.attn_drop_rate())
            .downsample(options.downsample())));
    offset += depths[i];
    *convs[i] = nullptr;
    if (options.use_v2()) {
      *convs[i] = register_module("layers" + std::to_string(i + 1) + "c", torch::nn::ModuleList());
      (*convs[i])->push_back(
          UnetrBasicBlock(UnetrBasicBlockOptions(dim, dim).norm_name("instance").res_block(true)));
    }
  }
}

std::vector<torch::Tensor> SwinTransformerImpl::forward(const torch::Tensor& x, bool normalize,
                                                        std::vector<torch::Tensor>* attentions) {
  auto proj_out = [normalize](const torch::Tensor& t) {
    if (!normalize) return t;
    auto cl = t.permute({0, 2, 3, 4, 1});
    return torch::layer_norm(cl, {t.size(1)}).permute({0, 4, 1, 2, 3});
  };
  std::vector<torch::Tensor> out;
  auto h = pos_drop->forward(patch_embed->forward(x));
  out.push_back(proj_out(h));
  torch::nn::ModuleList stages[4] = {layers1, layers2, layers3, layers4};
  torch::nn::ModuleList convs[4] = {layers1c, layers2c, layers3c, layers4c};
  for (int i = 0; i < 4; ++i) {
    if (convs[i]) h = convs[i]->ptr(0)->as<UnetrBasicBlockImpl>()->forward(h);
    h = stages[i]->ptr(0)->as<SwinBasicLayerImpl>()->forward(h, attentions);
    out.push_back(proj_out(h));
  }
  return out;
}

}  // namespace teachformer::nn
