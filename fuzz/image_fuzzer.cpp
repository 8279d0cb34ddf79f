// Image files through the io layer (ITK underneath), read as header, image and label map. The input's first bytes
// choose the format, so one corpus covers all of them: "NRRD" starts a NRRD file (.nrrd), the gzip magic a
// .nii.gz, a NIfTI-1/2 header size (348 or 540, either byte order) a .nii, and anything else is read as a
// MetaImage (.mha), whose header is text.
#include <cstring>

#include "fuzz_support.hpp"
#include "teachformer/io/image_io.hpp"

namespace {

void read_all_ways(const std::filesystem::path& path) {
  using namespace teachformer;
  fuzz::expect_success_or_error("read_image_info", [&] { io::read_image_info(path); });
  fuzz::expect_success_or_error("read_image", [&] { io::read_image(path); });
  fuzz::expect_success_or_error("read_label", [&] { io::read_label(path); });
}

bool nifti_size_field(const uint8_t* data, size_t size) {
  if (size < 4) return false;
  const uint32_t le = uint32_t(data[0]) | uint32_t(data[1]) << 8 | uint32_t(data[2]) << 16 | uint32_t(data[3]) << 24;
  const uint32_t be = uint32_t(data[3]) | uint32_t(data[2]) << 8 | uint32_t(data[1]) << 16 | uint32_t(data[0]) << 24;
  return le == 348 || le == 540 || be == 348 || be == 540;
}

const char* name_for(const uint8_t* data, size_t size) {
  if (size >= 4 && std::memcmp(data, "NRRD", 4) == 0) return "input.nrrd";
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) return "input.nii.gz";
  if (nifti_size_field(data, size)) return "input.nii";
  return "input.mha";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace teachformer;
  read_all_ways(fuzz::write_input(name_for(data, size), data, size));
  return 0;
}
