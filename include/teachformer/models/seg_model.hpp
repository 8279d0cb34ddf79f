// The one interface every segmentation model (teacher or student) implements.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/types.h>

namespace teachformer::models {

/// Names of the taps every model provides (see SegOutput::taps).
inline constexpr const char* kEncoderCoarse = "encoder_coarse";  ///< deepest encoder stage E_n, [B, C, D, H, W]
inline constexpr const char* kDecoderFine = "decoder_fine";      ///< decoder stage D_{n-1}, [B, C, D, H, W]
/// The last decoder stage D_n (the teachers' full-resolution features before the output convolution), [B, C, D, H, W];
/// the student has none (its last stage is the fused output block).
inline constexpr const char* kDecoderLast = "decoder_last";
/// Prefix of attention-probability taps: "attention.<layer>" -> [B, heads, N, N] (or [B*windows, heads, n, n]).
inline constexpr const char* kAttentionPrefix = "attention.";

/// Intermediate tensors by name, in the order the model produced them.
class Taps {
 public:
  /// Adds or replaces a tap.
  void set(const std::string& name, torch::Tensor value);
  /// True when present.
  bool contains(const std::string& name) const;
  /// The tap; throws InvalidArgument listing the available names when absent.
  const torch::Tensor& at(const std::string& name) const;
  /// Names in insertion order.
  std::vector<std::string> names() const;
  const std::vector<std::pair<std::string, torch::Tensor>>& items() const { return items_; }
  bool empty() const { return items_.empty(); }

 private:
  std::vector<std::pair<std::string, torch::Tensor>> items_;
};

/// What a forward pass should record besides the logits.
struct TapRequest {
  /// Record `encoder_coarse`, `decoder_fine` and (teachers) `decoder_last` (cheap: references to existing tensors).
  bool features = true;
  /// Record the attention probabilities of transformer layers ("attention.<layer>"); costs memory.
  bool attention = false;
  /// Record model-specific debugging intermediates (e.g. "vit_hidden_3", "swin_hidden_2").
  bool intermediates = false;
  /// Compute the deep-supervision outputs. Prediction sets this to false (as nnU-Net switches deep supervision off
  /// for inference): models may then leave SegOutput::deep_supervision empty.
  bool deep_supervision = true;
};

/// Output of every segmentation model.
struct SegOutput {
  /// [B, out_channels, D, H, W] logits at the input resolution (no softmax).
  torch::Tensor logits;
  /// Auxiliary logits for deep supervision, highest resolution first (1/2, 1/4, ...); empty if none.
  std::vector<torch::Tensor> deep_supervision;
  /// Named intermediate tensors (see TapRequest).
  Taps taps;
};

/// The logits followed by the deep-supervision outputs: every output, full resolution first.
std::vector<torch::Tensor> all_outputs(const SegOutput& output);

/// Static facts about a built model, used by training, inference and the CLI.
struct ModelSpec {
  /// Registry key ("unetr", "swin_unetr", "hdenseformer", "teachformer_s").
  std::string key;
  /// Input channels (modalities) and output channels (classes incl. background).
  int64_t in_channels = 1;
  int64_t out_channels = 2;
  /// Every spatial input size must be a multiple of this (per dim: D, H, W).
  std::vector<int64_t> size_divisor{1, 1, 1};
  /// When non-empty the input must have exactly this spatial size [D, H, W] (e.g. UNETR's img_size).
  std::vector<int64_t> fixed_input_size;
  /// Number of deep-supervision outputs forward() returns.
  int64_t deep_supervision_outputs = 0;
  /// Resolved options as JSON (the registry's option names), enough to rebuild the model.
  nlohmann::json options;
};

/// Base class of every segmentation model. Models are torch::nn::Modules so parameters, buffers,
/// state_dict names, train()/eval() and to(device) work as usual; the registry returns them through this
/// type so distillation and training never need a concrete model type.
class SegmentationModelImpl : public torch::nn::Module {
 public:
  explicit SegmentationModelImpl(const std::string& name) : torch::nn::Module(name) {}
  ~SegmentationModelImpl() override = default;
  /// Runs the model on x [B, in_channels, D, H, W].
  virtual SegOutput forward(const torch::Tensor& x, const TapRequest& request = {}) = 0;
  /// Static facts (key, channels, size rules, options).
  virtual const ModelSpec& spec() const = 0;
  /// Throws InvalidArgument naming model, option and shape when x does not fit spec().
  void check_input(const torch::Tensor& x) const;
};

/// Shared handle (the registry's return type).
using SegmentationModel = std::shared_ptr<SegmentationModelImpl>;

/// Number of parameters (optionally only those requiring grad).
int64_t count_parameters(const torch::nn::Module& module, bool trainable_only = false);

}  // namespace teachformer::models
