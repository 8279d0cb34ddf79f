// Private helpers of losses/: option checks shared by several losses.
#pragma once
#include <string>
#include <vector>

#include <torch/types.h>

#include "teachformer/core/error.hpp"

namespace teachformer::losses::detail {

/// Per-class weights must be >= 0 and finite, and not all zero.
void check_class_weights(const std::vector<double>& weights, const std::string& option, const std::string& context);

/// The weights as a float32 tensor [C] on `device`, after checking the length against the logits' C.
torch::Tensor class_weight_tensor(const std::vector<double>& weights, int64_t classes, const torch::Device& device,
                                  const std::string& option, const std::string& context);

/// Runs `check` and rethrows an InvalidArgument as ConfigError (options read from JSON).
template <typename F>
void as_config_error(F&& check) {
  try {
    check();
  } catch (const InvalidArgument& e) {
    throw ConfigError(e.what());
  }
}

}  // namespace teachformer::losses::detail
