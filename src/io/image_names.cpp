// The ITK-free part of io/image_io.hpp: pixel type names and the image file extensions.
#include <string>
#include <vector>

#include "teachformer/core/fs.hpp"
#include "teachformer/io/image_io.hpp"

namespace teachformer::io {

std::string to_string(PixelType type) {
  switch (type) {
    case PixelType::UInt8: return "uint8";
    case PixelType::Int8: return "int8";
    case PixelType::UInt16: return "uint16";
    case PixelType::Int16: return "int16";
    case PixelType::UInt32: return "uint32";
    case PixelType::Int32: return "int32";
    case PixelType::UInt64: return "uint64";
    case PixelType::Int64: return "int64";
    case PixelType::Float32: return "float32";
    case PixelType::Float64: return "float64";
  }
  return "unknown";
}

std::string image_extension(const fs::path& path) {
  for (const auto& ext : supported_image_extensions())
    if (has_suffix(path, ext)) return ext;
  return {};
}

bool is_image_file(const fs::path& path) { return !image_extension(path).empty(); }

std::vector<std::string> supported_image_extensions() {
  return {".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr"};
}

}  // namespace teachformer::io
