#include "teachformer/models/model_info.hpp"

#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/nn/flops.hpp"

namespace teachformer::models {

ModelInfo describe_model(SegmentationModelImpl& model, std::vector<int64_t> input_shape) {
  if (input_shape.size() == 4) input_shape.insert(input_shape.begin(), 1);
  TF_CHECK(input_shape.size() == 5, InvalidArgument, model.spec().key, ": input shape must be [B, C, D, H, W] or ",
           "[C, D, H, W], got ", input_shape);
  for (int64_t n : input_shape)
    TF_CHECK(n > 0, InvalidArgument, model.spec().key, ": input shape must be positive, got ", input_shape);
  ModelInfo info;
  info.key = model.spec().key;
  info.parameters = count_parameters(model);
  info.input_shape = input_shape;
  const bool was_training = model.is_training();
  model.eval();
  struct Restore {
    SegmentationModelImpl& m;
    bool training;
    ~Restore() { m.train(training); }
  } restore{model, was_training};
  torch::NoGradGuard no_grad;
  nn::FlopCounter counter;
  const SegOutput out = model.forward(torch::zeros(input_shape), TapRequest{});
  info.macs = counter.macs();
  info.gflops = counter.gflops();
  info.macs_by_kind = counter.by_kind();
  info.output_shape = out.logits.sizes().vec();
  for (const auto& ds : out.deep_supervision) info.deep_supervision_shapes.push_back(ds.sizes().vec());
  for (const auto& [name, tensor] : out.taps.items()) info.taps.emplace_back(name, tensor.sizes().vec());
  return info;
}

nlohmann::json to_json(const ModelInfo& info) {
  nlohmann::json taps = nlohmann::json::object();
  for (const auto& [name, shape] : info.taps) taps[name] = shape;
  return {{"key", info.key},
          {"parameters", info.parameters},
          {"input_shape", info.input_shape},
          {"macs", info.macs},
          {"gflops", info.gflops},
          {"macs_by_kind", info.macs_by_kind},
          {"output_shape", info.output_shape},
          {"deep_supervision_shapes", info.deep_supervision_shapes},
          {"taps", taps}};
}

}  // namespace teachformer::models
