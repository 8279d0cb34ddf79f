#include "teachformer/inference/ensemble.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "teachformer/core/error.hpp"

namespace teachformer::inference {

void RunningMean::add(SlidingWindowResult result) {
  torch::NoGradGuard no_grad;
  if (count_ == 0) {
    sums_.clear();
    for (auto& [name, t] : result.outputs) {
      TF_CHECK(t.defined() && t.is_floating_point(), InvalidArgument, "ensemble: output '", name,
               "' must be a floating-point tensor");
      // Adopt the tensor when nobody else can see its memory; otherwise copy, so in-place sums never leak.
      const bool exclusive = t.scalar_type() == torch::kFloat && t.use_count() == 1 && t.storage().use_count() == 1;
      torch::Tensor sum = exclusive ? std::move(t) : t.to(torch::kFloat, /*non_blocking=*/false, /*copy=*/true);
      sums_.emplace_back(name, std::move(sum));
    }
  } else {
    TF_CHECK(result.outputs.size() == sums_.size(), InvalidArgument, "ensemble: result ", count_ + 1, " has ",
             result.outputs.size(), " outputs, the first had ", sums_.size());
    for (size_t k = 0; k < sums_.size(); ++k) {
      const auto& [name, t] = result.outputs[k];
      auto& [sum_name, sum] = sums_[k];
      TF_CHECK(name == sum_name && t.sizes() == sum.sizes(), InvalidArgument, "ensemble: result ", count_ + 1,
               " output ", k, " is '", name, "' ", t.sizes().vec(), ", expected '", sum_name, "' ", sum.sizes().vec());
      TF_CHECK(t.device() == sum.device(), InvalidArgument, "ensemble: output '", name, "' is on ", t.device().str(),
               " but the running sum is on ", sum.device().str());
      sum.add_(t);
    }
  }
  windows_ = result.windows;
  function_calls_ += result.function_calls;
  ++count_;
}

SlidingWindowResult RunningMean::finish(torch::Dtype dtype) {
  TF_CHECK(count_ > 0, InvalidArgument, "ensemble: finish() called before any result was added");
  TF_CHECK(dtype == torch::kFloat || dtype == torch::kHalf, InvalidArgument,
           "ensemble: output dtype must be float32 or float16, got ", c10::toString(dtype));
  SlidingWindowResult out;
  out.windows = windows_;
  out.function_calls = function_calls_;
  for (auto& [name, sum] : sums_) {
    sum.div_(static_cast<double>(count_));
    out.outputs.emplace_back(name, dtype == torch::kFloat ? std::move(sum) : sum.to(dtype));
  }
  sums_.clear();
  count_ = 0;
  windows_ = 0;
  function_calls_ = 0;
  return out;
}

namespace {

// argmax over the channels of float32 [B, C, Z, Y, X] (contiguous, CPU) into uint8 [B, 1, Z, Y, X], in blocks of
// voxels, channel by channel (LibTorch 1.13's argmax over dim 0 walks the volume one output voxel at a time and took
// about half a second for 2 x 144^3 scores). The first largest score wins; NaN counts as the largest, as in
// torch::argmax.
void argmax_float_cpu(const torch::Tensor& x, torch::Tensor& labels) {
  const int64_t batch = x.size(0), classes = x.size(1), n = x.size(2) * x.size(3) * x.size(4);
  constexpr int64_t kBlock = 4096;
  for (int64_t b = 0; b < batch; ++b) {
    const float* src = x.data_ptr<float>() + b * classes * n;
    uint8_t* dst = labels.data_ptr<uint8_t>() + b * n;
    at::parallel_for(0, (n + kBlock - 1) / kBlock, 1, [&](int64_t begin, int64_t end) {
      float best[kBlock];
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t i0 = blk * kBlock, len = std::min(kBlock, n - i0);
        std::copy(src + i0, src + i0 + len, best);
        std::fill(dst + i0, dst + i0 + len, uint8_t(0));
        for (int64_t c = 1; c < classes; ++c) {
          const float* v = src + c * n + i0;
          for (int64_t i = 0; i < len; ++i) {
            if (v[i] > best[i] || (std::isnan(v[i]) && !std::isnan(best[i]))) {
              best[i] = v[i];
              dst[i0 + i] = uint8_t(c);
            }
          }
        }
      }
    });
  }
}

}  // namespace

torch::Tensor argmax_labels(const torch::Tensor& scores) {
  TF_CHECK(scores.defined() && (scores.dim() == 4 || scores.dim() == 5) && scores.is_floating_point(), InvalidArgument,
           "argmax_labels: scores must be floating point [C, Z, Y, X] or [B, C, Z, Y, X], got ",
           scores.defined() ? scores.sizes().vec() : std::vector<int64_t>{});
  const bool batched = scores.dim() == 5;
  const auto x = batched ? scores : scores.unsqueeze(0);
  const int64_t classes = x.size(1);
  TF_CHECK(classes >= 1 && classes <= 256, InvalidArgument,
           "argmax_labels: a uint8 label map holds 1..256 classes, got ", classes);
  torch::NoGradGuard no_grad;
  auto labels = torch::empty({x.size(0), 1, x.size(2), x.size(3), x.size(4)},
                             torch::TensorOptions().dtype(torch::kUInt8).device(x.device()));
  if (x.device().is_cpu() && x.scalar_type() == torch::kFloat) {
    argmax_float_cpu(x.contiguous(), labels);
    return batched ? labels : labels.squeeze(0);
  }
  // Slabs along Z of about 4M scores keep the float/int64 temporaries small for any volume.
  const int64_t per_slice = std::max<int64_t>(1, classes * x.size(3) * x.size(4));
  const int64_t slab = std::max<int64_t>(1, (int64_t(1) << 22) / per_slice);
  for (int64_t b = 0; b < x.size(0); ++b)
    for (int64_t z = 0; z < x.size(2); z += slab) {
      const int64_t n = std::min(slab, x.size(2) - z);
      labels[b][0].narrow(0, z, n).copy_(x[b].narrow(1, z, n).to(torch::kFloat).argmax(0));
    }
  return batched ? labels : labels.squeeze(0);
}

}  // namespace teachformer::inference
