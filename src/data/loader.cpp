#include "teachformer/data/loader.hpp"

#include <algorithm>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::data {

namespace {
// The random streams of unlabelled samples: disjoint from the labelled samples' (seed, step, index) streams.
constexpr uint64_t kUnlabelledStreams = uint64_t(1) << 62;
}  // namespace

PatchLoader::PatchLoader(std::shared_ptr<const CaseSource> cases, PatchSampler sampler,
                         transforms::AugmentOptions augment, LoaderOptions options,
                         std::shared_ptr<const CaseSource> unlabelled)
    : cases_(std::move(cases)),
      unlabelled_(std::move(unlabelled)),
      sampler_(std::move(sampler)),
      augment_(std::move(augment)),
      options_(options) {
  TF_CHECK(cases_ && cases_->size() > 0, InvalidArgument, "patch loader: no training cases");
  if (unlabelled_ && unlabelled_->size() == 0) unlabelled_.reset();
  TF_CHECK(!unlabelled_ || options_.unlabelled_per_batch >= 1, InvalidArgument, "patch loader: ",
           unlabelled_ ? unlabelled_->size() : 0, " unlabelled cases given but unlabelled_per_batch is ",
           options_.unlabelled_per_batch, "; expected >= 1");
  TF_CHECK(unlabelled_ || options_.unlabelled_per_batch == 0, InvalidArgument, "patch loader: unlabelled_per_batch ",
           "is ", options_.unlabelled_per_batch, " but no unlabelled cases were given");
  TF_CHECK(options_.unlabelled_offset >= 0, InvalidArgument, "patch loader: unlabelled_offset must be >= 0");
  TF_CHECK(options_.sample_offset >= 0, InvalidArgument, "patch loader: sample_offset must be >= 0");
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
  std::vector<torch::Tensor> images, labels, teacher_images;
  std::map<std::string, std::vector<torch::Tensor>> extras;
  std::map<std::string, int64_t> factors;
  Batch batch;
  batch.step = step;
  const int64_t samples = options_.batch_size + (unlabelled_ ? options_.unlabelled_per_batch : 0);
  for (int64_t b = 0; b < samples; ++b) {
    const bool extra = b >= options_.batch_size;
    Rng rng({options_.seed, uint64_t(step),
             extra ? kUnlabelledStreams + uint64_t(options_.unlabelled_offset + b - options_.batch_size)
                   : uint64_t(options_.sample_offset + b)});
    const CaseSource& source = extra ? *unlabelled_ : *cases_;
    const auto holder = source.get(size_t(rng.below(int64_t(source.size()))));
    const TrainingCase& c = *holder;
    transforms::Sample s = sampler_.sample(c, rng);
    transforms::augment_spatial(s, augment_, rng);
    if (options_.teacher_image) teacher_images.push_back(s.image.clone());
    transforms::augment_intensity(s, augment_, rng);
    images.push_back(s.image);
    batch.labelled.push_back(s.label.defined());
    labels.push_back(s.label.defined() ? s.label
                                       : torch::zeros({1, s.image.size(1), s.image.size(2), s.image.size(3)}, torch::kByte));
    for (auto& [name, extra] : s.extras) {
      extras[name].push_back(extra.data);
      factors[name] = extra.factor;
    }
    batch.case_ids.push_back(c.id);
  }
  batch.image = torch::stack(images);
  if (!teacher_images.empty()) batch.teacher_image = torch::stack(teacher_images);
  if (std::any_of(batch.labelled.begin(), batch.labelled.end(), [](bool l) { return l; }))
    batch.label = torch::stack(labels);
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
    Batch batch;
    std::exception_ptr error;
    try {
      batch = build(step);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error) failed_[step] = error;
      else ready_[step] = std::move(batch);
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
  cv_.wait(lock, [&] { return ready_.count(step) != 0 || failed_.count(step) != 0; });
  if (auto f = failed_.find(step); f != failed_.end()) {
    const auto error = f->second;
    failed_.erase(f);
    claimed_.erase(step);
    std::rethrow_exception(error);
  }
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
