// HECKTOR bounding-box CSV (PatientID,x1,x2,y1,y2,z1,z2): the lenient reader (problems per row) and the strict one.
#include "fuzz_support.hpp"
#include "teachformer/data/bbox_csv.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace teachformer;
  const auto path = fuzz::write_input("bbox.csv", data, size);
  fuzz::expect_success_or_error("read_bounding_box_csv", [&] { data::read_bounding_box_csv(path); });
  fuzz::expect_success_or_error("read_bounding_boxes", [&] { data::read_bounding_boxes(path); });
  return 0;
}
