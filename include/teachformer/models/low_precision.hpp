// Inference in a low precision: bfloat16 or int8 arithmetic for the layers where the CPU has fast instructions for
// it (AVX512-BF16 / AMX for bfloat16, AVX512-VNNI / AVX-VNNI / AMX for int8), through oneDNN.
//   fp32  the default: every layer in float32.
//   bf16  no calibration needed; the model's 3^3 and k2 s2 convolutions in bfloat16 (products summed in float32).
//   int8  post-training static quantization: the same convolutions with s8 weights (one scale per output channel)
//         and s8 activations whose one scale per layer comes from calibration (the largest |x| the layer saw on
//         training patches, `teachformer quantize`). Norms, the transformer and the output block stay float32.
// Only models that implement LowPrecisionModel (TeachFormer-S) have these paths.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace teachformer::models {

class SegmentationModelImpl;

/// Arithmetic precision of a model's CPU inference.
enum class Precision { kFloat32, kBFloat16, kInt8 };

/// "fp32" (also "float32", "32"), "bf16" (also "bfloat16"), "int8"; InvalidArgument otherwise, listing them.
Precision parse_precision(const std::string& text);
/// "fp32", "bf16" or "int8".
std::string precision_name(Precision precision);

/// Calibration of an int8 model: per quantized layer (its conv's parameter prefix, e.g. "encoder.1.0.conv"), the
/// largest |input| seen on the calibration patches.
struct Int8Calibration {
  std::map<std::string, float> input_absmax;
  /// The smallest input each layer saw, where recorded (calibrations written before it was have none): such a layer
  /// takes asymmetric u8 activations over [min(input_min, 0), input_absmax] (a zero point), else symmetric s8.
  std::map<std::string, float> input_min;
};
nlohmann::json to_json(const Int8Calibration& calibration);
/// Strict: unknown keys and non-positive maxima are FormatErrors naming `context`.
Int8Calibration int8_calibration_from_json(const nlohmann::json& json, const std::string& context);

/// A model with low-precision inference paths.
class LowPrecisionModel {
 public:
  virtual ~LowPrecisionModel() = default;
  /// Starts recording the largest |input| of every layer that int8 would quantize (forwards in no-grad mode).
  virtual void start_calibration() = 0;
  /// Stops recording and returns what was seen; InvalidArgument when no forward ran since start_calibration().
  virtual Int8Calibration finish_calibration() = 0;
  /// Switches the model's CPU inference to `precision`. int8 needs `calibration` covering every quantized layer
  /// (FormatError naming the first missing one); fp32 drops the low-precision kernels. InvalidArgument when this build
  /// has no oneDNN or the CPU has no kernel for the precision. Weights are read now: load them first.
  virtual void set_precision(Precision precision, const Int8Calibration* calibration = nullptr) = 0;
  /// The current precision (fp32 after construction).
  virtual Precision precision() const = 0;
};

/// The model's low-precision interface, or nullptr when it has only float32.
LowPrecisionModel* low_precision_model(SegmentationModelImpl& model);

/// What this build and CPU offer for low precision (for `doctor` and the bench).
struct LowPrecisionSupport {
  /// The build links oneDNN (libdnnl).
  bool onednn = false;
  /// The instruction set oneDNN dispatches to here, e.g. "avx512_core_bf16" ("" without oneDNN).
  std::string onednn_isa;
  /// CPU flags (Linux /proc/cpuinfo).
  bool avx512_vnni = false, avx_vnni = false, avx512_bf16 = false, amx_int8 = false, amx_bf16 = false;
  /// True when int8 / bf16 dot-product instructions exist, i.e. the path is expected to beat float32.
  bool int8_fast() const { return avx512_vnni || avx_vnni || amx_int8; }
  bool bf16_fast() const { return avx512_bf16 || amx_bf16; }
  /// True when oneDNN has bf16 kernels here at all: it needs AVX-512 (avx512_core or above; on AVX2 it has none).
  bool bf16_kernels() const { return onednn && onednn_isa.rfind("avx512_core", 0) == 0; }
  /// Why bf16 cannot run here ("" when it can).
  std::string bf16_unavailable() const;
};
LowPrecisionSupport low_precision_support();
/// `doctor`'s lines: the CPU's VNNI / BF16 / AMX flags, oneDNN's instruction set, and what the int8 and bf16 paths
/// will use (or why they are unavailable or expected no faster than fp32).
std::vector<std::string> describe_low_precision(const LowPrecisionSupport& support);

}  // namespace teachformer::models
