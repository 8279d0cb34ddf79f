// Lesion counting on label maps: connected components of the foreground, used to check that resampling a label
// neither merges, splits nor loses lesions (as picai_prep does).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace teachformer::transforms {

/// Sizes in voxels of the connected components of the non-zero voxels of `mask` ([Z, Y, X] or [1, Z, Y, X],
/// any dtype), in the raster order (z, y, x) of each component's first voxel. `connectivity` is 6 (faces),
/// 18 (faces + edges) or 26 (the full 3x3x3 block, the default). Union-find, linear in the voxel count.
std::vector<int64_t> component_sizes(const torch::Tensor& mask, int connectivity = 26);

/// Number of connected components of the non-zero voxels (see component_sizes).
int64_t count_components(const torch::Tensor& mask, int connectivity = 26);

/// What to do when resampling a label changes its number of lesions (26-connected components of label > 0).
enum class LesionCheck {
  Off,    ///< do not count
  Warn,   ///< log a warning and keep going (default)
  Error,  ///< throw DatasetError
};

/// "off", "warn" or "error".
std::string to_string(LesionCheck check);
/// Parses "off", "warn" or "error" (InvalidArgument naming `context` otherwise).
LesionCheck lesion_check_from_string(const std::string& name, const std::string& context = "lesion check");

/// Compares lesion counts before and after resampling a label. Returns a warning text when they differ and
/// `check` is Warn, nothing when equal or Off; throws DatasetError "<context>: ..." when they differ and `check`
/// is Error.
std::optional<std::string> check_lesion_count(int64_t before, int64_t after, LesionCheck check,
                                              const std::string& context);

}  // namespace teachformer::transforms
