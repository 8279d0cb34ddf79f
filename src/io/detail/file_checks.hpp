// Checks ITK does not do: it silently accepts truncated NIfTI and MetaImage data, and its NIfTI reader trusts
// header fields (vox_offset, non-finite geometry) that a corrupt file gets wrong.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace teachformer::io::detail {

/// `s` without the blanks, tabs and carriage returns at its ends (header lines of the text formats).
std::string trim(std::string s);

/// Throws FormatError naming the path when the file cannot hold `data_bytes` bytes of pixel data
/// (.nii: file size vs vox_offset; .nii.gz: gzip trailer's uncompressed size; .mha/.mhd: header vs data file).
/// Other formats are left to their readers.
void check_data_size(const std::filesystem::path& path, uint64_t data_bytes);

/// For .nii and .nii.gz, before ITK reads the header: throws FormatError naming the path unless the file starts
/// with a NIfTI-1 or NIfTI-2 header (either byte order) whose dimensions are 1 to 7 positive sizes, whose voxel
/// spacings, quaternion, offsets and sform rows (where their codes say they are used) are finite, and whose
/// vox_offset lies within the file. Other formats are left to their readers.
void check_header(const std::filesystem::path& path);

/// For .mha/.mhd and .nrrd/.nhdr, before ITK reads the header: throws FormatError naming the path and the line
/// unless the header is text in the format's grammar with the counts, sizes and names ITK relies on (NDims or
/// dimension 1 to 7 given first, as many sizes as dimensions, finite numbers, known types, encodings and fields,
/// a single data file inside the header's folder). Other formats are left alone.
void check_text_header(const std::filesystem::path& path);

/// For .nrrd/.nhdr with raw encoding: throws FormatError when the data (attached or in its data file, after the
/// byte skip) is shorter than `data_bytes`.
void check_nrrd_data_size(const std::filesystem::path& path, uint64_t data_bytes);

}  // namespace teachformer::io::detail
