// Per-channel intensity normalisation, chosen by channel name (case-insensitive):
//   CT                                   -> window: clip to [lower, upper] and map linearly to [-1, 1];
//                                           fixed [-1024, 1024] HU, or the dataset fingerprint's foreground
//                                           percentiles 0.5 / 99.5 (see data/preprocessed.hpp)
//   PET, PT, SUV                          -> zscore per case (SUV values vary between scanners and patients)
//   T2W, T2, T1, T1W, T1C, T1CE, T1GD, FLAIR, MR, MRI, HBV, DWI, T2F, T1N, PD
//                                        -> zscore per case (MR intensities have no absolute scale)
//   ADC                                  -> scale: (x - 1500) / 1500 with ADC in 10^-6 mm^2/s, i.e. [0, 3000]
//                                           maps to [-1, 1]; a fixed global scaling because ADC is quantitative
// Any other name is an error unless the caller names a scheme for it (`--norm NAME=SCHEME`).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

namespace teachformer::transforms {

/// Fixed CT window (HU) of the default CT scheme.
inline constexpr double kCtWindowLower = -1024.0;
/// Upper end of the fixed CT window (HU).
inline constexpr double kCtWindowUpper = 1024.0;
/// ADC scaling: x' = (x - kAdcOffset) / kAdcDivisor, ADC in 10^-6 mm^2/s.
inline constexpr double kAdcOffset = 1500.0;
/// See kAdcOffset.
inline constexpr double kAdcDivisor = 1500.0;

/// The normalisation schemes.
enum class NormScheme {
  Window,  ///< clip to [lower, upper], then map linearly onto [-1, 1]
  ZScore,  ///< per case: (x - mean) / std over all voxels of the preprocessed grid (std < 1e-8: x - mean)
  Scale,   ///< fixed: (x - offset) / divisor, no clipping
  None,    ///< unchanged
};

/// "window", "zscore", "scale" or "none".
std::string to_string(NormScheme scheme);

/// A scheme with its parameters.
struct Normalization {
  /// The scheme. Default zscore.
  NormScheme scheme = NormScheme::ZScore;
  /// Window: lower clip bound (intensity units of the channel, e.g. HU).
  double lower = 0.0;
  /// Window: upper clip bound; must exceed `lower`.
  double upper = 0.0;
  /// Scale: subtracted first.
  double offset = 0.0;
  /// Scale: divides after subtracting `offset`; must be non-zero.
  double divisor = 1.0;
  /// Where the parameters come from: "default", "fixed", "fingerprint" or "user" (provenance only).
  std::string source = "default";

  /// Window scheme.
  static Normalization window(double lower, double upper, std::string source);
  /// Per-case z-score.
  static Normalization zscore(std::string source = "default");
  /// Fixed scaling.
  static Normalization scale(double offset, double divisor, std::string source);
  /// Identity.
  static Normalization none(std::string source = "user");

  /// Throws ConfigError naming `context` when the parameters are invalid (window lower >= upper, non-finite
  /// bounds, zero divisor).
  void validate(const std::string& context) const;
  /// {"scheme": "window", "lower": .., "upper": .., "source": ..}, {"scheme": "zscore", "source": ..},
  /// {"scheme": "scale", "offset": .., "divisor": .., "source": ..} or {"scheme": "none", "source": ..}.
  nlohmann::json to_json() const;
  /// Strict inverse of to_json: keys that do not belong to the scheme are errors.
  static Normalization from_json(const nlohmann::json& j, const std::string& context);
  /// "window [-1024, 1024]", "zscore", ...
  std::string describe() const;
};

/// True when `name` denotes CT (case-insensitive "ct").
bool is_ct_channel(const std::string& name);

/// The default scheme for a channel name (see the table at the top); CT gets the fixed window. Throws
/// ConfigError for an unknown name, listing the known names and how to name a scheme.
Normalization default_normalization(const std::string& channel_name);

/// Parses a command-line scheme: "zscore", "none", "window:LOWER,UPPER" or "scale:OFFSET,DIVISOR" (source
/// "user"). InvalidArgument naming `context` otherwise.
Normalization parse_normalization(const std::string& spec, const std::string& context);

/// Applies `n` to one channel (any shape, any real dtype); returns float32 of the same shape.
torch::Tensor normalize(const torch::Tensor& channel, const Normalization& n);

}  // namespace teachformer::transforms
