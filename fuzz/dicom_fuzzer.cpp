// One DICOM file in a folder, read as a series through the io layer (DCMTK underneath): the folder scan, the header
// of every slice, the pixel data and, for PET, the SUV factor.
#include "fuzz_support.hpp"
#include "teachformer/io/dicom.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace teachformer;
  const auto path = fuzz::write_input("series/slice.dcm", data, size);
  const auto folder = path.parent_path();
  fuzz::expect_success_or_error("scan_dicom", [&] { io::scan_dicom(folder); });
  fuzz::expect_success_or_error("dicom_image_info", [&] { io::dicom_image_info(folder); });
  fuzz::expect_success_or_error("read_dicom_series", [&] { io::read_dicom_series(folder); });
  return 0;
}
