// Mixed precision on CUDA: an autocast scope (LibTorch 1.13 and 2.x spell it differently) and float16 dynamic loss
// scaling, as torch.cuda.amp does it.
#pragma once
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace teachformer::train::detail {

/// The low-precision type of "bf16" / "16"; Float for "32". InvalidArgument for anything else, or for a low
/// precision on a device other than CUDA.
c10::ScalarType autocast_type(const std::string& precision, const c10::Device& device);

/// Autocast on for the scope when `type` is not Float (CUDA only).
class AutocastScope {
 public:
  explicit AutocastScope(c10::ScalarType type);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  bool previous_enabled_ = false;
  c10::ScalarType previous_type_ = c10::kHalf;
};

}  // namespace teachformer::train::detail
