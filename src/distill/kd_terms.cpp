#include "teachformer/distill/kd_terms.hpp"

#include <torch/torch.h>

#include <cmath>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/models/seg_model.hpp"

namespace teachformer::distill {

namespace F = torch::nn::functional;

AttentionMapOptions attention_map_options_from_json(const nlohmann::json& j) {
  AttentionMapOptions o;
  std::string norm = "l2", distance = "l2";
  JsonReader r(j, "attention map options");
  r.get("p", o.p).get("norm", norm).get("distance", distance).get("fine_tap", o.fine_tap);
  r.finish();
  TF_CHECK(o.fine_tap == models::kDecoderFine || o.fine_tap == models::kDecoderLast, ConfigError,
           "attention map options: fine_tap must be \"", models::kDecoderFine, "\" (decoder stage D_{n-1}) or \"",
           models::kDecoderLast, "\" (the last decoder stage), got '", o.fine_tap, "'");
  TF_CHECK(o.p == 1 || o.p == 2, ConfigError, "attention map options: p must be 1 or 2, got ", o.p);
  TF_CHECK(norm == "l2" || norm == "l1", ConfigError, "attention map options: norm must be l2 or l1, got '", norm, "'");
  TF_CHECK(distance == "l2" || distance == "l1", ConfigError, "attention map options: distance must be l2 or l1, got '",
           distance, "'");
  o.norm = norm == "l2" ? MapNorm::L2 : MapNorm::L1;
  o.distance = distance == "l2" ? MapDistance::L2 : MapDistance::L1;
  return o;
}

nlohmann::json to_json(const AttentionMapOptions& o) {
  return {{"p", o.p},
          {"norm", o.norm == MapNorm::L2 ? "l2" : "l1"},
          {"distance", o.distance == MapDistance::L2 ? "l2" : "l1"},
          {"fine_tap", o.fine_tap}};
}

torch::Tensor attention_map(const torch::Tensor& features, int p) {
  TF_CHECK(features.dim() == 5, InvalidArgument, "attention map: features must be [B, C, D, H, W], got ",
           features.sizes().vec());
  const auto a = features.to(torch::kFloat).abs();
  return (p == 2 ? a.square() : a.pow(p)).mean(1, /*keepdim=*/true);
}

torch::Tensor resample_map(const torch::Tensor& map, const std::vector<int64_t>& size) {
  TF_CHECK(map.dim() == 5 && size.size() == 3, InvalidArgument, "resample map: expected [B, C, d, h, w] and 3 sizes");
  if (map.sizes().slice(2).vec() == size) return map;
  return F::interpolate(map, F::InterpolateFuncOptions().size(size).mode(torch::kTrilinear).align_corners(false));
}

torch::Tensor normalise_map(const torch::Tensor& map, MapNorm norm) {
  const auto flat = map.reshape({map.size(0), -1});
  return F::normalize(flat, F::NormalizeFuncOptions().p(norm == MapNorm::L2 ? 2.0 : 1.0).dim(1).eps(1e-12));
}

torch::Tensor attention_map_loss(const torch::Tensor& student_map, const torch::Tensor& teacher_map,
                                 const AttentionMapOptions& o) {
  return attention_map_loss_per_sample(student_map, teacher_map, o).mean();
}

torch::Tensor attention_map_loss_per_sample(const torch::Tensor& student_map, const torch::Tensor& teacher_map,
                                            const AttentionMapOptions& o) {
  TF_CHECK(student_map.size(0) == teacher_map.size(0), InvalidArgument, "attention map loss: batch sizes differ (",
           student_map.size(0), " vs ", teacher_map.size(0), ")");
  const auto t = resample_map(teacher_map.to(student_map.dtype()), student_map.sizes().slice(2).vec());
  const auto qs = normalise_map(student_map, o.norm);
  const auto qt = normalise_map(t, o.norm);
  const auto diff = qs - qt;
  return (o.distance == MapDistance::L2 ? diff.square() : diff.abs()).sum(1);
}

torch::Tensor temper_probabilities(const torch::Tensor& probs, double temperature) {
  TF_CHECK(temperature > 0, InvalidArgument, "temperature must be > 0, got ", temperature);
  const auto p = probs.to(torch::kFloat).clamp_min(1e-8);
  if (temperature == 1.0) return p / p.sum(1, true);
  return torch::softmax(p.log() / temperature, 1);
}

torch::Tensor kl_per_voxel(const torch::Tensor& student_logits, const torch::Tensor& teacher_probs_t,
                           double temperature) {
  TF_CHECK(student_logits.sizes() == teacher_probs_t.sizes(), InvalidArgument,
           "prediction KD: student logits ", student_logits.sizes().vec(), " and teacher probabilities ",
           teacher_probs_t.sizes().vec(), " differ in shape");
  const auto log_ps = torch::log_softmax(student_logits.to(torch::kFloat) / temperature, 1);
  const auto pt = teacher_probs_t.to(torch::kFloat);
  const auto kl = (pt * (pt.clamp_min(1e-8).log() - log_ps)).sum(1, true);
  return kl * (temperature * temperature);
}

torch::Tensor soft_dice_kd(const torch::Tensor& student_logits, const torch::Tensor& target_probs, double eps) {
  TF_CHECK(target_probs.sizes() == student_logits.sizes(), InvalidArgument, "prediction KD (Dice): student logits ",
           student_logits.sizes().vec(), " and target probabilities ", target_probs.sizes().vec(), " differ in shape");
  TF_CHECK(student_logits.dim() >= 3 && student_logits.size(1) >= 2, InvalidArgument,
           "prediction KD (Dice): expected [B, K >= 2, spatial...], got ", student_logits.sizes().vec());
  const int64_t k = student_logits.size(1);
  const auto p = torch::softmax(student_logits.to(torch::kFloat), 1).narrow(1, 1, k - 1).flatten(2);
  const auto q = target_probs.to(torch::kFloat).narrow(1, 1, k - 1).flatten(2).detach();
  const auto dice = (2.0 * (p * q).sum(2) + eps) / (p.square().sum(2) + q.square().sum(2) + eps);
  return 1.0 - dice.mean();
}

MultiTeacherKd multi_teacher_kd(const torch::Tensor& student_logits, const std::vector<torch::Tensor>& teacher_probs_t,
                                const std::vector<torch::Tensor>& weights, double temperature) {
  TF_CHECK(!teacher_probs_t.empty() && teacher_probs_t.size() == weights.size(), InvalidArgument,
           "prediction KD: ", teacher_probs_t.size(), " teachers but ", weights.size(), " weights");
  const double t2 = temperature * temperature;
  const auto log_q = torch::log_softmax(student_logits.to(torch::kFloat) / temperature, 1);
  MultiTeacherKd out;
  torch::Tensor mixture;
  torch::Tensor constant;  // sum_i mean(w_i * sum_k p_ik log p_ik): the teachers' part, no gradient
  {
    torch::NoGradGuard no_grad;
    const auto log_q_value = log_q.detach();
    for (size_t i = 0; i < teacher_probs_t.size(); ++i) {
      const auto& p = teacher_probs_t[i];
      TF_CHECK(p.sizes() == student_logits.sizes(), InvalidArgument, "prediction KD: student logits ",
               student_logits.sizes().vec(), " and teacher probabilities ", p.sizes().vec(), " differ in shape");
      const auto pf = p.to(torch::kFloat);
      const auto neg_entropy = (pf * pf.clamp_min(1e-8).log()).sum(1, true);
      const auto cross = (pf * log_q_value).sum(1, true);
      const auto& w = weights[i];
      const auto c = (neg_entropy * w).mean();
      constant = constant.defined() ? constant + c : c;
      out.per_teacher.push_back(((neg_entropy - cross) * w).mean() * t2);
      const auto weighted = pf * w;
      mixture = mixture.defined() ? mixture.add_(weighted) : weighted;
    }
  }
  out.total = (constant - (mixture * log_q).sum(1, true).mean()) * t2;
  out.mixture = mixture;
  return out;
}

Aggregation parse_aggregation(const std::string& name) {
  if (name == "mean") return Aggregation::Mean;
  if (name == "confidence") return Aggregation::Confidence;
  if (name == "agreement") return Aggregation::Agreement;
  if (name == "voxel") return Aggregation::Voxel;
  TF_THROW(ConfigError, "teacher aggregation '", name, "': expected mean, confidence, agreement or voxel");
}

std::string to_string(Aggregation a) {
  switch (a) {
    case Aggregation::Mean: return "mean";
    case Aggregation::Confidence: return "confidence";
    case Aggregation::Agreement: return "agreement";
    case Aggregation::Voxel: return "voxel";
  }
  return "?";
}

std::vector<torch::Tensor> teacher_weights(const std::vector<torch::Tensor>& probs, const torch::Tensor& label,
                                           Aggregation aggregation, const std::vector<double>& fixed, double tau) {
  const size_t k = probs.size();
  TF_CHECK(k >= 1 && fixed.size() == k, InvalidArgument, "teacher weights: ", k, " teachers but ", fixed.size(),
           " configured weights");
  double fixed_sum = 0;
  for (double w : fixed) {
    TF_CHECK(w >= 0, InvalidArgument, "teacher weights must be >= 0, got ", w);
    fixed_sum += w;
  }
  TF_CHECK(fixed_sum > 0, InvalidArgument, "teacher weights: at least one must be > 0");
  const auto opts = probs[0].options().dtype(torch::kFloat);
  std::vector<torch::Tensor> out;
  if (k == 1) return {torch::ones({1}, opts)};
  if (aggregation == Aggregation::Mean) {
    for (double w : fixed) out.push_back(torch::full({1}, w / fixed_sum, opts));
    return out;
  }
  if (aggregation == Aggregation::Confidence) {
    const double log_k = std::log(double(probs[0].size(1)));
    std::vector<torch::Tensor> scores;
    for (size_t i = 0; i < k; ++i) {
      const auto p = probs[i].to(torch::kFloat).clamp_min(1e-8);
      const auto h = -(p * p.log()).sum(1, true) / log_k;  // normalised entropy in [0, 1]
      scores.push_back(-h / tau + std::log(std::max(fixed[i], 1e-12)));
    }
    const auto w = torch::softmax(torch::stack(scores), 0);
    for (size_t i = 0; i < k; ++i) out.push_back(w[int64_t(i)]);
    return out;
  }
  if (aggregation == Aggregation::Voxel) {
    // Per voxel: softmax over teachers of -(cross-entropy against the label) / tau, times the configured weights.
    TF_CHECK(label.defined(), InvalidArgument, "teacher aggregation 'voxel' needs the ground-truth label");
    const auto idx = label.to(torch::kLong);
    std::vector<torch::Tensor> scores;
    for (size_t i = 0; i < k; ++i) {
      const auto logp = probs[i].gather(1, idx).to(torch::kFloat).clamp_min(1e-8).log();  // [B, 1, ...]
      scores.push_back(logp / tau + std::log(std::max(fixed[i], 1e-12)));
    }
    const auto w = torch::softmax(torch::stack(scores), 0);
    for (size_t i = 0; i < k; ++i) out.push_back(w[int64_t(i)]);
    return out;
  }
  // Agreement (CA-MKD): per-sample cross-entropy of each teacher against the label; teachers that agree better
  // with the label count more.
  TF_CHECK(label.defined(), InvalidArgument, "teacher aggregation 'agreement' needs the ground-truth label");
  const auto idx = label.to(torch::kLong);
  std::vector<torch::Tensor> ce;
  for (size_t i = 0; i < k; ++i) {
    // log of the label's probability only (gather first: one channel instead of K)
    const auto logp = probs[i].gather(1, idx).to(torch::kFloat).clamp_min(1e-8).log();
    ce.push_back(-logp.reshape({logp.size(0), -1}).mean(1));  // [B]
  }
  const auto s = torch::softmax(torch::stack(ce), 0);  // [K, B]
  // (1 - s_k) / (K - 1) sums to 1 over teachers; unequal configured weights scale it and renormalise.
  auto w = (1.0 - s) / double(k - 1) * torch::tensor(fixed, opts).view({-1, 1}) * (double(k) / fixed_sum);
  w = w / w.sum(0, true);
  for (size_t i = 0; i < k; ++i) out.push_back(w[int64_t(i)].view({-1, 1, 1, 1, 1}));
  return out;
}

torch::Tensor sample_dice(const torch::Tensor& probs, const torch::Tensor& label) {
  TF_CHECK(probs.dim() >= 3 && label.defined() && label.size(0) == probs.size(0), InvalidArgument,
           "sample Dice: probabilities [B, K, ...] and a label [B, 1, ...] are required");
  const int64_t b = probs.size(0), k = probs.size(1);
  const auto onehot = torch::zeros_like(probs, probs.options().dtype(torch::kFloat))
                          .scatter_(1, label.to(torch::kLong), 1.0)
                          .narrow(1, 1, k - 1)
                          .reshape({b, k - 1, -1});
  const auto p = probs.to(torch::kFloat).narrow(1, 1, k - 1).reshape({b, k - 1, -1});
  const auto inter = (p * onehot).sum(-1);
  const auto total = p.sum(-1) + onehot.sum(-1);
  // A class absent from both counts as agreement.
  const auto dice = torch::where(total > 1e-6, 2.0 * inter / total.clamp_min(1e-6), torch::ones_like(total));
  return dice.mean(1);
}

std::vector<torch::Tensor> dice_weights(const std::vector<torch::Tensor>& probs, const torch::Tensor& label,
                                        const std::vector<double>& fixed, double tau) {
  const size_t k = probs.size();
  TF_CHECK(k >= 1 && fixed.size() == k, InvalidArgument, "teacher weights: ", k, " teachers but ", fixed.size(),
           " configured weights");
  TF_CHECK(tau > 0, InvalidArgument, "teacher weights: the Dice temperature must be > 0, got ", tau);
  std::vector<torch::Tensor> scores;
  for (size_t i = 0; i < k; ++i) scores.push_back(sample_dice(probs[i], label) / tau + std::log(std::max(fixed[i], 1e-12)));
  const auto w = torch::softmax(torch::stack(scores), 0);  // [K, B]
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < k; ++i) out.push_back(w[int64_t(i)]);
  return out;
}

}  // namespace teachformer::distill
