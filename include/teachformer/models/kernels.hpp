// The models' hand-written CPU kernels (fused norm + activation, pooling, upsampling, sub-pixel scatter/gather, the
// student's fused output block) run only on float32 CPU tensors without grad mode; everywhere else — CUDA tensors,
// autocast dtypes, training — the models use the equivalent LibTorch operators. This switch turns the kernels off
// for a whole process (tests compare both paths; TF_NO_FAST_KERNELS=1 does the same from the environment).
#pragma once

namespace teachformer::models {

/// Turns the hand-written kernels on or off.
void set_fast_kernels(bool enabled);
/// Whether they are on (default: on, unless TF_NO_FAST_KERNELS is set to a non-zero value).
bool fast_kernels_enabled();

}  // namespace teachformer::models
