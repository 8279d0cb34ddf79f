// LossBreakdown: a loss value to back-propagate plus its named components for logging.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace teachformer::losses {

/// The result of every loss in losses/ and distill/: `total` is what training back-propagates; `terms` are the
/// named components ("dice", "ce", "level1", "kd.unetr", ...) in the order they were added, so each can be
/// logged. Terms are 0-dim tensors still attached to the graph; they are reported as computed (before the
/// loss's own weights such as lambda_dice), so they need not sum to `total`.
struct LossBreakdown {
  /// 0-dim float tensor to call backward() on.
  torch::Tensor total;
  /// Named 0-dim components, insertion order.
  std::vector<std::pair<std::string, torch::Tensor>> terms;

  /// Appends a term; throws InvalidArgument when `name` is already present or `value` is not a scalar.
  void add_term(const std::string& name, torch::Tensor value);
  /// True when a term with this name exists.
  bool has_term(const std::string& name) const;
  /// The named term; throws InvalidArgument listing the available names when absent.
  const torch::Tensor& term(const std::string& name) const;
  /// Names of the terms in order.
  std::vector<std::string> term_names() const;
  /// Appends every term of `other` as `prefix + name` (e.g. prefix "seg."); `total` is left unchanged.
  void append_terms(const LossBreakdown& other, const std::string& prefix);
  /// Detached values for logging: ("total", total) first, then the terms in order.
  std::vector<std::pair<std::string, double>> values() const;
  /// One line for logs: "total 0.5123 dice 0.3101 ce 0.2022" (`precision` significant digits).
  std::string summary(int precision = 4) const;
};

}  // namespace teachformer::losses
