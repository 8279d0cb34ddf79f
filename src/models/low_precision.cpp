#include "teachformer/models/low_precision.hpp"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "models/detail/low_precision_conv.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/models/seg_model.hpp"

namespace teachformer::models {

Precision parse_precision(const std::string& text) {
  if (text == "fp32" || text == "float32" || text == "32") return Precision::kFloat32;
  if (text == "bf16" || text == "bfloat16") return Precision::kBFloat16;
  if (text == "int8") return Precision::kInt8;
  TF_THROW(InvalidArgument, "unknown precision '", text, "'; valid: fp32, bf16, int8");
}

std::string precision_name(Precision precision) {
  switch (precision) {
    case Precision::kFloat32: return "fp32";
    case Precision::kBFloat16: return "bf16";
    case Precision::kInt8: return "int8";
  }
  return "fp32";
}

nlohmann::json to_json(const Int8Calibration& calibration) {
  nlohmann::json layers = nlohmann::json::object();
  for (const auto& [name, absmax] : calibration.input_absmax) {
    layers[name] = {{"input_absmax", absmax}};
    const auto min = calibration.input_min.find(name);
    if (min != calibration.input_min.end()) layers[name]["input_min"] = min->second;
  }
  return layers;
}

Int8Calibration int8_calibration_from_json(const nlohmann::json& json, const std::string& context) {
  TF_CHECK(json.is_object() && !json.empty(), FormatError, context,
           ": expected an object {layer: {\"input_absmax\": x}} with at least one layer");
  Int8Calibration calibration;
  for (const auto& [name, entry] : json.items()) {
    const bool has_min = entry.is_object() && entry.contains("input_min");
    TF_CHECK(entry.is_object() && entry.size() == 1 + (has_min ? 1 : 0) && entry.contains("input_absmax") &&
                 entry["input_absmax"].is_number() && (!has_min || entry["input_min"].is_number()),
             FormatError, context, ": layer '", name, "' must be {\"input_absmax\": number, \"input_min\": number ",
             "(optional)}, got ", entry.dump());
    const double v = entry["input_absmax"].get<double>();
    TF_CHECK(std::isfinite(v) && v > 0.0 && v < 3e38, FormatError, context, ": layer '", name,
             "' has input_absmax ", v, "; expected a finite number > 0");
    calibration.input_absmax[name] = float(v);
    if (has_min) {
      const double m = entry["input_min"].get<double>();
      TF_CHECK(std::isfinite(m) && m >= -v && m <= v, FormatError, context, ": layer '", name, "' has input_min ",
               m, "; expected a finite number in [-input_absmax, input_absmax] ([", -v, ", ", v, "])");
      calibration.input_min[name] = float(m);
    }
  }
  return calibration;
}

LowPrecisionModel* low_precision_model(SegmentationModelImpl& model) {
  return dynamic_cast<LowPrecisionModel*>(&model);
}

LowPrecisionSupport low_precision_support() {
  LowPrecisionSupport s;
  s.onednn = detail::onednn_available();
  s.onednn_isa = detail::onednn_isa();
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') == std::string::npos ? line.size() : line.find(':') + 1));
    std::set<std::string> flags;
    for (std::string w; words >> w;) flags.insert(w);
    s.avx512_vnni = flags.count("avx512_vnni") > 0;
    s.avx_vnni = flags.count("avx_vnni") > 0;
    s.avx512_bf16 = flags.count("avx512_bf16") > 0;
    s.amx_int8 = flags.count("amx_int8") > 0;
    s.amx_bf16 = flags.count("amx_bf16") > 0;
    break;
  }
  return s;
}

std::string LowPrecisionSupport::bf16_unavailable() const {
  if (!onednn) return "this build has no oneDNN (install libdnnl-dev, rebuild)";
  if (!bf16_kernels())
    return "oneDNN has no bf16 kernels on this CPU (it dispatches to " + onednn_isa + "; bf16 needs AVX-512)";
  return "";
}

std::vector<std::string> describe_low_precision(const LowPrecisionSupport& s) {
  auto yn = [](bool b) { return b ? "yes" : "no"; };
  std::vector<std::string> lines;
  lines.push_back(std::string("CPU: AVX512-VNNI ") + yn(s.avx512_vnni) + ", AVX-VNNI " + yn(s.avx_vnni) +
                  ", AVX512-BF16 " + yn(s.avx512_bf16) + ", AMX-INT8 " + yn(s.amx_int8) + ", AMX-BF16 " +
                  yn(s.amx_bf16));
  if (!s.onednn) {
    lines.push_back("bf16 and int8 inference unavailable: this build has no oneDNN (install libdnnl-dev, rebuild)");
    return lines;
  }
  const std::string int8 = s.amx_int8 ? "AMX tiles" : s.avx512_vnni ? "AVX512-VNNI dot products"
                                                    : s.avx_vnni      ? "AVX-VNNI dot products"
                                                                      : "no int8 dot-product instructions: expect no "
                                                                        "gain over fp32";
  const std::string bf16 = s.amx_bf16        ? "AMX tiles"
                           : s.avx512_bf16   ? "AVX512-BF16 dot products"
                           : s.bf16_kernels() ? "no bf16 instructions: oneDNN converts to fp32 (slower than fp32)"
                                              : "unavailable, " + s.bf16_unavailable();
  lines.push_back("oneDNN " + s.onednn_isa + "; --precision int8 (teachformer quantize): " + int8 +
                  "; --precision bf16: " + bf16);
  return lines;
}

}  // namespace teachformer::models
