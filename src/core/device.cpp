#include "teachformer/core/device.hpp"

#include <torch/cuda.h>

#include "teachformer/core/error.hpp"

namespace teachformer {

bool cuda_available() { return torch::cuda::is_available(); }

c10::Device parse_device(const std::string& name) {
  if (name == "auto") return cuda_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    TF_CHECK(cuda_available(), InvalidArgument, "--device ", name,
             ": this build of LibTorch has no usable CUDA device (use --device cpu)");
    try {
      return c10::Device(name);
    } catch (const std::exception&) {
      TF_THROW(InvalidArgument, "--device ", name, ": expected cpu, cuda, cuda:N or auto");
    }
  }
  TF_THROW(InvalidArgument, "--device ", name, ": expected cpu, cuda, cuda:N or auto");
}

}  // namespace teachformer
