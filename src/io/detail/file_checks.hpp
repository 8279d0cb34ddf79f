// Size checks ITK does not do: it silently accepts truncated NIfTI and MetaImage data.
#pragma once
#include <cstdint>
#include <filesystem>

namespace teachformer::io::detail {

/// Throws FormatError naming the path when the file cannot hold `data_bytes` bytes of pixel data
/// (.nii: file size vs vox_offset; .nii.gz: gzip trailer's uncompressed size; .mha/.mhd: header vs data file).
/// Other formats are left to their readers.
void check_data_size(const std::filesystem::path& path, uint64_t data_bytes);

}  // namespace teachformer::io::detail
