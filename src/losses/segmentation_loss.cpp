#include "teachformer/losses/segmentation_loss.hpp"

#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::losses {

std::string to_string(Reduction reduction) { return reduction == Reduction::Mean ? "mean" : "sum"; }

Reduction parse_reduction(const std::string& text, const std::string& context) {
  if (text == "mean") return Reduction::Mean;
  if (text == "sum") return Reduction::Sum;
  TF_THROW(ConfigError, context, ": reduction must be \"mean\" or \"sum\", got \"", text, "\"");
}

torch::Tensor class_indices(const torch::Tensor& logits, const torch::Tensor& target, const std::string& context) {
  TF_CHECK(logits.defined() && target.defined(), InvalidArgument, context, ": logits and target must be defined");
  TF_CHECK(logits.is_floating_point(), InvalidArgument, context, ": logits must be floating point, got ",
           c10::toString(logits.scalar_type()));
  TF_CHECK(logits.dim() >= 3, InvalidArgument, context,
           ": logits must be [B, C, spatial...] with at least one spatial dim, got shape ", logits.sizes().vec());
  const int64_t classes = logits.size(1);
  TF_CHECK(classes >= 2, InvalidArgument, context,
           ": logits need C >= 2 channels (background + classes) for a softmax, got C = ", classes);
  const auto st = target.scalar_type();
  TF_CHECK(
      st == torch::kUInt8 || st == torch::kInt64 || st == torch::kInt32 || st == torch::kInt16 || st == torch::kInt8,
      InvalidArgument, context, ": target must be an integer label map (uint8 or int64), got ", c10::toString(st));
  torch::Tensor labels = target;
  if (labels.dim() == logits.dim()) {
    TF_CHECK(labels.size(1) == 1, InvalidArgument, context, ": target must be a label map [B, 1, spatial...], got ",
             "shape ", target.sizes().vec(), " for logits ", logits.sizes().vec(),
             " (one-hot targets are not accepted)");
    labels = labels.squeeze(1);
  }
  std::vector<int64_t> expected = logits.sizes().vec();
  expected.erase(expected.begin() + 1);
  TF_CHECK(labels.sizes().vec() == expected, InvalidArgument, context, ": target shape ", target.sizes().vec(),
           " does not match logits ", logits.sizes().vec(), "; expected [B, 1, spatial...] = ", [&] {
             auto e = expected;
             e.insert(e.begin() + 1, 1);
             return e;
           }());
  labels = labels.to(logits.device(), torch::kLong);
  if (labels.numel() > 0) {
    const auto [lo, hi] = torch::aminmax(labels);
    const int64_t min_label = lo.item<int64_t>();
    const int64_t max_label = hi.item<int64_t>();
    TF_CHECK(min_label >= 0 && max_label < classes, InvalidArgument, context, ": target labels must lie in [0, ",
             classes - 1, "] for C = ", classes, " classes, got ", min_label < 0 ? min_label : max_label);
  }
  return labels;
}

torch::Tensor one_hot_labels(const torch::Tensor& indices, int64_t num_classes) {
  auto sizes = indices.sizes().vec();
  sizes.insert(sizes.begin() + 1, num_classes);
  auto out = torch::zeros(sizes, indices.options().dtype(torch::kFloat));
  out.scatter_(1, indices.unsqueeze(1), 1.0);
  return out;
}

}  // namespace teachformer::losses
