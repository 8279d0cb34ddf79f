#include "teachformer/losses/deep_supervision.hpp"

#include <map>

#include <torch/torch.h>

#include "losses/detail/checks.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::losses {

void from_json(const nlohmann::json& j, DeepSupervisionOptions& options) {
  JsonReader r(j, "deep supervision options");
  r.get("weights", options.weights());
  r.get("normalize", options.normalize());
  r.finish();
  detail::as_config_error(
      [&] { detail::check_class_weights(options.weights(), "weights", "deep supervision options"); });
}

void to_json(nlohmann::json& j, const DeepSupervisionOptions& options) {
  j = nlohmann::json{{"weights", options.weights()}, {"normalize", options.normalize()}};
}

std::vector<double> deep_supervision_weights(const DeepSupervisionOptions& options, int64_t outputs) {
  TF_CHECK(outputs >= 1, InvalidArgument, "deep supervision: needs at least one output, got ", outputs);
  std::vector<double> w = options.weights();
  if (w.empty()) {
    double v = 1.0;
    for (int64_t i = 0; i < outputs; ++i, v *= 0.5) w.push_back(v);
  }
  TF_CHECK(static_cast<int64_t>(w.size()) == outputs, InvalidArgument, "deep supervision: weights has ", w.size(),
           " values ", w, " but the model gave ", outputs, " outputs");
  if (options.normalize()) {
    double sum = 0.0;
    for (double v : w) sum += v;
    for (double& v : w) v /= sum;
  }
  return w;
}

torch::Tensor downsample_labels(const torch::Tensor& target, const std::vector<int64_t>& spatial_size) {
  const int64_t first = target.dim() - static_cast<int64_t>(spatial_size.size());
  TF_CHECK(first >= 1, InvalidArgument, "downsample_labels: target shape ", target.sizes().vec(),
           " has fewer dims than batch + the spatial size ", spatial_size);
  torch::Tensor out = target;
  for (size_t k = 0; k < spatial_size.size(); ++k) {
    const int64_t dim = first + static_cast<int64_t>(k);
    const int64_t n = target.size(dim);
    const int64_t m = spatial_size[k];
    TF_CHECK(m >= 1 && m <= n, InvalidArgument, "downsample_labels: output size ", spatial_size,
             " must be >= 1 and not larger than the target's spatial size ", target.sizes().slice(first).vec(),
             " (dim ", k, ")");
    if (m == n) continue;
    // floor(j * n / m) in integer arithmetic: exact for any ratio, PyTorch's legacy "nearest" rule.
    auto index =
        torch::arange(m, torch::TensorOptions().dtype(torch::kLong).device(target.device())).mul_(n).div_(m, "floor");
    out = out.index_select(dim, index);
  }
  return out;
}

DeepSupervisionLoss::DeepSupervisionLoss(std::shared_ptr<const SegmentationLoss> loss, DeepSupervisionOptions options)
    : loss_(std::move(loss)), options_(std::move(options)) {
  TF_CHECK(loss_ != nullptr, InvalidArgument, "deep supervision: the inner loss is null");
  detail::check_class_weights(options_.weights(), "weights", "deep supervision");
}

LossBreakdown DeepSupervisionLoss::compute(const std::vector<torch::Tensor>& outputs,
                                           const torch::Tensor& target) const {
  const auto weights = deep_supervision_weights(options_, static_cast<int64_t>(outputs.size()));
  LossBreakdown out;
  std::vector<std::pair<std::string, torch::Tensor>> weighted_terms;  // inner terms summed over levels, in order
  std::vector<torch::Tensor> level_totals;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& logits = outputs[i];
    TF_CHECK(logits.defined() && logits.dim() == target.dim(), InvalidArgument, "deep supervision: output ", i,
             " has shape ", logits.defined() ? logits.sizes().vec() : std::vector<int64_t>{}, " but the target is ",
             target.sizes().vec(), " (expected [B, C, spatial...] for every output)");
    const auto spatial = logits.sizes().slice(2).vec();
    const auto level_target = downsample_labels(target, spatial);
    if (weights[i] == 0.0) {
      // A zero weight (nnU-Net drops the coarsest level) adds nothing to the graph; still logged.
      torch::NoGradGuard no_grad;
      level_totals.push_back(loss_->compute(logits, level_target).total);
      continue;
    }
    const auto level = loss_->compute(logits, level_target);
    level_totals.push_back(level.total);
    out.total = out.total.defined() ? out.total + weights[i] * level.total : weights[i] * level.total;
    for (const auto& [name, value] : level.terms) {
      bool found = false;
      for (auto& [n, v] : weighted_terms)
        if (n == name) {
          v = v + weights[i] * value;
          found = true;
        }
      if (!found) weighted_terms.emplace_back(name, weights[i] * value);
    }
  }
  for (auto& [n, v] : weighted_terms) out.add_term(n, v);
  for (size_t i = 0; i < level_totals.size(); ++i) out.add_term("level" + std::to_string(i), level_totals[i]);
  return out;
}

}  // namespace teachformer::losses
