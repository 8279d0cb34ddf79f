// plan.json, the preprocessing plan of a dataset (channels, normalisation, spacing, bbox crop).
#include "fuzz_support.hpp"
#include "teachformer/data/plan.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace teachformer;
  const auto path = fuzz::write_input("plan.json", data, size);
  fuzz::expect_success_or_error("read_plan", [&] {
    const auto plan = data::read_plan(path);
    plan.digest();
  });
  return 0;
}
