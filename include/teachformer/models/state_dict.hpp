// Module weights by name: a flat state_dict (parameters + buffers, dotted names exactly as PyTorch names
// them) and a strict loader that reports every missing, unexpected or mis-shaped key at once.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace teachformer::models {

/// Tensors by dotted name ("vit.blocks.0.attn.qkv.weight"), sorted by name. Same type as
/// io::SafeTensors::tensors, so a safetensors file's tensors load directly and a state_dict writes directly.
using StateDict = std::map<std::string, torch::Tensor>;

/// Every parameter and buffer of `module` and its descendants under PyTorch's dotted names (buffers such as
/// BatchNorm's running_mean / num_batches_tracked and Swin's relative_position_index included). The tensors
/// alias the module's storage (no copy): clone them for a snapshot that later training must not change.
StateDict state_dict(const torch::nn::Module& module);

/// What load_state_dict did.
struct LoadReport {
  /// Keys copied into the module, sorted.
  std::vector<std::string> loaded;
  /// Keys of the state_dict that the module does not have but that matched an ignorable pattern (accepted
  /// and not used, e.g. MONAI >= 1.4's unused `cross_attn.*` keys), sorted.
  std::vector<std::string> ignored;
  /// Keys of the module that the state_dict lacks but that matched an ignorable pattern: they keep their
  /// current values, sorted.
  std::vector<std::string> kept;
};

/// True when `key` matches `pattern`. A pattern with '*' is a glob over the whole key ('*' matches any run of
/// characters, dots included: "vit.blocks.*.cross_attn.*"). A pattern without '*' matches when the key
/// contains it starting at a name boundary (at the start of the key or right after a '.'): "cross_attn."
/// matches "vit.blocks.0.cross_attn.to_q.weight" but not "vit.blocks.0.norm_cross_attn.weight".
bool key_matches(const std::string& key, const std::string& pattern);

/// Copies `tensors` into the parameters and buffers of `module` (no autograd; values are converted to each
/// target's dtype and device). Strict: throws InvalidArgument, listing up to 10 keys of each kind plus a
/// count, when the state_dict has keys the module lacks, lacks keys the module has, or has a key whose shape
/// (or floating/integer kind) differs — except keys matching one of `ignorable_patterns` (see key_matches),
/// which are reported in LoadReport::ignored / ::kept instead. Nothing is modified when it throws.
LoadReport load_state_dict(torch::nn::Module& module, const StateDict& tensors,
                           const std::vector<std::string>& ignorable_patterns = {});

}  // namespace teachformer::models
