// The student's convolutions at fp32, bf16 and int8 through oneDNN, beside the fp32 path the product runs today
// (LibTorch's mkldnn_convolution on NCDHW tensors). The ground work for a low-precision student: it measures what
// each precision gives per layer on this CPU before any of it is wired into the model.
//
//   ./bm_conv_precision --benchmark_repetitions=3      (threads: TF_BENCH_THREADS, default 2; oneDNN uses OpenMP)
//
// Layers (TeachFormer-S small on a 1 x 2 x 96^3 input; arg "size" is the input edge, 96 or 144):
//   stem  Conv3d 2 -> 16, k3 s2 p1 (full -> 1/2)      down1 Conv3d 16 -> 32, k2 s2 (1/2 -> 1/4)
//   enc1  Conv3d 32 -> 32, k3 p1 at 1/4                enc2  Conv3d 64 -> 64, k3 p1 at 1/8
// Every oneDNN variant is timed as the model would run it: the float32 NCDHW input reordered (and quantized) into
// the primitive's layout, the convolution, and the float32 output reordered back to NCDHW for the instance norm.
// int8: symmetric s8 activations (one scale per tensor, from the input's max |x|), s8 weights with one scale per
// output channel, float32 output. Counters: voxels/s (output voxels) and rel_err = ||y - y_fp32|| / ||y_fp32||.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>
#include <torch/torch.h>

#include "bench_main.hpp"

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

struct Layer {
  int64_t in, out, kernel, stride, padding, divisor;  // input grid = size / divisor
};

// Index 0..3: stem, down1, enc1, enc2.
Layer layer(int64_t index) {
  static const Layer layers[] = {{2, 16, 3, 2, 1, 1}, {16, 32, 2, 2, 0, 2}, {32, 32, 3, 1, 1, 4}, {64, 64, 3, 1, 1, 8}};
  return layers[index];
}

// The product's fp32 reference: LibTorch's oneDNN convolution on NCDHW tensors.
torch::Tensor libtorch_conv(const torch::Tensor& x, const torch::Tensor& w, const Layer& l) {
  return at::mkldnn_convolution(x, w, {}, {l.padding, l.padding, l.padding}, {l.stride, l.stride, l.stride},
                                {1, 1, 1}, 1);
}

// One oneDNN convolution primitive at a precision, with its reorders.
class OneDnnConv {
 public:
  OneDnnConv(const torch::Tensor& x, const torch::Tensor& w, const Layer& l, dt precision)
      : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    const int64_t s = x.size(2), so = (s + 2 * l.padding - l.kernel) / l.stride + 1;
    const dnnl::memory::dims src{1, l.in, s, s, s}, wei{l.out, l.in, l.kernel, l.kernel, l.kernel},
        dst{1, l.out, so, so, so};
    out_ = torch::empty({1, l.out, so, so, so});
    const bool int8 = precision == dt::s8;
    dnnl::primitive_attr conv_attr, src_attr, wei_attr;
    torch::Tensor w_used = w.contiguous();
    if (int8) {
      // Activations: one symmetric scale; weights: one per output channel; the convolution's output scale undoes both.
      const float x_scale = 127.0f / std::max(1e-12f, x.abs().max().item<float>());
      const torch::Tensor w_max = w.abs().reshape({l.out, -1}).amax(1).clamp_min(1e-12);
      const torch::Tensor w_scale = 127.0 / w_max;
      w_used = (w * w_scale.view({-1, 1, 1, 1, 1})).round().clamp(-127, 127).contiguous();  // integral floats
      std::vector<float> out_scales(l.out);
      for (int64_t o = 0; o < l.out; ++o) out_scales[o] = 1.0f / (x_scale * w_scale[o].item<float>());
      conv_attr.set_output_scales(2, out_scales);
      src_attr.set_output_scales(0, {x_scale});
    }
    const dt wdt = int8 ? dt::s8 : precision;
    dnnl::convolution_forward::desc desc(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, {src, precision, tag::any},
        {wei, wdt, tag::any}, {dst, dt::f32, tag::any}, {l.stride, l.stride, l.stride},
        {l.padding, l.padding, l.padding}, {l.padding, l.padding, l.padding});
    dnnl::convolution_forward::primitive_desc pd(desc, conv_attr, engine_);
    user_src_ = dnnl::memory({src, dt::f32, tag::ncdhw}, engine_, x.data_ptr());
    user_dst_ = dnnl::memory({dst, dt::f32, tag::ncdhw}, engine_, out_.data_ptr());
    src_ = dnnl::memory(pd.src_desc(), engine_);
    wei_ = dnnl::memory(pd.weights_desc(), engine_);
    dst_ = dnnl::memory(pd.dst_desc(), engine_);
    dnnl::memory user_wei({wei, dt::f32, tag::oidhw}, engine_, w_used.data_ptr());
    dnnl::reorder(dnnl::reorder::primitive_desc(engine_, user_wei.get_desc(), engine_, pd.weights_desc(), wei_attr))
        .execute(stream_, user_wei, wei_);
    src_reorder_ = dnnl::reorder(
        dnnl::reorder::primitive_desc(engine_, user_src_.get_desc(), engine_, pd.src_desc(), src_attr));
    dst_reorder_ = dnnl::reorder(dnnl::reorder::primitive_desc(engine_, pd.dst_desc(), engine_, user_dst_.get_desc()));
    conv_ = dnnl::convolution_forward(pd);
    stream_.wait();
  }

  const torch::Tensor& run() {
    src_reorder_.execute(stream_, user_src_, src_);
    conv_.execute(stream_, {{DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, wei_}, {DNNL_ARG_DST, dst_}});
    dst_reorder_.execute(stream_, dst_, user_dst_);
    stream_.wait();
    return out_;
  }

 private:
  dnnl::engine engine_;
  dnnl::stream stream_;
  dnnl::memory user_src_, user_dst_, src_, wei_, dst_;
  dnnl::reorder src_reorder_, dst_reorder_;
  dnnl::convolution_forward conv_;
  torch::Tensor out_;
};

struct Inputs {
  Layer l;
  torch::Tensor x, w, reference;
};

Inputs inputs(const benchmark::State& state) {
  torch::manual_seed(0);
  const Layer l = layer(state.range(1));
  const int64_t s = state.range(0) / l.divisor;
  Inputs in{l, torch::randn({1, l.in, s, s, s}), torch::randn({l.out, l.in, l.kernel, l.kernel, l.kernel}) * 0.1, {}};
  c10::InferenceMode guard;
  in.reference = libtorch_conv(in.x, in.w, l);
  return in;
}

void counters(benchmark::State& state, const torch::Tensor& y, const torch::Tensor& reference) {
  state.counters["voxels/s"] = benchmark::Counter(double(y.numel() / y.size(1)) * double(state.iterations()),
                                                  benchmark::Counter::kIsRate);
  state.counters["rel_err"] = ((y - reference).norm() / reference.norm()).item<double>();
}

void BM_ConvLibTorchF32(benchmark::State& state) {
  const Inputs in = inputs(state);
  c10::InferenceMode guard;
  torch::Tensor y;
  for (auto _ : state) {
    y = libtorch_conv(in.x, in.w, in.l);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  counters(state, y, in.reference);
}

void oneDnn(benchmark::State& state, dt precision) {
  const Inputs in = inputs(state);
  c10::InferenceMode guard;
  std::unique_ptr<OneDnnConv> made;
  try {
    made = std::make_unique<OneDnnConv>(in.x, in.w, in.l, precision);
  } catch (const dnnl::error& e) {  // e.g. bf16 on a CPU without AVX-512
    state.SkipWithError((std::string("oneDNN has no kernel for this precision here: ") + e.what()).c_str());
    return;
  }
  OneDnnConv& conv = *made;
  for (auto _ : state) benchmark::DoNotOptimize(conv.run().data_ptr());
  counters(state, conv.run(), in.reference);
}
void BM_ConvOneDnnF32(benchmark::State& state) { oneDnn(state, dt::f32); }
void BM_ConvOneDnnBF16(benchmark::State& state) { oneDnn(state, dt::bf16); }
void BM_ConvOneDnnInt8(benchmark::State& state) { oneDnn(state, dt::s8); }

void layers(benchmark::internal::Benchmark* b) {
  b->ArgNames({"size", "layer"});
  for (int64_t size : {96, 144})
    for (int64_t layer = 0; layer < 4; ++layer) b->Args({size, layer});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
BENCHMARK(BM_ConvLibTorchF32)->Apply(layers);
BENCHMARK(BM_ConvOneDnnF32)->Apply(layers);
BENCHMARK(BM_ConvOneDnnBF16)->Apply(layers);
BENCHMARK(BM_ConvOneDnnInt8)->Apply(layers);

}  // namespace

TF_BENCHMARK_MAIN();
