#include "nn/detail/fast_ops.hpp"
#include "teachformer/nn/kernels.hpp"

#include <atomic>
#include <cstdlib>
#include <string>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/nn/flops.hpp"

namespace teachformer::nn::detail {
namespace {

// Eight independent float lanes per 4096-element chunk (vectorisable without reassociation), chunks summed in
// double: accurate for the millions of voxels of a full-resolution channel.
constexpr int64_t kLanes = 8;
constexpr int64_t kChunk = 4096;

// Work items per thread so that a parallel region only starts when each thread gets >= ~32k elements: small tensors
// (the 1/16 grid) stay on the calling thread, where a thread wake-up would cost more than the work.
int64_t grain_for(int64_t elements_per_item) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, elements_per_item)); }

double row_sum(const float* p, int64_t n) {
  double total = 0.0;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = std::min(kChunk, n - start);
    const float* q = p + start;
    std::array<float, kLanes> acc{};
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes)
      for (int64_t j = 0; j < kLanes; ++j) acc[j] += q[i + j];
    double chunk = 0.0;
    for (int64_t j = 0; j < kLanes; ++j) chunk += acc[j];
    for (; i < len; ++i) chunk += q[i];
    total += chunk;
  }
  return total;
}

double row_sum_sq_dev(const float* p, int64_t n, float mean) {
  double total = 0.0;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = std::min(kChunk, n - start);
    const float* q = p + start;
    std::array<float, kLanes> acc{};
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes)
      for (int64_t j = 0; j < kLanes; ++j) {
        const float d = q[i + j] - mean;
        acc[j] += d * d;
      }
    double chunk = 0.0;
    for (int64_t j = 0; j < kLanes; ++j) chunk += acc[j];
    for (; i < len; ++i) chunk += double(q[i] - mean) * double(q[i] - mean);
    total += chunk;
  }
  return total;
}

inline float nan_max(float a, float b) { return (b > a || std::isnan(b)) ? b : a; }

std::atomic<bool>& fast_switch() {
  static std::atomic<bool> on{[] {
    const char* v = std::getenv("TF_NO_FAST_KERNELS");
    return !(v && *v && std::string(v) != "0");
  }()};
  return on;
}

// Rows of the last dim are read as contiguous runs (a dim of size 1 may carry any stride).
bool unit_last_stride(const torch::Tensor& t) { return t.size(-1) == 1 || t.stride(-1) == 1; }

void require_float5d(const torch::Tensor& x, const char* what) {
  TF_CHECK(x.dim() == 5 && x.scalar_type() == torch::kFloat32 && x.device().is_cpu(), InvalidArgument, what,
           ": expected a float32 CPU tensor [B, C, D, H, W], got ", x.sizes().vec(), " ", x.dtype());
}

// Linear-interpolation table of an x2 upsampling with align_corners = false (PyTorch's rule: source index
// (dst + 0.5) / 2 - 0.5 clamped at 0; the upper neighbour clamped to the last index).
struct LerpTable {
  std::vector<int64_t> i0, i1;
  std::vector<float> w0, w1;
};
LerpTable lerp_table(int64_t in) {
  LerpTable t;
  const int64_t out = 2 * in;
  t.i0.resize(out), t.i1.resize(out), t.w0.resize(out), t.w1.resize(out);
  for (int64_t o = 0; o < out; ++o) {
    const float src = std::max(0.5f * (float(o) + 0.5f) - 0.5f, 0.0f);
    const int64_t a = std::min<int64_t>(int64_t(src), in - 1);
    const float l1 = src - float(a);
    t.i0[o] = a;
    t.i1[o] = std::min<int64_t>(a + 1, in - 1);
    t.w1[o] = l1;
    t.w0[o] = 1.0f - l1;
  }
  return t;
}

}  // namespace

bool use_fast_kernels(const torch::Tensor& x) {
  return fast_switch().load() && !torch::GradMode::is_enabled() && x.defined() && x.device().is_cpu() &&
         x.scalar_type() == torch::kFloat32;
}

void instance_norm_act_(torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, double eps,
                        bool activate, double negative_slope) {
  require_float5d(x, "instance_norm_act_");
  TF_CHECK(x.is_contiguous(), InvalidArgument, "instance_norm_act_: input must be contiguous");
  const int64_t channels = x.size(1);
  const int64_t rows = x.size(0) * channels;
  const int64_t n = x.size(2) * x.size(3) * x.size(4);
  TF_CHECK(n > 0, InvalidArgument, "instance_norm_act_: empty spatial size ", x.sizes().vec());
  const bool affine = weight.defined();
  torch::Tensor w = affine ? weight.detach().to(torch::kFloat32).contiguous() : torch::Tensor();
  torch::Tensor b = bias.defined() ? bias.detach().to(torch::kFloat32).contiguous() : torch::Tensor();
  if (affine) TF_CHECK(w.numel() == channels, InvalidArgument, "instance_norm_act_: weight has ", w.numel(),
                       " values for ", channels, " channels");
  float* data = x.data_ptr<float>();
  const float* wp = affine ? w.data_ptr<float>() : nullptr;
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  at::parallel_for(0, rows, grain_for(3 * n), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* p = data + r * n;
      const int64_t c = r % channels;
      const double mean = row_sum(p, n) / double(n);
      const double var = row_sum_sq_dev(p, n, float(mean)) / double(n);
      const double inv = 1.0 / std::sqrt(var + eps);
      const double scale = inv * (wp ? double(wp[c]) : 1.0);
      const float a = float(scale);
      const float s = float((bp ? double(bp[c]) : 0.0) - mean * scale);
      if (activate) {
        // Branch-free (max/min vectorise; a data-dependent branch mispredicts half the time). NaN stays NaN.
        const float slope = float(negative_slope);
        for (int64_t i = 0; i < n; ++i) {
          const float v = p[i] * a + s;
          p[i] = std::max(v, 0.0f) + slope * std::min(v, 0.0f);
        }
      } else {
        for (int64_t i = 0; i < n; ++i) p[i] = p[i] * a + s;
      }
    }
  });
}

torch::Tensor max_pool2(const torch::Tensor& input) {
  require_float5d(input, "max_pool2");
  const torch::Tensor x = input.contiguous();
  const int64_t D = x.size(2), H = x.size(3), W = x.size(4);
  TF_CHECK(D % 2 == 0 && H % 2 == 0 && W % 2 == 0, InvalidArgument, "max_pool2: spatial sizes must be even, got ",
           x.sizes().vec());
  const int64_t d = D / 2, h = H / 2, w = W / 2;
  torch::Tensor out = torch::empty({x.size(0), x.size(1), d, h, w}, x.options());
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t planes = x.size(0) * x.size(1) * d;
  at::parallel_for(0, planes, grain_for(8 * h * w), [&](int64_t begin, int64_t end) {
    for (int64_t pl = begin; pl < end; ++pl) {
      const int64_t row = pl / d, z = pl % d;
      const float* s0 = src + (row * D + 2 * z) * H * W;
      const float* s1 = s0 + H * W;
      float* o = dst + pl * h * w;
      for (int64_t y = 0; y < h; ++y) {
        const float* a0 = s0 + 2 * y * W;
        const float* a1 = a0 + W;
        const float* b0 = s1 + 2 * y * W;
        const float* b1 = b0 + W;
        for (int64_t xx = 0; xx < w; ++xx) {
          const int64_t i = 2 * xx;
          float m = a0[i];
          m = nan_max(m, a0[i + 1]);
          m = nan_max(m, a1[i]);
          m = nan_max(m, a1[i + 1]);
          m = nan_max(m, b0[i]);
          m = nan_max(m, b0[i + 1]);
          m = nan_max(m, b1[i]);
          m = nan_max(m, b1[i + 1]);
          o[y * w + xx] = m;
        }
      }
    }
  });
  return out;
}

torch::Tensor upsample_trilinear2(const torch::Tensor& input) {
  require_float5d(input, "upsample_trilinear2");
  const torch::Tensor x = input.contiguous();
  const int64_t D = x.size(2), H = x.size(3), W = x.size(4);
  const int64_t oD = 2 * D, oH = 2 * H, oW = 2 * W;
  torch::Tensor out = torch::empty({x.size(0), x.size(1), oD, oH, oW}, x.options());
  const LerpTable td = lerp_table(D), th = lerp_table(H);
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t planes = x.size(0) * x.size(1) * oD;
  // Separable: blend the four input rows of an output row along z and y first (contiguous, vectorisable), then
  // expand along x with the fixed x2 weights: out[2i] = 0.25 r[i-1] + 0.75 r[i], out[2i+1] = 0.75 r[i] + 0.25 r[i+1]
  // (indices clamped at the borders, as align_corners = false does).
  at::parallel_for(0, planes, grain_for(oH * oW), [&](int64_t begin, int64_t end) {
    std::vector<float> r(W);
    for (int64_t pl = begin; pl < end; ++pl) {
      const int64_t row = pl / oD, oz = pl % oD;
      const float* plane0 = src + (row * D + td.i0[oz]) * H * W;
      const float* plane1 = src + (row * D + td.i1[oz]) * H * W;
      const float wz0 = td.w0[oz], wz1 = td.w1[oz];
      float* o = dst + pl * oH * oW;
      for (int64_t oy = 0; oy < oH; ++oy) {
        const float* a0 = plane0 + th.i0[oy] * W;
        const float* a1 = plane0 + th.i1[oy] * W;
        const float* b0 = plane1 + th.i0[oy] * W;
        const float* b1 = plane1 + th.i1[oy] * W;
        const float w00 = wz0 * th.w0[oy], w01 = wz0 * th.w1[oy], w10 = wz1 * th.w0[oy], w11 = wz1 * th.w1[oy];
        for (int64_t i = 0; i < W; ++i) r[i] = w00 * a0[i] + w01 * a1[i] + w10 * b0[i] + w11 * b1[i];
        float* orow = o + oy * oW;
        orow[0] = r[0];
        for (int64_t i = 1; i < W; ++i) orow[2 * i] = 0.25f * r[i - 1] + 0.75f * r[i];
        for (int64_t i = 0; i + 1 < W; ++i) orow[2 * i + 1] = 0.75f * r[i] + 0.25f * r[i + 1];
        orow[2 * W - 1] = r[W - 1];
      }
    }
  });
  return out;
}

namespace {
// Not counted (the callers count what the op means).
// Walks the rows of a full-resolution [B, C, 2D, 2H, 2W] tensor plane by plane (one parallel item per plane) beside
// its eight sub-voxel phases [B, C, 8, D, H, W] (both contiguous, phase p = (pd, ph, pw)): fn(row, phase) with the
// offsets of the row's 2W voxels and of the W voxels of phase (pd, ph, 0) that fill its even positions; phase
// (pd, ph, 1), the odd ones, starts D H W further. Each full-resolution row is visited once, in order (one strided
// pass per phase moved the whole tensor through the caches eight times).
template <typename Fn>
void for_each_phase_row(int64_t B, int64_t C, int64_t D, int64_t H, int64_t W, Fn&& fn) {
  const int64_t n = D * H * W;
  at::parallel_for(0, B * C * 2 * D, grain_for(4 * H * W), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t zo = r % (2 * D), bc = r / (2 * D), z = zo >> 1, pd = zo & 1;
      for (int64_t yo = 0; yo < 2 * H; ++yo)
        fn((r * 2 * H + yo) * 2 * W, bc * 8 * n + (pd * 4 + (yo & 1) * 2) * n + (z * H + (yo >> 1)) * W);
    }
  });
}

// The eight phases y -> out (added to what out holds with `accumulate`).
void interleave_all_phases_(float* out, const float* y, int64_t B, int64_t C, int64_t D, int64_t H, int64_t W,
                            bool accumulate) {
  const int64_t n = D * H * W;
  for_each_phase_row(B, C, D, H, W, [&](int64_t row, int64_t phase) {
    float* o = out + row;
    const float* a0 = y + phase;
    const float* a1 = a0 + n;
    if (accumulate) {
      for (int64_t x = 0; x < W; ++x) {
        o[2 * x] += a0[x];
        o[2 * x + 1] += a1[x];
      }
    } else {
      for (int64_t x = 0; x < W; ++x) {
        o[2 * x] = a0[x];
        o[2 * x + 1] = a1[x];
      }
    }
  });
}

// The inverse: in -> its eight phases, cols.
void gather_all_phases_(float* cols, const float* in, int64_t B, int64_t C, int64_t D, int64_t H, int64_t W) {
  const int64_t n = D * H * W;
  for_each_phase_row(B, C, D, H, W, [&](int64_t row, int64_t phase) {
    const float* i = in + row;
    float* a0 = cols + phase;
    float* a1 = a0 + n;
    for (int64_t x = 0; x < W; ++x) {
      a0[x] = i[2 * x];
      a1[x] = i[2 * x + 1];
    }
  });
}


torch::Tensor raw_conv3d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                         torch::IntArrayRef stride, torch::IntArrayRef padding) {
  // 1^3 convolutions are matrix products: oneDNN 2.6 ran the student's about 20x slower than a GEMM (at the
  // teachers' wide 96^3 layers the GEMM loses instead; their blocks do not come here for 1^3 convolutions).
  const bool pointwise = weight.dim() == 5 && weight.size(2) == 1 && weight.size(3) == 1 && weight.size(4) == 1 &&
                         std::all_of(stride.begin(), stride.end(), [](int64_t s) { return s == 1; }) &&
                         std::all_of(padding.begin(), padding.end(), [](int64_t p) { return p == 0; });
  // Non-overlapping 2^3 convolutions (stride 2) are a space-to-depth gather plus one GEMM without grad mode.
  const bool patchify = weight.dim() == 5 && weight.size(2) == 2 && weight.size(3) == 2 && weight.size(4) == 2 &&
                        std::all_of(stride.begin(), stride.end(), [](int64_t s) { return s == 2; }) &&
                        std::all_of(padding.begin(), padding.end(), [](int64_t p) { return p == 0; });
  if (patchify && use_fast_kernels(x) && x.dim() == 5 && x.size(1) == weight.size(1) && x.size(2) % 2 == 0 && x.size(3) % 2 == 0 && x.size(4) % 2 == 0) {
    const torch::Tensor xin = x.contiguous();
    const int64_t b = x.size(0), in = x.size(1), out = weight.size(0);
    const int64_t d = x.size(2) / 2, h = x.size(3) / 2, w = x.size(4) / 2;
    torch::Tensor cols = torch::empty({b, in, 8, d, h, w}, x.options());  // rows ordered (c, kd, kh, kw) as weight
    gather_all_phases_(cols.data_ptr<float>(), xin.data_ptr<float>(), b, in, d, h, w);
    const torch::Tensor wm = weight.reshape({out, in * 8});
    const torch::Tensor cm = cols.view({b, in * 8, d * h * w});
    torch::Tensor y = bias.defined() ? torch::baddbmm(bias.view({1, out, 1}), wm.expand({b, -1, -1}), cm)
                                     : torch::matmul(wm, cm);
    return y.view({b, out, d, h, w});
  }
  if (pointwise && x.dim() == 5 && x.size(1) == weight.size(1)) {
    const int64_t b = x.size(0), out = weight.size(0);
    const torch::Tensor w = weight.reshape({out, weight.size(1)});
    const torch::Tensor xf = x.reshape({b, x.size(1), -1});
    torch::Tensor y = bias.defined() ? torch::baddbmm(bias.view({1, out, 1}), w.expand({b, -1, -1}), xf)
                                     : torch::matmul(w, xf);
    return y.view({b, out, x.size(2), x.size(3), x.size(4)});
  }
  if (use_fast_kernels(x) && weight.scalar_type() == torch::kFloat32 && x.dim() == 5) {
    return at::mkldnn_convolution(x.contiguous(), weight.contiguous(),
                                  bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt, padding, stride,
                                  /*dilation=*/{1, 1, 1}, /*groups=*/1);
  }
  return torch::conv3d(x, weight, bias, stride, padding);
}
}  // namespace

torch::Tensor conv3d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     torch::IntArrayRef stride, torch::IntArrayRef padding) {
  torch::Tensor y = raw_conv3d(x, weight, bias, stride, padding);
  count_macs("conv", conv_macs(weight, y));
  return y;
}

torch::Tensor conv3d(torch::nn::Conv3dImpl& m, const torch::Tensor& x) {
  const auto& o = m.options;
  TF_CHECK(o.groups() == 1 && c10::holds_alternative<torch::ExpandingArray<3>>(o.padding()), InvalidArgument,
           "conv3d: only groups 1 and explicit zero padding are supported");
  const auto& pad = c10::get<torch::ExpandingArray<3>>(o.padding());
  return conv3d(x, m.weight, m.bias, *o.stride(), *pad);
}

void scatter_phase_(torch::Tensor& out, const torch::Tensor& phase, int pd, int ph, int pw, bool accumulate) {
  TF_CHECK(out.dim() == 5 && out.scalar_type() == torch::kFloat32 && out.stride(4) == 1, InvalidArgument,
           "scatter_phase_: output must be float32 [B, C, 2D, 2H, 2W] with unit last stride");
  const int64_t B = out.size(0), C = out.size(1), D = out.size(2) / 2, H = out.size(3) / 2, W = out.size(4) / 2;
  TF_CHECK(phase.dim() == 5 && phase.scalar_type() == torch::kFloat32 && unit_last_stride(phase) &&
               phase.sizes().vec() == std::vector<int64_t>({B, C, D, H, W}),
           InvalidArgument, "scatter_phase_: phase must be float32 ", std::vector<int64_t>{B, C, D, H, W},
           " with unit last stride, got ", phase.sizes().vec());
  const float* src = phase.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t sb = phase.stride(0), sc = phase.stride(1), sz = phase.stride(2), sy = phase.stride(3);
  const int64_t ob = out.stride(0), oc = out.stride(1), oz = out.stride(2), oy = out.stride(3);
  at::parallel_for(0, B * C * D, grain_for(H * W), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t z = r % D, c = (r / D) % C, b = r / (D * C);
      for (int64_t y = 0; y < H; ++y) {
        const float* a = src + b * sb + c * sc + z * sz + y * sy;
        float* o = dst + b * ob + c * oc + (2 * z + pd) * oz + (2 * y + ph) * oy + pw;
        if (accumulate)
          for (int64_t x = 0; x < W; ++x) o[2 * x] += a[x];
        else
          for (int64_t x = 0; x < W; ++x) o[2 * x] = a[x];
      }
    }
  });
}

void conv_transpose3d_k3s2_into(torch::Tensor out, const torch::Tensor& x, const torch::Tensor& weight,
                                const torch::Tensor& bias) {
  TF_CHECK(x.dim() == 5 && weight.dim() == 5 && weight.size(2) == 3 && weight.size(3) == 3 && weight.size(4) == 3,
           InvalidArgument, "conv_transpose3d_k3s2: expected x [B, I, D, H, W] and weight [I, O, 3, 3, 3], got ",
           x.sizes().vec(), " and ", weight.sizes().vec());
  TF_CHECK(x.size(1) == weight.size(0), InvalidArgument, "conv_transpose3d_k3s2: input has ", x.size(1),
           " channels, weight expects ", weight.size(0));
  const std::vector<int64_t> expected{x.size(0), weight.size(1), 2 * x.size(2), 2 * x.size(3), 2 * x.size(4)};
  TF_CHECK(out.sizes().vec() == expected, InvalidArgument, "conv_transpose3d_k3s2: output must be ", expected,
           ", got ", out.sizes().vec());
  // Output index o = 2 i - 1 + k. Even outputs (o = 2m) take tap k = 1 at i = m; odd outputs (o = 2m + 1) take
  // k = 2 at i = m and k = 0 at i = m + 1 (zero past the end: output_padding). So each output parity per dim is a
  // plain convolution with 1 or 2 taps; the 2-tap one runs with symmetric padding 1 and skips its first output.
  static const std::array<std::vector<int64_t>, 2> kTaps{std::vector<int64_t>{1}, std::vector<int64_t>{2, 0}};
  const torch::Tensor xin = x.contiguous();
  std::array<torch::Tensor, 2> tap_index;
  for (int p = 0; p < 2; ++p) tap_index[p] = torch::tensor(kTaps[p], torch::kLong);
  const bool fast = use_fast_kernels(out) && use_fast_kernels(x) && out.stride(4) == 1;
  for (int pd = 0; pd < 2; ++pd)
    for (int ph = 0; ph < 2; ++ph)
      for (int pw = 0; pw < 2; ++pw) {
        torch::Tensor k = weight.index_select(2, tap_index[pd]).index_select(3, tap_index[ph])
                              .index_select(4, tap_index[pw]).transpose(0, 1).contiguous();
        torch::Tensor y = raw_conv3d(xin, k, bias, {1, 1, 1}, {pd, ph, pw});
        y = y.narrow(2, pd, x.size(2)).narrow(3, ph, x.size(3)).narrow(4, pw, x.size(4));
        if (fast) {
          scatter_phase_(out, y, pd, ph, pw);
        } else {
          out.slice(2, pd, torch::indexing::None, 2)
              .slice(3, ph, torch::indexing::None, 2)
              .slice(4, pw, torch::indexing::None, 2)
              .copy_(y);
        }
      }
  count_macs("conv_transpose", conv_transpose_macs(weight, x));
}

torch::Tensor interleave_phases(const torch::Tensor& y, int64_t b, int64_t c, int64_t d, int64_t h, int64_t w,
                                const torch::Tensor& onto) {
  if (!use_fast_kernels(y)) {
    torch::Tensor out =
        y.reshape({b, c, 2, 2, 2, d, h, w}).permute({0, 1, 5, 2, 6, 3, 7, 4}).reshape({b, c, 2 * d, 2 * h, 2 * w});
    return onto.defined() ? out + onto : out;
  }
  const bool accumulate = onto.defined() && onto.scalar_type() == torch::kFloat32 && onto.is_contiguous() &&
                          onto.sizes() == torch::IntArrayRef({b, c, 2 * d, 2 * h, 2 * w});
  torch::Tensor out = accumulate ? onto : torch::empty({b, c, 2 * d, 2 * h, 2 * w}, y.options());
  const torch::Tensor phases = y.reshape({b, c, 8, d, h, w}).contiguous();
  interleave_all_phases_(out.data_ptr<float>(), phases.data_ptr<float>(), b, c, d, h, w, accumulate);
  return onto.defined() && !accumulate ? out.add_(onto) : out;
}

}  // namespace teachformer::nn::detail

namespace teachformer::nn {
void set_fast_kernels(bool enabled) { detail::fast_switch().store(enabled); }
bool fast_kernels_enabled() { return detail::fast_switch().load(); }

torch::Tensor conv_transpose3d_k2s2(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                    const torch::Tensor& add_to) {
  // Each input voxel scatters into its own 2x2x2 output block: y[b, (o, kd, kh, kw), voxel] = W^T x, no overlap.
  TF_CHECK(x.dim() == 5 && weight.dim() == 5 && weight.size(2) == 2 && weight.size(3) == 2 && weight.size(4) == 2 &&
               x.size(1) == weight.size(0),
           InvalidArgument, "conv_transpose3d_k2s2: expected x [B, I, D, H, W] and weight [I, O, 2, 2, 2], got ",
           x.sizes().vec(), " and ", weight.sizes().vec());
  const int64_t b = x.size(0), in = x.size(1), out = weight.size(1);
  const torch::Tensor wt = weight.reshape({in, out * 8}).t();  // [(o, kd, kh, kw), I]
  const torch::Tensor xf = x.reshape({b, in, x.size(2) * x.size(3) * x.size(4)});
  torch::Tensor y;
  if (bias.defined()) {
    const torch::Tensor bias8 = bias.repeat_interleave(8).unsqueeze(1);  // [(o, kd, kh, kw), 1]
    y = b == 1 ? torch::addmm(bias8, wt, xf[0]).unsqueeze(0) : torch::baddbmm(bias8, wt.expand({b, -1, -1}), xf);
  } else {
    y = torch::matmul(wt, xf);
  }
  count_macs("conv_transpose", conv_transpose_macs(weight, x));
  return detail::interleave_phases(y, b, out, x.size(2), x.size(3), x.size(4), add_to);
}
}  // namespace teachformer::nn
