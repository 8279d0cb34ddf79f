// Where the windows of a sliding-window pass go: padding and window origins per spatial axis.
#pragma once
#include <array>
#include <string>
#include <vector>

namespace teachformer::inference {

/// How window origins are spread along an axis. Both use the same window count
/// n = ceil((size - roi) / step) + 1 with step = max(1, floor(roi * (1 - overlap))), and both put the first
/// window at 0 and the last flush with the end.
enum class WindowPlacement {
  Monai,  ///< origins i * step, the last one moved back to size - roi (MONAI's dense_patch_slices)
  Even,   ///< origins round(i * (size - roi) / (n - 1)): equal overlaps everywhere (nnU-Net's steps)
};
/// "monai" or "even".
std::string to_string(WindowPlacement placement);
/// Parses "monai" / "even"; throws ConfigError naming `context` otherwise.
WindowPlacement parse_window_placement(const std::string& text, const std::string& context);

/// The windows along one spatial axis.
struct AxisWindows {
  /// Image size along the axis (voxels).
  int64_t size = 0;
  /// Size after padding (>= size and >= roi; a multiple of the alignment).
  int64_t padded_size = 0;
  /// Padding voxels before the image (a multiple of the alignment); padding after = padded - size - before.
  int64_t pad_before = 0;
  /// Window origins in padded coordinates, increasing, unique: first 0, last padded_size - roi.
  std::vector<int64_t> starts;
};

/// Window layout over a [Z, Y, X] volume.
struct WindowPlan {
  /// Window size [Z, Y, X] (voxels).
  std::array<int64_t, 3> roi{};
  /// Alignment [Z, Y, X]: every origin and pad_before is a multiple of it.
  std::array<int64_t, 3> alignment{1, 1, 1};
  /// Per axis Z, Y, X.
  std::array<AxisWindows, 3> axes;

  /// Number of windows (product of the per-axis counts).
  int64_t count() const;
  /// Origin [z, y, x] (padded coordinates) of window `index` in raster order (X fastest), 0 <= index < count().
  std::array<int64_t, 3> origin(int64_t index) const;
  /// True when any axis is padded.
  bool padded() const;
};

/// Plans the windows over an image of spatial shape [Z, Y, X].
/// Padding (constant, applied by the caller): each axis is padded to max(roi, ceil(size / a) * a) where a is the
/// alignment; floor(pad / (2a)) * a voxels go before the image and the rest after it (MONAI's centred padding
/// when a = 1). With a > 1 the Monai step is rounded down to a multiple of a (at least a) and Even origins are
/// rounded to the nearest multiple of a, so every origin is a multiple of a: an output downsampled by a factor
/// dividing a then lands exactly on its own grid. Throws InvalidArgument for a roi < 1, overlap outside [0, 1),
/// alignment < 1, or a roi that is not a multiple of the alignment.
WindowPlan plan_windows(const std::vector<int64_t>& spatial_shape, const std::vector<int64_t>& roi, double overlap,
                        WindowPlacement placement = WindowPlacement::Monai,
                        const std::array<int64_t, 3>& alignment = {1, 1, 1});

}  // namespace teachformer::inference
