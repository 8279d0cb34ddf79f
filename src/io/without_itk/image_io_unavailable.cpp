// io/image_io.hpp in a build without ITK (TEACHFORMER_WITH_ITK=OFF, e.g. a GPU node that only trains on
// preprocessed data): safetensors work, image files are refused with one line saying why.
#include "teachformer/core/error.hpp"
#include "teachformer/io/dicom.hpp"
#include "teachformer/io/image_io.hpp"

namespace teachformer::io {
namespace {
[[noreturn]] void unavailable(const std::filesystem::path& path) {
  TF_THROW(IoError, "'", path.string(), "': this build of TeachFormer has no ITK, so it cannot read or write ",
           "NIfTI/MHA/NRRD images (rebuild with -DTEACHFORMER_WITH_ITK=ON; preprocessed datasets and model folders "
           "work without it)");
}
}  // namespace

std::string itk_version() { return "none (built without ITK)"; }
ImageInfo read_image_info(const std::filesystem::path& path, const ReadLimits&) {
  if (std::filesystem::is_directory(path)) return dicom_image_info(path);
  unavailable(path);
}
Volume read_image(const std::filesystem::path& path, const ReadLimits&) {
  if (std::filesystem::is_directory(path)) return read_dicom_series(path);
  unavailable(path);
}
Volume read_label(const std::filesystem::path& path, const ReadLimits&) { unavailable(path); }
void write_image(const std::filesystem::path& path, const Volume&, PixelType) { unavailable(path); }
void write_label(const std::filesystem::path& path, const Volume&) { unavailable(path); }

}  // namespace teachformer::io
