// The staged training strategy: per-term loss weights that change by stage, with linear ramps inside a stage.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace teachformer::distill {

/// Loss terms a strategy weights.
inline constexpr const char* kTermGt = "gt";                    ///< supervised Dice + CE on the ground truth
inline constexpr const char* kTermKd = "kd";                    ///< prediction KD (KL at temperature T)
inline constexpr const char* kTermAttnCoarse = "attn_coarse";   ///< attention-map KD at encoder_coarse (E_n)
inline constexpr const char* kTermAttnFine = "attn_fine";       ///< attention-map KD at decoder_fine (D_{n-1})
inline constexpr const char* kTermAttnProbs = "attn_probs";     ///< transformer attention-probability KD
/// All term names, in logging order.
const std::vector<std::string>& term_names();

/// A weight that goes linearly from `from` to `to` over its stage (constant when equal).
struct Ramp {
  double from = 0;
  double to = 0;
  /// Value at position t in [0, 1] of the stage.
  double at(double t) const { return from + (to - from) * t; }
};

/// One stage: its length and its weights. Terms not named have weight 0.
struct Stage {
  std::string name;
  /// Fraction of the run's epochs (stages' fractions are rescaled to sum to 1); ignored when epochs >= 0.
  double fraction = 1.0;
  /// Absolute length in epochs (-1: use fraction). The last stage always runs to the end.
  int64_t epochs = -1;
  std::map<std::string, Ramp> weights;
};

/// A named sequence of stages.
struct Strategy {
  std::string name;
  std::vector<Stage> stages;

  /// The weights of every term at `step` of a run of `epochs` x `steps_per_epoch` steps.
  std::map<std::string, double> weights_at(int64_t step, int64_t epochs, int64_t steps_per_epoch) const;
  /// The stage index active at `epoch`.
  size_t stage_at(int64_t epoch, int64_t epochs) const;
  /// First epoch of each stage for a run of `epochs` epochs (size = stages.size() + 1, last = epochs).
  std::vector<int64_t> boundaries(int64_t epochs) const;
  /// True when some stage gives `term` a non-zero weight.
  bool uses(const std::string& term) const;
  /// True when any KD term is used (teachers are needed).
  bool needs_teachers() const;
};

/// Built-in strategies:
///  - "teachformer": stage 1 "align" (20%): ground truth 1, attention-map KD 1 (the maps first); stage 2 "joint"
///    (50%): every term 1; stage 3 "finetune" (30%): ground truth 1, prediction KD 1, attention KD decaying 1 -> 0.
///  - "student_alone": ground truth only (no KD).
///  - "hinton": ground truth + prediction KD.
///  - "hinton_coarse", "hinton_fine": ground truth + prediction KD + the coarse (or the fine) attention map.
///  - "at": ground truth + attention-map KD (coarse and fine).
///  - "multi_no_staging": every term at weight 1 from start to end.
Strategy strategy_preset(const std::string& name);
std::vector<std::string> strategy_preset_names();
/// A preset name, or {"name": ..., "stages": [{"name", "fraction" | "epochs", "weights": {term: w | {"from", "to"}}}]}.
Strategy strategy_from_json(const nlohmann::json& j);
nlohmann::json to_json(const Strategy& s);

}  // namespace teachformer::distill
