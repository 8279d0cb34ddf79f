// Distillation strategies from JSON (a preset name or a file given to --strategy): distill::strategy_from_json, then
// what training asks of a strategy (its weights at every step, its stage boundaries, its terms) for a few run
// lengths, so that a strategy that parses cannot make a run divide by zero or index past its stages later.
#include "fuzz_support.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/distill/strategy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace teachformer;
  const auto path = fuzz::write_input("strategy.json", data, size);
  Json j;
  try {
    j = read_json(path);
  } catch (const Error&) {
    return 0;  // read_json itself is the options target's
  }
  fuzz::expect_success_or_error("strategy_from_json", [&] {
    const distill::Strategy s = distill::strategy_from_json(j);
    (void)distill::to_json(s);
    (void)s.needs_teachers();
    for (const int64_t epochs : {1, 3, 100}) {
      (void)s.boundaries(epochs);
      for (int64_t epoch = 0; epoch < epochs; epoch += 1 + epochs / 7) (void)s.stage_at(epoch, epochs);
      for (int64_t step = 0; step < epochs * 4; step += 1 + epochs / 5) (void)s.weights_at(step, epochs, 4);
    }
  });
  return 0;
}
