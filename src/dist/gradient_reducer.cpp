#include "teachformer/dist/gradient_reducer.hpp"

#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::dist {

GradientReducer::GradientReducer(std::shared_ptr<ProcessGroup> group, std::vector<torch::Tensor> parameters,
                                 GradientReducerOptions options)
    : group_(std::move(group)) {
  TF_CHECK(group_, InvalidArgument, "gradient reducer: a process group is required");
  TF_CHECK(options.bucket_bytes > 0 && options.first_bucket_bytes > 0, InvalidArgument,
           "gradient reducer: bucket sizes must be positive");
  for (auto& p : parameters)
    if (p.requires_grad()) params_.push_back(p);
  slot_.resize(params_.size());
  // Reverse order, one dtype and device per bucket, sizes capped.
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    // The bucket being filled is the first one while buckets_.size() == 1.
    const int64_t cap = buckets_.size() <= 1 ? options.first_bucket_bytes : options.bucket_bytes;
    const int64_t b = p.numel() * int64_t(p.element_size());
    bool open_new = buckets_.empty() || bytes + b > cap;
    if (!open_new) {
      const auto& first = params_[buckets_.back().params.front()];
      open_new = first.scalar_type() != p.scalar_type() || first.device() != p.device();
    }
    if (open_new) {
      buckets_.emplace_back();
      bytes = 0;
    }
    auto& bucket = buckets_.back();
    const int64_t offset = bucket.offsets.empty() ? 0 : bucket.offsets.back() + params_[bucket.params.back()].numel();
    slot_[k] = {buckets_.size() - 1, bucket.params.size()};
    bucket.params.push_back(k);
    bucket.offsets.push_back(offset);
    bytes += b;
  }
  for (auto& bucket : buckets_) {
    const auto& first = params_[bucket.params.front()];
    const int64_t n = bucket.offsets.back() + params_[bucket.params.back()].numel();
    bucket.buffer = torch::zeros({n}, first.options().requires_grad(false));
    bucket.arrived.assign(bucket.params.size(), false);
  }
  for (size_t k = 0; k < params_.size(); ++k)
    hook_ids_.push_back(params_[k].register_hook([this, k](torch::Tensor grad) { on_gradient(k, grad); }));
}

GradientReducer::~GradientReducer() {
  for (size_t k = 0; k < params_.size() && k < hook_ids_.size(); ++k) {
    try {
      params_[k].remove_hook(hook_ids_[k]);
    } catch (...) {
    }
  }
}

int64_t GradientReducer::bytes_per_step() const {
  int64_t total = 0;
  for (const auto& b : buckets_) total += b.buffer.numel() * int64_t(b.buffer.element_size());
  return total;
}

void GradientReducer::prepare() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& b : buckets_) {
    b.pending = b.params.size();
    std::fill(b.arrived.begin(), b.arrived.end(), false);
    b.launched = false;
  }
  next_launch_ = 0;
  active_ = true;
}

void GradientReducer::on_gradient(size_t index, const torch::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!active_) return;  // a backward pass outside prepare()/finish() (e.g. a test's own) is left alone
  const auto [bi, pos] = slot_[index];
  auto& bucket = buckets_[bi];
  const auto& p = params_[index];
  bucket.buffer.narrow(0, bucket.offsets[pos], p.numel()).view(p.sizes()).copy_(grad);
  if (!bucket.arrived[pos]) {
    bucket.arrived[pos] = true;
    --bucket.pending;
  }
  launch_ready();
}

void GradientReducer::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    auto& b = buckets_[next_launch_];
    b.work = group_->allreduce_sum_async(b.buffer);
    b.launched = true;
    ++next_launch_;
  }
}

void GradientReducer::finish() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    TF_CHECK(active_, InternalError, "gradient reducer: finish() without prepare()");
    for (auto& b : buckets_) {
      for (size_t i = 0; i < b.params.size(); ++i)
        if (!b.arrived[i]) {
          b.buffer.narrow(0, b.offsets[i], params_[b.params[i]].numel()).zero_();
          b.arrived[i] = true;
        }
      b.pending = 0;
    }
    launch_ready();
    active_ = false;
  }
  const double scale = 1.0 / double(group_->size());
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    b.work.wait();
    b.buffer.mul_(scale);
    for (size_t i = 0; i < b.params.size(); ++i) {
      auto& p = params_[b.params[i]];
      auto mean = b.buffer.narrow(0, b.offsets[i], p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(mean);
      else
        p.mutable_grad() = mean.clone();
    }
  }
}

}  // namespace teachformer::dist
