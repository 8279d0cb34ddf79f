// The one place that knows about devices: parsing --device and checking availability.
#pragma once
#include <string>

#include <c10/core/Device.h>

namespace teachformer {

/// Parses "cpu", "cuda", "cuda:N" or "auto" (CUDA when available, else CPU). Throws InvalidArgument for an
/// unknown name or when CUDA is requested but this LibTorch build has no usable GPU.
c10::Device parse_device(const std::string& name);
/// True when LibTorch was built with CUDA and a GPU is visible.
bool cuda_available();

}  // namespace teachformer
