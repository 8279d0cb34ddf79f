// JSON options and records read through core/json (read_json, json_from_string_or_file, JsonReader): every
// from_json of the layers below the models gets the same document, so each sees valid JSON of every shape.
#include <string>

#include "fuzz_support.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/data/fingerprint.hpp"
#include "teachformer/data/splits.hpp"
#include "teachformer/transforms/augment.hpp"
#include "teachformer/transforms/case_geometry.hpp"
#include "teachformer/transforms/normalize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace teachformer;
  const auto path = fuzz::write_input("options.json", data, size);
  fuzz::expect_success_or_error("json_from_string_or_file", [&] {
    const std::string text(reinterpret_cast<const char*>(data), size);
    if (text.find('\0') == std::string::npos && !text.empty()) json_from_string_or_file(text);
  });
  Json j;
  try {
    j = read_json(path);
  } catch (const Error&) {
    fuzz::expect_success_or_error("read_json", [&] { read_json(path); });
    return 0;
  }
  fuzz::expect_success_or_error("augment_options_from_json", [&] { transforms::augment_options_from_json(j); });
  fuzz::expect_success_or_error("Normalization::from_json", [&] { transforms::Normalization::from_json(j, "fuzz"); });
  fuzz::expect_success_or_error("grid_from_json", [&] { transforms::grid_from_json(j, "fuzz"); });
  fuzz::expect_success_or_error("box_from_json", [&] { transforms::box_from_json(j, "fuzz"); });
  fuzz::expect_success_or_error("CaseGeometry::from_json", [&] { transforms::CaseGeometry::from_json(j, "fuzz"); });
  fuzz::expect_success_or_error("IntensitySummary::from_json", [&] { data::IntensitySummary::from_json(j, "fuzz"); });
  fuzz::expect_success_or_error("CaseStats::from_json", [&] { data::CaseStats::from_json(j, "fuzz"); });
  fuzz::expect_success_or_error("read_splits", [&] { data::read_splits(path); });
  return 0;
}
