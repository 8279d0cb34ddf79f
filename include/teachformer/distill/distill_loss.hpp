// The Teach-Former loss: supervised loss + prediction KD + attention-map KD (coarse and fine) from several
// teachers, weighted by a staged strategy. Teachers are live (run on each batch, on the patch before intensity
// augmentation) or cached (maps cropped with the patch and handed in with the batch). The trainer uses it through
// train::DistillationObjective.
//
// How teachers are combined, per term:
//  - prediction KD: the student's tempered distribution is pulled towards the weighted mixture of the teachers'
//    (weights from `aggregation`, e.g. per voxel towards the teacher that is right about the label);
//  - attention maps: each teacher's map distance per sample, weighted per sample by `attention_weighting` ("dice":
//    a softmax over teachers of their Dice against the sample's label, so a teacher that misses the lesion on this
//    sample is not imitated; "fixed": the configured teacher weights);
//  - on unlabelled samples (no label to judge by) prediction KD uses the teachers' confidence and the maps the
//    configured weights, and the ground-truth term is left out.
// With `balance` on, each KD term is rescaled so that its gradient at the tensor it acts on (the logits for
// prediction KD, the tap for a map term) has the magnitude of the ground-truth loss's gradient there: a strategy
// weight of 1 then means "as strong as the labels", whatever the terms' natural scales.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/distill/kd_terms.hpp"
#include "teachformer/distill/strategy.hpp"
#include "teachformer/distill/teacher.hpp"
#include "teachformer/losses/deep_supervision.hpp"
#include "teachformer/losses/loss_breakdown.hpp"

namespace teachformer::distill {

/// Gradient-magnitude balancing of the KD terms against the ground-truth term.
struct BalanceOptions {
  /// On or off.
  bool enabled = false;
  /// Measure every N steps (each measurement costs a partial backward pass per term); the scales in between are
  /// an exponential moving average (factor `momentum`) of the measurements, in the log domain.
  int64_t every = 10;
  double momentum = 0.8;
  /// Scales are clamped to [1 / max_scale, max_scale].
  double max_scale = 1000.0;
};
BalanceOptions balance_options_from_json(const nlohmann::json& j);
nlohmann::json to_json(const BalanceOptions& o);

/// Distillation settings (the "distill" object of a config).
struct DistillOptions {
  /// The staged strategy (a preset name or stages).
  Strategy strategy = strategy_preset("teachformer");
  /// KD temperature T (KL scaled by T^2).
  double temperature = 1.0;
  /// Weight of a soft Dice between the student's tempered probabilities and the teachers' weighted mixture (the KL
  /// term's target) added to the prediction-KD term (soft_dice_kd): prediction KD in the Dice + cross-entropy form
  /// of the ground-truth loss, so that a small foreground is not outweighed by the background voxels. 1 (default):
  /// KL + Dice, measured ahead of KL alone on every seed of the phantom experiments; 0: KL only.
  double kd_dice = 1.0;
  /// How teachers' predictions are combined for prediction KD.
  Aggregation aggregation = Aggregation::Voxel;
  /// Temperature of Aggregation::Confidence and Aggregation::Voxel.
  double confidence_tau = 0.25;
  /// How teachers' attention maps are combined: "dice" (per sample, softmax over teachers of Dice / dice_tau) or
  /// "fixed" (the configured teacher weights).
  std::string attention_weighting = "dice";
  /// Temperature of the Dice weighting.
  double dice_tau = 0.1;
  /// Attention-map definition and distance.
  AttentionMapOptions attention;
  /// Supervised loss (losses::make_loss JSON).
  nlohmann::json gt_loss = {{"type", "dice_ce"}};
  /// Gradient-magnitude balancing of the KD terms.
  BalanceOptions balance;
  /// Use the teacher cache (precomputed, cropped with the patch) instead of running teachers live.
  bool cache = true;
  /// Sliding-window overlap used to build the cache.
  double cache_overlap = 0.5;
};
DistillOptions distill_options_from_json(const nlohmann::json& j);
nlohmann::json to_json(const DistillOptions& o);

/// Names of the extra maps a cached teacher puts in a batch.
std::string cache_extra_name(const std::string& teacher, const std::string& what);

/// One batch as the distillation loss sees it.
struct DistillBatch {
  /// Student input [B, C, D, H, W].
  torch::Tensor image;
  /// What live teachers see (their channels selected from it): the patch before intensity augmentation; `image`
  /// when undefined.
  torch::Tensor teacher_image;
  /// Ground truth [B, 1, D, H, W] (rows of unlabelled samples are ignored).
  torch::Tensor label;
  /// Which samples have a label (empty: all).
  std::vector<bool> labelled;
  /// Cached teacher knowledge cropped with the patch, by cache_extra_name(); empty for live teachers.
  std::map<std::string, torch::Tensor> cached;
  /// Position in the run (for the strategy's stages and ramps).
  int64_t step = 0;
  int64_t epochs = 1;
  int64_t steps_per_epoch = 1;
};

/// The loss. With `cached` true, teacher knowledge is read from DistillBatch::cached (cache_extra_name(teacher,
/// "probs" | "coarse" | "fine")); otherwise each teacher runs on the batch.
class DistillLoss {
 public:
  DistillLoss(std::vector<std::shared_ptr<Teacher>> teachers, DistillOptions options, KnowledgeGrid grid, bool cached);
  /// Taps the student's forward must record.
  models::TapRequest taps() const;
  /// True when live teachers run on the batch (they then read DistillBatch::teacher_image).
  bool needs_teacher_input() const;
  /// Checks, before training, that every term the strategy weights above zero can be computed with these teachers
  /// and this student (a forward output of the student on one patch): attention probabilities need live teachers
  /// and a teacher whose last attention layer has the student's token count; the map terms need the taps.
  /// InvalidArgument naming the term, the teacher and why.
  void check_terms(const models::SegOutput& student_probe, const std::vector<int64_t>& patch) const;
  /// Every term (named), their stage weights ("weight.<term>"), teacher weights ("teacher_weight.<name>") and,
  /// with balancing, the scales ("scale.<term>").
  losses::LossBreakdown compute(const models::SegOutput& student, const DistillBatch& batch);
  /// Config, teachers, grid and the strategy's stages with their active terms, as JSON (config.json and the log's
  /// first line).
  nlohmann::json describe() const;
  /// The balancing state (for exact resume) and its inverse.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);
  /// How measurements are averaged over the ranks of a data-parallel job (identity by default).
  void set_mean_over_ranks(std::function<std::vector<double>(const std::vector<double>&)> mean);
  /// Moves live teachers to `device`.
  void to(const c10::Device& device);
  const DistillOptions& options() const { return options_; }
  bool cached() const { return cached_; }
  const std::vector<std::shared_ptr<Teacher>>& teachers() const { return teachers_; }

 private:
  std::vector<TeacherKnowledge> knowledge(const DistillBatch& batch, bool maps, bool attention) const;
  void update_balance(const models::SegOutput& output, const torch::Tensor& gt, const std::map<std::string, torch::Tensor>& terms);
  std::vector<std::shared_ptr<Teacher>> teachers_;
  DistillOptions options_;
  KnowledgeGrid grid_;
  bool cached_;
  losses::DeepSupervisionLoss gt_;
  /// Balancing scales by term (log domain), measured so far.
  std::map<std::string, double> log_scale_;
  std::function<std::vector<double>(const std::vector<double>&)> mean_over_ranks_;
};

}  // namespace teachformer::distill
