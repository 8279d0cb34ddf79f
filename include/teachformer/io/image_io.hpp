// Medical image files through ITK: .nii, .nii.gz, .mha, .mhd (+ .raw), .nrrd, .nhdr.
// This header is ITK-free; ITK stays inside src/io/itk_*.cpp.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "teachformer/io/volume.hpp"

namespace teachformer::io {

/// On-disk pixel component type.
enum class PixelType { UInt8, Int8, UInt16, Int16, UInt32, Int32, UInt64, Int64, Float32, Float64 };

/// "uint8", "int16", "float32", ...
std::string to_string(PixelType type);

/// What a header says, read without the pixel data.
struct ImageInfo {
  /// Voxel counts (x, y, z); a 2D image has z = 1.
  Size3 size{1, 1, 1};
  /// Channels: the 4th dimension of a 4D image, or the components of a vector image.
  int64_t channels = 1;
  /// Spatial geometry (the 3x3 part for 4D images).
  Geometry geometry;
  /// Pixel component type on disk.
  PixelType pixel_type = PixelType::Float32;
  /// Number of dimensions in the file (2, 3 or 4).
  int dimensions = 3;
  Grid grid() const { return Grid{size, geometry}; }
};

/// Limits that protect against absurd headers before anything is allocated.
struct ReadLimits {
  /// Largest pixel buffer accepted, in bytes (default 8 GiB).
  int64_t max_bytes = int64_t(8) << 30;
  /// Largest size of any dimension (default 100,000 voxels).
  int64_t max_dim = 100000;
};

/// True for the supported extensions (.nii, .nii.gz, .mha, .mhd, .nrrd, .nhdr).
bool is_image_file(const std::filesystem::path& path);
/// The recognised image extension of a path (".nii.gz", ".mha", ...) or "" if none.
std::string image_extension(const std::filesystem::path& path);
/// Supported extensions, for messages and `doctor`.
std::vector<std::string> supported_image_extensions();
/// ITK version string.
std::string itk_version();

/// Reads only the header. Throws IoError/FormatError naming the path. A folder holding one DICOM series is read
/// through io/dicom.hpp (here and in read_image; PET in SUVbw).
ImageInfo read_image_info(const std::filesystem::path& path, const ReadLimits& limits = {});
/// Reads an image of any scalar type as float32 [C, Z, Y, X]; 4D NIfTI and vector images give C > 1.
Volume read_image(const std::filesystem::path& path, const ReadLimits& limits = {});
/// Reads a label map as uint8 [1, Z, Y, X]; values must be integers in [0, 255] (FormatError otherwise).
Volume read_label(const std::filesystem::path& path, const ReadLimits& limits = {});

/// Writes `volume` (C == 1: a 3D image; C > 1: a 4D image, channels last dimension) converted to
/// `pixel_type`, keeping its geometry exactly. Atomic: a temporary file renamed into place. NIfTI
/// ".nii.gz", ".mha" and ".nrrd" are compressed.
void write_image(const std::filesystem::path& path, const Volume& volume, PixelType pixel_type = PixelType::Float32);
/// Writes a uint8 label map (values must fit in [0, 255]).
void write_label(const std::filesystem::path& path, const Volume& labels);

}  // namespace teachformer::io
