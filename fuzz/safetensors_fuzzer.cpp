// safetensors files (model weights, preprocessed cases, the teacher cache): header only, then with the data.
// An input that starts with the gzip magic is read as a ".safetensors.gz" file, as the teacher cache is.
#include "fuzz_support.hpp"
#include "teachformer/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace teachformer;
  const bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  const auto path = fuzz::write_input(gzip ? "input.safetensors.gz" : "input.safetensors", data, size);
  fuzz::expect_success_or_error("read_safetensors_header", [&] { io::read_safetensors_header(path); });
  fuzz::expect_success_or_error("read_safetensors", [&] { io::read_safetensors(path); });
  return 0;
}
