// Size and cost of a model at a given input: parameters, analytic GFLOPs of one forward, output and tap shapes.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/models/seg_model.hpp"

namespace teachformer::models {

/// What describe_model reports.
struct ModelInfo {
  /// Registry key of the model.
  std::string key;
  /// Number of parameters (all, trainable or not).
  int64_t parameters = 0;
  /// Input shape the forward ran at, [B, C, D, H, W].
  std::vector<int64_t> input_shape;
  /// Multiply-accumulates of one forward (conv, transposed conv, linear, matmul; see nn/flops.hpp).
  int64_t macs = 0;
  /// 2 x macs / 1e9.
  double gflops = 0.0;
  /// MACs by op kind ("conv", "conv_transpose", "linear", "matmul").
  std::map<std::string, int64_t> macs_by_kind;
  /// Logits shape [B, out_channels, D, H, W].
  std::vector<int64_t> output_shape;
  /// Shapes of the deep-supervision outputs, highest resolution first.
  std::vector<std::vector<int64_t>> deep_supervision_shapes;
  /// Shapes of the feature taps (encoder_coarse, decoder_fine), in the model's order.
  std::vector<std::pair<std::string, std::vector<int64_t>>> taps;
};

/// Runs one forward of `model` on zeros of `input_shape` ([B, C, D, H, W], or [C, D, H, W] for B = 1) with
/// NoGradGuard, in eval mode (the previous mode is restored), under an nn::FlopCounter. Throws the model's
/// InvalidArgument when it rejects the shape.
ModelInfo describe_model(SegmentationModelImpl& model, std::vector<int64_t> input_shape);

/// JSON form: {"key", "parameters", "input_shape", "macs", "gflops", "macs_by_kind", "output_shape",
/// "deep_supervision_shapes", "taps": {name: shape}}.
nlohmann::json to_json(const ModelInfo& info);

}  // namespace teachformer::models
