// Optimisers and learning-rate schedules, with their state as named tensors for exact resume.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

namespace teachformer::train {

/// Optimiser settings.
struct OptimizerOptions {
  /// "adamw" (default) or "sgd" (momentum, Nesterov: nnU-Net's choice).
  std::string name = "adamw";
  /// Peak learning rate (after warm-up).
  double lr = 3e-4;
  /// Decoupled weight decay (AdamW) or L2 (SGD); not applied to 1-D parameters (biases, norm affines).
  double weight_decay = 1e-2;
  /// Adam betas.
  std::vector<double> betas{0.9, 0.999};
  /// Adam epsilon.
  double eps = 1e-8;
  /// SGD momentum.
  double momentum = 0.99;
  /// SGD Nesterov momentum.
  bool nesterov = true;
};

/// Schedule settings: linear warm-up from 0, then poly or cosine decay to min_lr at the last step.
struct ScheduleOptions {
  /// "poly" (default, exponent 0.9 as nnU-Net) or "cosine" or "constant".
  std::string name = "poly";
  /// Poly exponent.
  double exponent = 0.9;
  /// Warm-up steps (linear from 0 to lr).
  int64_t warmup_steps = 0;
  /// Final learning rate.
  double min_lr = 0.0;
};

OptimizerOptions optimizer_options_from_json(const nlohmann::json& j);
nlohmann::json to_json(const OptimizerOptions& o);
ScheduleOptions schedule_options_from_json(const nlohmann::json& j);
nlohmann::json to_json(const ScheduleOptions& o);

/// Named parameters in a fixed order (the module's named_parameters order).
using NamedParameters = std::vector<std::pair<std::string, torch::Tensor>>;

/// Builds the optimiser with two parameter groups: with weight decay (dim > 1) and without (dim <= 1).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const NamedParameters& params, const OptimizerOptions& o);
/// Learning rate at `step` (0-based) of `total_steps`.
double scheduled_lr(const ScheduleOptions& s, double peak_lr, int64_t step, int64_t total_steps);
/// Sets the learning rate of every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

/// The optimiser's state as tensors named "<param name>.<field>" (exp_avg, exp_avg_sq, step, momentum_buffer).
std::map<std::string, torch::Tensor> optimizer_state(torch::optim::Optimizer& optimizer, const NamedParameters& params);
/// Restores what optimizer_state() returned (InvalidArgument naming the key when something does not fit).
void load_optimizer_state(torch::optim::Optimizer& optimizer, const NamedParameters& params,
                          const std::map<std::string, torch::Tensor>& state);

}  // namespace teachformer::train
