#include "teachformer/data/loader.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::data {

PatchLoader::PatchLoader(std::shared_ptr<const std::vector<TrainingCase>> cases, PatchSampler sampler,
                         transforms::AugmentOptions augment, LoaderOptions options)
    : cases_(std::move(cases)), sampler_(std::move(sampler)), augment_(std::move(augment)), options_(options) {
  TF_CHECK(cases_ && !cases_->empty(), InvalidArgument, "patch loader: no training cases");
  TF_CHECK(options_.batch_size >= 1, InvalidArgument, "patch loader: batch_size must be >= 1, got ",
           options_.batch_size);
  for (int w = 0; w < options_.workers; ++w) workers_.emplace_back([this] { worker_loop(); });
}

PatchLoader::~PatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

Batch PatchLoader::build(int64_t step) const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> images, labels;
  std::map<std::string, std::vector<torch::Tensor>> extras;
  std::map<std::string, int64_t> factors;
  Batch batch;
  batch.step = step;
  for (int64_t b = 0; b < options_.batch_size; ++b) {
    Rng rng({options_.seed, uint64_t(step), uint64_t(b)});
    const auto& c = (*cases_)[size_t(rng.below(int64_t(cases_->size())))];
    transforms::Sample s = sampler_.sample(c, rng);
    transforms::augment_spatial(s, augment_, rng);
    transforms::augment_intensity(s, augment_, rng);
    images.push_back(s.image);
    if (s.label.defined()) labels.push_back(s.label);
    for (auto& [name, extra] : s.extras) {
      extras[name].push_back(extra.data);
      factors[name] = extra.factor;
    }
    batch.case_ids.push_back(c.id);
  }
  batch.image = torch::stack(images);
  if (labels.size() == images.size()) batch.label = torch::stack(labels);
  for (auto& [name, list] : extras) batch.extras[name] = {torch::stack(list), factors[name]};
  return batch;
}

void PatchLoader::worker_loop() {
  // Loader threads do small tensor ops: one intra-op thread each keeps the cores for the model.
  at::set_num_threads(1);
  while (true) {
    int64_t step = -1;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] {
        if (stop_) return true;
        for (int64_t s = window_start_; s < window_start_ + options_.prefetch; ++s)
          if (!claimed_.count(s)) return true;
        return false;
      });
      if (stop_) return;
      for (int64_t s = window_start_; s < window_start_ + options_.prefetch; ++s) {
        if (!claimed_.count(s)) {
          step = s;
          claimed_[s] = true;
          break;
        }
      }
    }
    Batch batch = build(step);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_[step] = std::move(batch);
    }
    cv_.notify_all();
  }
}

Batch PatchLoader::get(int64_t step) {
  if (workers_.empty()) return build(step);
  std::unique_lock<std::mutex> lock(mutex_);
  if (step < window_start_ || step >= window_start_ + options_.prefetch) {
    // A jump (e.g. resume): drop everything outside the new window.
    for (auto it = ready_.begin(); it != ready_.end();) it = (it->first < step) ? ready_.erase(it) : std::next(it);
    for (auto it = claimed_.begin(); it != claimed_.end();) it = (it->first < step) ? claimed_.erase(it) : std::next(it);
  }
  window_start_ = step;
  cv_.notify_all();
  cv_.wait(lock, [&] { return ready_.count(step) != 0; });
  Batch batch = std::move(ready_[step]);
  ready_.erase(step);
  // Keep the claimed marks of steps still in flight; forget this one and older ones.
  for (auto it = claimed_.begin(); it != claimed_.end();) it = (it->first <= step) ? claimed_.erase(it) : std::next(it);
  window_start_ = step + 1;
  for (auto it = ready_.begin(); it != ready_.end();) it = (it->first <= step) ? ready_.erase(it) : std::next(it);
  cv_.notify_all();
  return batch;
}

}  // namespace teachformer::data
