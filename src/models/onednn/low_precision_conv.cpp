#include "models/detail/low_precision_conv.hpp"

#include <algorithm>
#include <map>
#include <mutex>

#include <oneapi/dnnl/dnnl.hpp>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/nn/flops.hpp"

namespace teachformer::models::detail {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::memory::dims dims_of(torch::IntArrayRef sizes) { return dnnl::memory::dims(sizes.begin(), sizes.end()); }

// The primitive and its scratch buffers for one input shape.
struct Plan {
  dnnl::convolution_forward conv;
  dnnl::reorder src_reorder, dst_reorder;
  dnnl::memory::desc user_src, user_dst;
  dnnl::memory src, dst, weights;
  bool dst_plain = false;
  std::vector<int64_t> out_sizes;
};

}  // namespace

struct LowPrecisionConv3d::Impl {
  Impl() : engine(dnnl::engine::kind::cpu, 0), stream(engine) {}
  dnnl::engine engine;
  dnnl::stream stream;
  Precision precision = Precision::kBFloat16;
  torch::Tensor weight_f32;          // [O, I, k, k, k]: as given (bf16) or integral values in [-127, 127] (int8)
  std::vector<float> out_scales;     // int8: 1 / (x_scale * w_scale[o])
  float x_scale = 1.0f;              // int8: 127 / input_absmax (s8), 255 / (input_absmax - input_min) (u8)
  int32_t zero_point = -1;           // int8: the u8 code of 0 for asymmetric activations; -1 for symmetric s8
  std::vector<int64_t> stride, padding;
  std::mutex mutex;
  std::map<std::vector<int64_t>, Plan> plans;

  Plan& plan(torch::IntArrayRef in_sizes) {
    const std::vector<int64_t> key(in_sizes.begin(), in_sizes.end());
    auto found = plans.find(key);
    if (found != plans.end()) return found->second;
    const int64_t out_c = weight_f32.size(0), k = weight_f32.size(2);
    std::vector<int64_t> out{in_sizes[0], out_c};
    for (int d = 0; d < 3; ++d) {
      const int64_t o = (in_sizes[2 + d] + 2 * padding[d] - k) / stride[d] + 1;
      TF_CHECK(o >= 1, InvalidArgument, "low-precision conv3d: input ", key, " is smaller than the kernel ", k);
      out.push_back(o);
    }
    const bool int8 = precision == Precision::kInt8;
    const bool asymmetric = int8 && zero_point >= 0;
    const dt act = int8 ? dt::s8 : dt::bf16, src_dt = asymmetric ? dt::u8 : act;
    const dnnl::memory::dims src_dims = dims_of(in_sizes), dst_dims = dims_of(out),
                             wei_dims = dims_of(weight_f32.sizes());
    dnnl::primitive_attr conv_attr, src_attr;
    if (int8) {
      conv_attr.set_output_scales(2, out_scales);  // mask 2: one scale per output channel
      src_attr.set_output_scales(0, {x_scale});
      if (asymmetric) {
        conv_attr.set_zero_points(DNNL_ARG_SRC, 0, {zero_point});
        src_attr.set_zero_points(DNNL_ARG_DST, 0, {zero_point});
      }
    }
    Plan p;
    try {
      dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                           {src_dims, src_dt, tag::any}, {wei_dims, act, tag::any},
                                           {dst_dims, dt::f32, tag::any}, dims_of(stride), dims_of(padding),
                                           dims_of(padding));
      dnnl::convolution_forward::primitive_desc pd(desc, conv_attr, engine);
      p.user_src = dnnl::memory::desc(src_dims, dt::f32, tag::ncdhw);
      p.user_dst = dnnl::memory::desc(dst_dims, dt::f32, tag::ncdhw);
      p.src = dnnl::memory(pd.src_desc(), engine);
      p.dst_plain = pd.dst_desc() == p.user_dst;
      if (!p.dst_plain) p.dst = dnnl::memory(pd.dst_desc(), engine);
      p.src_reorder = dnnl::reorder(dnnl::reorder::primitive_desc(engine, p.user_src, engine, pd.src_desc(), src_attr));
      if (!p.dst_plain)
        p.dst_reorder = dnnl::reorder(dnnl::reorder::primitive_desc(engine, pd.dst_desc(), engine, p.user_dst));
      // Weights in the layout this primitive wants: shared with an earlier plan that wants the same layout.
      const dnnl::memory::desc wdesc = pd.weights_desc();
      for (auto& [k2, other] : plans)
        if (other.weights.get_desc() == wdesc) p.weights = other.weights;
      if (!p.weights) {
        dnnl::memory user_w({wei_dims, dt::f32, tag::oidhw}, engine, weight_f32.data_ptr());
        p.weights = dnnl::memory(wdesc, engine);
        dnnl::reorder(user_w, p.weights).execute(stream, user_w, p.weights);
        stream.wait();
      }
      p.conv = dnnl::convolution_forward(pd);
      p.out_sizes = out;
    } catch (const dnnl::error& e) {
      TF_THROW(InvalidArgument, "low-precision conv3d: oneDNN has no ", precision_name(precision),
               " convolution kernel for input ", key, " on this CPU (", e.what(), "); use --precision fp32");
    }
    return plans.emplace(key, std::move(p)).first->second;
  }
};

LowPrecisionConv3d::LowPrecisionConv3d(const torch::Tensor& weight, std::vector<int64_t> stride,
                                       std::vector<int64_t> padding, Precision precision, float input_absmax,
                                       std::optional<float> input_min)
    : impl_(std::make_unique<Impl>()) {
  TF_CHECK(weight.dim() == 5 && weight.size(2) == weight.size(3) && weight.size(3) == weight.size(4), InvalidArgument,
           "low-precision conv3d: expected a cubic weight [O, I, k, k, k], got ", weight.sizes().vec());
  TF_CHECK(stride.size() == 3 && padding.size() == 3, InvalidArgument,
           "low-precision conv3d: stride and padding need 3 values, got ", stride, " and ", padding);
  TF_CHECK(precision != Precision::kFloat32, InvalidArgument,
           "low-precision conv3d: float32 runs through LibTorch, not this class");
  Impl& m = *impl_;
  m.precision = precision;
  m.stride = std::move(stride);
  m.padding = std::move(padding);
  const torch::Tensor w = weight.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  if (precision == Precision::kInt8) {
    TF_CHECK(std::isfinite(input_absmax) && input_absmax > 0.0f, InvalidArgument,
             "low-precision conv3d: int8 needs a calibrated input range > 0, got ", input_absmax);
    if (input_min) {
      const float lo = std::min(*input_min, 0.0f);
      TF_CHECK(std::isfinite(lo) && lo >= -input_absmax, InvalidArgument,
               "low-precision conv3d: the calibrated input minimum must be in [-", input_absmax, ", 0], got ", lo);
      m.x_scale = 255.0f / (input_absmax - lo);
      m.zero_point = int32_t(std::lround(-lo * m.x_scale));
    } else {
      m.x_scale = 127.0f / input_absmax;
    }
    const int64_t o = w.size(0);
    const torch::Tensor w_max = w.abs().reshape({o, -1}).amax(1).clamp_min(1e-12f);
    const torch::Tensor w_scale = 127.0f / w_max;
    m.weight_f32 = (w * w_scale.view({-1, 1, 1, 1, 1})).round().clamp(-127, 127).contiguous();
    const auto ws = w_scale.contiguous();
    m.out_scales.resize(o);
    for (int64_t c = 0; c < o; ++c) m.out_scales[c] = 1.0f / (m.x_scale * ws.data_ptr<float>()[c]);
  } else {
    m.weight_f32 = w.clone();
  }
}

LowPrecisionConv3d::~LowPrecisionConv3d() = default;

Precision LowPrecisionConv3d::precision() const { return impl_->precision; }

torch::Tensor LowPrecisionConv3d::forward(const torch::Tensor& input) {
  TF_CHECK(input.dim() == 5 && input.size(1) == impl_->weight_f32.size(1), InvalidArgument,
           "low-precision conv3d: expected input [B, ", impl_->weight_f32.size(1), ", D, H, W], got ",
           input.sizes().vec());
  const torch::Tensor x = input.to(torch::kFloat32).contiguous();
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mutex);
  Plan& p = m.plan(x.sizes());
  torch::Tensor y = torch::empty(p.out_sizes, x.options());
  dnnl::memory user_src(p.user_src, m.engine, x.data_ptr());
  dnnl::memory user_dst(p.user_dst, m.engine, y.data_ptr());
  p.src_reorder.execute(m.stream, user_src, p.src);
  p.conv.execute(m.stream, {{DNNL_ARG_SRC, p.src}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, p.dst_plain ? user_dst : p.dst}});
  if (!p.dst_plain) p.dst_reorder.execute(m.stream, p.dst, user_dst);
  m.stream.wait();
  nn::count_macs("conv", y.numel() * m.weight_f32[0].numel());
  return y;
}

bool onednn_available() { return true; }

std::string onednn_isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

}  // namespace teachformer::models::detail
