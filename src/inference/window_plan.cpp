#include "teachformer/inference/window_plan.hpp"

#include <algorithm>
#include <cmath>

#include "teachformer/core/error.hpp"

namespace teachformer::inference {

std::string to_string(WindowPlacement placement) { return placement == WindowPlacement::Monai ? "monai" : "even"; }

WindowPlacement parse_window_placement(const std::string& text, const std::string& context) {
  if (text == "monai") return WindowPlacement::Monai;
  if (text == "even") return WindowPlacement::Even;
  TF_THROW(ConfigError, context, ": placement must be \"monai\" or \"even\", got \"", text, "\"");
}

int64_t WindowPlan::count() const {
  int64_t n = 1;
  for (const auto& a : axes) n *= static_cast<int64_t>(a.starts.size());
  return n;
}

std::array<int64_t, 3> WindowPlan::origin(int64_t index) const {
  TF_CHECK(index >= 0 && index < count(), InvalidArgument, "window plan: window index ", index, " outside [0, ",
           count(), ")");
  std::array<int64_t, 3> o{};
  for (int d = 2; d >= 0; --d) {
    const auto n = static_cast<int64_t>(axes[d].starts.size());
    o[d] = axes[d].starts[index % n];
    index /= n;
  }
  return o;
}

bool WindowPlan::padded() const {
  for (const auto& a : axes)
    if (a.padded_size != a.size) return true;
  return false;
}

namespace {

AxisWindows plan_axis(int64_t size, int64_t roi, double overlap, WindowPlacement placement, int64_t align) {
  AxisWindows a;
  a.size = size;
  a.padded_size = std::max(roi, (size + align - 1) / align * align);
  a.pad_before = (a.padded_size - size) / (2 * align) * align;
  const int64_t span = a.padded_size - roi;  // a multiple of align: roi and padded_size both are
  const int64_t step =
      std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(roi) * (1.0 - overlap))));
  if (span == 0) {
    a.starts = {0};
    return a;
  }
  if (placement == WindowPlacement::Monai) {
    const int64_t aligned_step = std::max(align, step / align * align);
    const int64_t n = (span + aligned_step - 1) / aligned_step + 1;
    for (int64_t i = 0; i < n; ++i) a.starts.push_back(std::min(i * aligned_step, span));
  } else {
    const int64_t n = (span + step - 1) / step + 1;
    const int64_t units = span / align;
    for (int64_t i = 0; i < n; ++i)
      a.starts.push_back(align * static_cast<int64_t>(std::llround(static_cast<double>(i) * units / (n - 1))));
  }
  a.starts.erase(std::unique(a.starts.begin(), a.starts.end()), a.starts.end());
  return a;
}

}  // namespace

WindowPlan plan_windows(const std::vector<int64_t>& spatial_shape, const std::vector<int64_t>& roi, double overlap,
                        WindowPlacement placement, const std::array<int64_t, 3>& alignment) {
  TF_CHECK(spatial_shape.size() == 3, InvalidArgument, "sliding window: image spatial shape must be [Z, Y, X], got ",
           spatial_shape);
  TF_CHECK(roi.size() == 3, InvalidArgument, "sliding window: roi_size must have 3 values [Z, Y, X], got ", roi);
  TF_CHECK(overlap >= 0.0 && overlap < 1.0, InvalidArgument, "sliding window: overlap must be in [0, 1), got ",
           overlap);
  WindowPlan plan;
  for (int d = 0; d < 3; ++d) {
    TF_CHECK(spatial_shape[d] >= 1, InvalidArgument, "sliding window: image spatial shape ", spatial_shape,
             " must be >= 1 in every dim (dim ", d, " is ", spatial_shape[d], ")");
    TF_CHECK(roi[d] >= 1, InvalidArgument, "sliding window: roi_size ", roi, " must be >= 1 in every dim (dim ", d,
             " is ", roi[d], ")");
    TF_CHECK(alignment[d] >= 1 && roi[d] % alignment[d] == 0, InvalidArgument, "sliding window: roi_size ", roi,
             " must be a multiple of the output downsampling ",
             std::vector<int64_t>(alignment.begin(), alignment.end()), " in every dim (dim ", d, ")");
    plan.roi[d] = roi[d];
    plan.alignment[d] = alignment[d];
    plan.axes[d] = plan_axis(spatial_shape[d], roi[d], overlap, placement, alignment[d]);
  }
  return plan;
}

}  // namespace teachformer::inference
