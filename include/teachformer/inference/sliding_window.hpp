// Sliding-window inference over a whole volume: windows -> one or more callables (models, folds) -> optional
// mirroring -> importance-weighted blending into one float32 buffer per output. Pure tensor machinery: a
// Predictor that reads a model folder builds on it.
//
// Layouts: image [C, Z, Y, X] (or [B, C, Z, Y, X]); a window batch passed to a WindowFunction is
// [N, C, rz, ry, rx] with N <= sw_batch_size; output k of the function is [N, C_k, rz/fz, ry/fy, rx/fx] where
// (fz, fy, fx) is that output's downsampling factor; results are [C_k, Z', Y', X'] (or [B, C_k, ...]) with
// Z' = ceil(Z / fz) etc.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/arg.h>
#include <torch/types.h>

#include "teachformer/inference/importance_map.hpp"
#include "teachformer/inference/window_plan.hpp"

namespace teachformer::inference {

/// What is accumulated for segmentation outputs (OutputKind::Segmentation).
enum class Accumulate {
  /// softmax over channels per window (and per mirror / ensemble member), then blended: the result is a
  /// probability map (sums to 1 per voxel) and ensembling is the mean of probabilities. Default.
  Probabilities,
  /// raw logits blended (nnU-Net's choice); the result is blended logits, argmax still gives the labels.
  Logits,
};
/// "probabilities" or "logits".
std::string to_string(Accumulate accumulate);
/// Parses "probabilities" / "logits"; throws ConfigError naming `context` otherwise.
Accumulate parse_accumulate(const std::string& text, const std::string& context);

/// Options of a sliding-window pass (MONAI's names where MONAI has the option).
struct SlidingWindowOptions {
  /// Window size [Z, Y, X] in voxels; default 96^3. Images smaller than it are padded.
  TORCH_ARG(std::vector<int64_t>, roi_size) = {96, 96, 96};
  /// Fraction of a window shared with its neighbour, in [0, 1); step = floor(roi * (1 - overlap)). Default 0.5.
  TORCH_ARG(double, overlap) = 0.5;
  /// Windows per call of the window function; default 1.
  TORCH_ARG(int64_t, sw_batch_size) = 1;
  /// Blending weights; default Gaussian.
  TORCH_ARG(BlendMode, mode) = BlendMode::Gaussian;
  /// Gaussian sigma as a fraction of the window size per dim; default 0.125 (MONAI's; nnU-Net uses 1/8 too).
  TORCH_ARG(double, sigma_scale) = 0.125;
  /// Window origins; default Monai (see WindowPlacement).
  TORCH_ARG(WindowPlacement, placement) = WindowPlacement::Monai;
  /// Value of padded voxels (image smaller than the window or not a multiple of the alignment); default 0.
  TORCH_ARG(double, padding_value) = 0.0;
  /// Probabilities (default) or logits for segmentation outputs; feature outputs are always blended raw.
  TORCH_ARG(Accumulate, accumulate) = Accumulate::Probabilities;
  /// Mirroring test-time augmentation: spatial axes (0 = Z, 1 = Y, 2 = X) to flip; every combination of them is
  /// evaluated (2^k passes, the unflipped one included) and averaged. Default empty = off.
  TORCH_ARG(std::vector<int64_t>, mirror_axes) = {};
  /// Where the window functions run (windows are moved there); default CPU.
  TORCH_ARG(torch::Device, device) = torch::Device(torch::kCPU);
  /// Where the accumulation buffers live (outputs are moved there); default CPU.
  TORCH_ARG(torch::Device, stitch_device) = torch::Device(torch::kCPU);
  /// Dtype of the returned outputs: float32 (default) or float16 (halves the result's memory; the blending
  /// itself is always float32).
  TORCH_ARG(torch::Dtype, output_dtype) = torch::kFloat;
};
/// Reads options from JSON: {"roi_size": [96, 96, 96], "overlap": 0.5, "sw_batch_size": 1, "mode": "gaussian",
/// "sigma_scale": 0.125, "placement": "monai", "padding_value": 0, "accumulate": "probabilities",
/// "mirror_axes": [], "device": "cpu", "stitch_device": "cpu", "output_dtype": "float32"}. Unknown keys and
/// invalid values are ConfigError.
void from_json(const nlohmann::json& j, SlidingWindowOptions& options);
/// Writes every option.
void to_json(nlohmann::json& j, const SlidingWindowOptions& options);
/// Throws InvalidArgument naming the option when `options` is invalid (roi < 1, overlap outside [0, 1),
/// sw_batch_size < 1, sigma_scale <= 0, mirror axis outside 0..2 or repeated, output dtype not float32/float16).
void validate(const SlidingWindowOptions& options);

/// Kind of a window output.
enum class OutputKind {
  Segmentation,  ///< class logits: softmax applied per window when accumulating probabilities
  Feature,       ///< anything else (teacher taps, regression maps): blended as returned
};

/// Declares one output of the window function.
struct WindowOutput {
  /// Name of the output in the result ("logits", "encoder_coarse", ...); unique.
  std::string name = "logits";
  /// Downsampling factor [fz, fy, fx] of this output relative to the window (1 = full resolution); each must
  /// divide the roi size along its dim.
  std::array<int64_t, 3> downsample{1, 1, 1};
  /// Segmentation (default) or Feature.
  OutputKind kind = OutputKind::Segmentation;
};

/// A model, fold or any callable evaluated on a window batch [N, C, rz, ry, rx] (on options.device); returns
/// one tensor per declared WindowOutput, in the declared order, each [N, C_k, rz/fz, ry/fy, rx/fx].
using WindowFunction = std::function<std::vector<torch::Tensor>(const torch::Tensor& windows)>;

/// Called after each window batch with (windows done, total windows over the batch of images).
using SlidingWindowProgress = std::function<void(int64_t done, int64_t total)>;

/// The blended outputs of a pass.
struct SlidingWindowResult {
  /// Outputs by name in the declared order: [C_k, Z', Y', X'] ([B, C_k, ...] for a batched image), contiguous,
  /// on options.stitch_device, options.output_dtype.
  std::vector<std::pair<std::string, torch::Tensor>> outputs;
  /// Windows per image.
  int64_t windows = 0;
  /// Calls made to the window functions (batches x members x mirror combinations x images).
  int64_t function_calls = 0;

  /// The named output; throws InvalidArgument listing the names when absent.
  const torch::Tensor& at(const std::string& name) const;
};

/// Every subset of `axes` (the empty one first, then by increasing size): the flips a mirroring pass evaluates.
std::vector<std::vector<int64_t>> mirror_combinations(const std::vector<int64_t>& axes);

/// Runs the sliding window over `image` with every member of `members` (models or folds; the result is the mean
/// over members and mirror combinations, accumulated into the same buffers, never one buffer per member) and
/// blends the declared `outputs`.
/// Memory on the stitch device: one float32 buffer per output at its resolution, plus ONE float32 weight map per
/// distinct downsampling factor ([Z', Y', X'], shared by all channels, members and mirrorings); normalised in
/// place at the end. Window origins are multiples of the least common multiple of the factors (see
/// plan_windows), so a downsampled output is stitched exactly on its own grid; the importance map of such an
/// output is importance_map(roi / f) with the same mode and sigma_scale. Padding voxels count like image
/// voxels while blending and are cropped away at the end (the last cell of a downsampled output may cover some
/// padding). Runs without autograd. Throws InvalidArgument naming the member and output when a function
/// returns the wrong number of tensors or a wrong shape, and for invalid options or image shapes.
SlidingWindowResult sliding_window_inference(const torch::Tensor& image, const std::vector<WindowFunction>& members,
                                             const std::vector<WindowOutput>& outputs,
                                             const SlidingWindowOptions& options,
                                             const SlidingWindowProgress& progress = {});

/// Single function, single segmentation output at full resolution: returns the blended probabilities (or logits)
/// [C_out, Z, Y, X] (or [B, C_out, ...]).
torch::Tensor sliding_window_inference(const torch::Tensor& image, const WindowFunction& function,
                                       const SlidingWindowOptions& options);

}  // namespace teachformer::inference
