// Built when oneDNN's headers were not found: the low-precision paths say so instead of running.
#include "models/detail/low_precision_conv.hpp"

#include "teachformer/core/error.hpp"

namespace teachformer::models::detail {

struct LowPrecisionConv3d::Impl {};

LowPrecisionConv3d::LowPrecisionConv3d(const torch::Tensor&, std::vector<int64_t>, std::vector<int64_t>, Precision,
                                       float, std::optional<float>) {
  TF_THROW(InvalidArgument, "this build has no oneDNN (libdnnl-dev was not found when it was configured): bf16 and int8 "
           "inference are unavailable; use --precision fp32");
}
LowPrecisionConv3d::~LowPrecisionConv3d() = default;
torch::Tensor LowPrecisionConv3d::forward(const torch::Tensor&) { return {}; }
Precision LowPrecisionConv3d::precision() const { return Precision::kFloat32; }
bool onednn_available() { return false; }
std::string onednn_isa() { return ""; }

}  // namespace teachformer::models::detail
