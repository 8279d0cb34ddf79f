#include "train/detail/precision.hpp"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "teachformer/core/error.hpp"

namespace teachformer::train::detail {
namespace {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool enabled() { return at::autocast::is_autocast_enabled(at::kCUDA); }
void set_enabled(bool on) { at::autocast::set_autocast_enabled(at::kCUDA, on); }
c10::ScalarType get_type() { return at::autocast::get_autocast_dtype(at::kCUDA); }
void set_type(c10::ScalarType t) { at::autocast::set_autocast_dtype(at::kCUDA, t); }
#else
bool enabled() { return at::autocast::is_enabled(); }
void set_enabled(bool on) { at::autocast::set_enabled(on); }
c10::ScalarType get_type() { return at::autocast::get_autocast_gpu_dtype(); }
void set_type(c10::ScalarType t) { at::autocast::set_autocast_gpu_dtype(t); }
#endif

}  // namespace

c10::ScalarType autocast_type(const std::string& precision, const c10::Device& device) {
  TF_CHECK(precision == "32" || precision == "bf16" || precision == "16", InvalidArgument,
           "precision must be 32, bf16 or 16, got '", precision, "'");
  if (precision == "32") return c10::kFloat;
  TF_CHECK(device.is_cuda(), InvalidArgument, "precision ", precision,
           " is CUDA autocast: train on a GPU (--device cuda) or use --precision 32 on ", device.str());
  return precision == "bf16" ? c10::kBFloat16 : c10::kHalf;
}

AutocastScope::AutocastScope(c10::ScalarType type) {
  if (type == c10::kFloat) return;
  active_ = true;
  previous_enabled_ = enabled();
  previous_type_ = get_type();
  set_type(type);
  set_enabled(true);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_enabled(previous_enabled_);
  set_type(previous_type_);
}

}  // namespace teachformer::train::detail
