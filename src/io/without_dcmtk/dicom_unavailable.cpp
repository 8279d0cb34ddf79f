// io/dicom.hpp in a build without DCMTK (TEACHFORMER_WITH_DCMTK=OFF or DCMTK not found): the DICOM functions
// refuse with one line saying why; NIfTI/MHA/NRRD and everything else work.
#include "teachformer/core/error.hpp"
#include "teachformer/io/dicom.hpp"

namespace teachformer::io {
namespace {
[[noreturn]] void unavailable(const std::filesystem::path& path) {
  TF_THROW(IoError, "'", path.string(), "': this build of TeachFormer has no DCMTK, so it cannot read or write DICOM ",
           "(install libdcmtk-dev and rebuild with -DTEACHFORMER_WITH_DCMTK=ON, or convert the series to NIfTI "
           "with another tool)");
}
}  // namespace

bool dicom_available() { return false; }
std::string dcmtk_version() { return "none (built without DCMTK)"; }
std::string new_dicom_uid() { unavailable("DICOM UID"); }
DicomScan scan_dicom(const std::filesystem::path& root) { unavailable(root); }
DicomSeriesInfo dicom_series_in(const std::filesystem::path& folder) { unavailable(folder); }
Grid read_dicom_grid(const DicomSeriesInfo& series) { unavailable(series.folder); }
Volume read_dicom_series(const DicomSeriesInfo& series, const DicomReadOptions&) { unavailable(series.folder); }
Volume read_dicom_series(const std::filesystem::path& folder, const DicomReadOptions&) { unavailable(folder); }
ImageInfo dicom_image_info(const std::filesystem::path& folder) { unavailable(folder); }
void write_dicom_seg(const std::filesystem::path& path, const Volume&, const DicomSeriesInfo&, const DicomSegOptions&) {
  unavailable(path);
}
Volume read_dicom_seg(const std::filesystem::path& path, const DicomSeriesInfo&, const std::vector<int>&) {
  unavailable(path);
}
std::vector<std::filesystem::path> write_dicom_series(const std::filesystem::path& folder, const Volume&,
                                                      const DicomSeriesHeader&) {
  unavailable(folder);
}

}  // namespace teachformer::io
