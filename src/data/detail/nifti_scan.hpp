// Counting non-finite voxels of NIfTI float images from the raw file: the NIfTI library ITK uses (nifti1_io)
// silently replaces NaN/Inf with 0 while reading float data, so `verify` cannot see them through io::read_image.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>

namespace teachformer::data::detail {

/// NaN and Inf voxel counts.
struct NonFinite {
  int64_t nan = 0;
  int64_t inf = 0;
};

/// Counts NaN/Inf voxels in a .nii/.nii.gz (NIfTI-1 or -2, either byte order) holding float32 or float64 data.
/// Returns nothing for other files or data types (their values reach io::read_image unchanged). Throws
/// FormatError naming the file when the data is shorter than the header says.
std::optional<NonFinite> count_nonfinite_nifti(const std::filesystem::path& path);

}  // namespace teachformer::data::detail
