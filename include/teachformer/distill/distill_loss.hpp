// The Teach-Former loss: supervised loss + prediction KD + attention-map KD (coarse and fine) from several
// teachers, weighted by a staged strategy. Teachers are live (run on each batch) or cached (maps cropped with
// the patch and handed in with the batch). The trainer uses it through train::DistillationObjective.
#pragma once
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

/// Distillation settings (the "distill" object of a config).
struct DistillOptions {
  /// The staged strategy (a preset name or stages).
  Strategy strategy = strategy_preset("teachformer");
  /// KD temperature T (KL scaled by T^2).
  double temperature = 1.0;
  /// How teachers' predictions are combined.
  Aggregation aggregation = Aggregation::Agreement;
  /// Entropy temperature of Aggregation::Confidence.
  double confidence_tau = 0.25;
  /// Attention-map definition and distance.
  AttentionMapOptions attention;
  /// Supervised loss (losses::make_loss JSON).
  nlohmann::json gt_loss = {{"type", "dice_ce"}};
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
  /// Student input [B, C, D, H, W] (live teachers select their channels from it).
  torch::Tensor image;
  /// Ground truth [B, 1, D, H, W].
  torch::Tensor label;
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
  /// Every term (named), their stage weights ("weight.<term>") and teacher weights ("teacher_weight.<name>").
  losses::LossBreakdown compute(const models::SegOutput& student, const DistillBatch& batch) const;
  /// Config, teachers and grid as JSON (for config.json and the log).
  nlohmann::json describe() const;
  /// Moves live teachers to `device`.
  void to(const c10::Device& device);
  const DistillOptions& options() const { return options_; }
  bool cached() const { return cached_; }

 private:
  std::vector<TeacherKnowledge> knowledge(const DistillBatch& batch, bool maps, bool attention) const;
  std::vector<std::shared_ptr<Teacher>> teachers_;
  DistillOptions options_;
  KnowledgeGrid grid_;
  bool cached_;
  losses::DeepSupervisionLoss gt_;
};

}  // namespace teachformer::distill
