// The knowledge-distillation terms: activation-based attention maps (Zagoruyko & Komodakis 2017) at any depth,
// temperature-scaled prediction KD (Hinton et al. 2015), and the multi-teacher weightings.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

namespace teachformer::distill {

/// How attention maps are normalised after flattening.
enum class MapNorm { L2, L1 };
/// How two normalised maps are compared.
enum class MapDistance { L2, L1 };

/// Attention-map KD settings.
struct AttentionMapOptions {
  /// Exponent p of Q(F) = mean_c |F_c|^p (2 default, 1 option).
  int p = 2;
  /// Normalisation of the flattened map: "l2" (default) or "l1".
  MapNorm norm = MapNorm::L2;
  /// Distance between normalised maps: "l2" = squared Euclidean distance ||q_s - q_t||^2 (default), "l1" =
  /// ||q_s - q_t||_1, each averaged over the batch. (CIRKD's beta * mean((q_s - q_t)^2) equals this with
  /// weight beta / N.)
  MapDistance distance = MapDistance::L2;
  /// The teacher tap of the fine map: "decoder_fine" (default: decoder stage D_{n-1}, the stage before the last,
  /// as the method describes) or "decoder_last" (the last decoder stage). The student's fine map is always its
  /// decoder_fine tap.
  std::string fine_tap = "decoder_fine";
};
AttentionMapOptions attention_map_options_from_json(const nlohmann::json& j);
nlohmann::json to_json(const AttentionMapOptions& o);

/// Q(F) = mean over channels of |F|^p: features [B, C, D, H, W] -> map [B, 1, D, H, W].
torch::Tensor attention_map(const torch::Tensor& features, int p);
/// Trilinear resampling (align_corners=false) of a map [B, 1, d, h, w] to `size` [D, H, W]; no-op when equal.
torch::Tensor resample_map(const torch::Tensor& map, const std::vector<int64_t>& size);
/// Flattens [B, 1, ...] to [B, N] and normalises each row (L2 or L1; zero rows stay zero).
torch::Tensor normalise_map(const torch::Tensor& map, MapNorm norm);
/// Distance between a student map and a teacher map (resampled to the student's grid first): scalar (the mean
/// over the batch of attention_map_loss_per_sample).
torch::Tensor attention_map_loss(const torch::Tensor& student_map, const torch::Tensor& teacher_map,
                                 const AttentionMapOptions& options);
/// The same per sample: [B].
torch::Tensor attention_map_loss_per_sample(const torch::Tensor& student_map, const torch::Tensor& teacher_map,
                                            const AttentionMapOptions& options);

/// Teacher probabilities at temperature T from probabilities at T = 1: p^(1/T) / sum_k p^(1/T)
/// (= softmax(z / T) for p = softmax(z)); probabilities are clamped at 1e-8 first.
torch::Tensor temper_probabilities(const torch::Tensor& probs, double temperature);
/// Per-voxel KL(p_t || softmax(z_s / T)) * T^2: student logits [B, K, ...], teacher probabilities (already at
/// temperature T) of the same shape -> [B, 1, ...].
torch::Tensor kl_per_voxel(const torch::Tensor& student_logits, const torch::Tensor& teacher_probs_t, double temperature);

/// Weighted prediction KD from several teachers at once.
struct MultiTeacherKd {
  /// sum_i mean(w_i * KL(p_i || q)) * T^2, differentiable in the student's logits.
  torch::Tensor total;
  /// Each teacher's mean(w_i * KL(p_i || q)) * T^2 (detached, for the log; they sum to `total`).
  std::vector<torch::Tensor> per_teacher;
  /// The target the student is pulled towards: the weighted mixture sum_i w_i p_i of the tempered teacher
  /// probabilities (no gradient).
  torch::Tensor mixture;
};
/// The same value as summing `(kl_per_voxel(z, p_i, T) * w_i).mean()` over teachers, with one backward path: the
/// student's log-probabilities q = log_softmax(z / T) are computed once and the gradient flows through a single
/// cross-entropy against the weighted mixture sum_i w_i p_i (the teachers' entropies are constants). `teacher_probs_t`
/// are at temperature T already, each [B, K, ...] like the logits; `weights` broadcast to [B, 1, ...].
MultiTeacherKd multi_teacher_kd(const torch::Tensor& student_logits, const std::vector<torch::Tensor>& teacher_probs_t,
                                const std::vector<torch::Tensor>& weights, double temperature);

/// Soft Dice between the student's probabilities p = softmax(z) and a target distribution q of the same shape [B, K,
/// ...] (the teachers' weighted mixture), in the squared form 1 - (2 sum p q + eps) / (sum p^2 + sum q^2 + eps) per
/// sample and foreground class k = 1..K-1, averaged. Its minimum is p = q for any q (a plain soft Dice would reward
/// inflating p where q is small everywhere, i.e. on a patch without foreground). Differentiable in the logits.
torch::Tensor soft_dice_kd(const torch::Tensor& student_logits, const torch::Tensor& target_probs, double eps = 1e-5);

/// How several teachers' predictions are combined.
enum class Aggregation {
  Mean,        ///< fixed weights (the teachers' configured weights, normalised)
  Confidence,  ///< per voxel: softmax over teachers of -normalised entropy / tau, times the fixed weights
  Agreement,   ///< per sample, CA-MKD: w_k = (1 - softmax_k(CE_1..CE_K)) / (K - 1), CE_k against the label
               ///< (unequal configured weights scale w_k, then the weights are renormalised)
  Voxel,       ///< per voxel: softmax over teachers of log p_k(label) / tau (+ log configured weight): where the
               ///< teachers disagree, the one that is right about the label dominates the target
};
Aggregation parse_aggregation(const std::string& name);
std::string to_string(Aggregation a);

/// Soft Dice of each sample's foreground probabilities [B, K, ...] against its label [B, 1, ...], averaged over
/// the foreground classes (a class absent from both counts as 1): [B].
torch::Tensor sample_dice(const torch::Tensor& probs, const torch::Tensor& label);
/// Per-sample teacher weights from each teacher's Dice against the label: softmax over teachers of Dice / tau
/// (+ log configured weight); each [B], summing to 1 over teachers.
std::vector<torch::Tensor> dice_weights(const std::vector<torch::Tensor>& probs, const torch::Tensor& label,
                                        const std::vector<double>& fixed, double tau);

/// Per-teacher weights, each broadcastable to [B, 1, D, H, W] and summing to 1 over teachers: `probs` are the
/// teachers' probabilities at T = 1 [B, K, D, H, W]; `label` [B, 1, D, H, W] (needed for Agreement);
/// `fixed` the configured teacher weights; `tau` the Confidence / Voxel temperature.
std::vector<torch::Tensor> teacher_weights(const std::vector<torch::Tensor>& probs, const torch::Tensor& label,
                                           Aggregation aggregation, const std::vector<double>& fixed, double tau = 0.25);

}  // namespace teachformer::distill
