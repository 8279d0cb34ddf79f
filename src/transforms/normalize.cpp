#include "teachformer/transforms/normalize.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::transforms {
namespace {

std::string lower_trimmed(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t");
  std::string out = b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return out;
}

const std::vector<std::string>& pet_names() {
  static const std::vector<std::string> v{"pet", "pt", "suv"};
  return v;
}
const std::vector<std::string>& mr_names() {
  static const std::vector<std::string> v{"t2w", "t2", "t1", "t1w", "t1c", "t1ce", "t1gd", "flair", "mr",
                                          "mri", "hbv", "dwi", "t2f", "t1n", "pd"};
  return v;
}
bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

double parse_number(const std::string& text, const std::string& context, const std::string& spec) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  TF_THROW(InvalidArgument, context, ": '", spec, "' has a bad number '", text,
           "'; expected zscore, none, window:LOWER,UPPER or scale:OFFSET,DIVISOR");
}

}  // namespace

std::string to_string(NormScheme scheme) {
  switch (scheme) {
    case NormScheme::Window: return "window";
    case NormScheme::ZScore: return "zscore";
    case NormScheme::Scale: return "scale";
    case NormScheme::None: return "none";
  }
  return "unknown";
}

Normalization Normalization::window(double lower, double upper, std::string source) {
  Normalization n;
  n.scheme = NormScheme::Window;
  n.lower = lower;
  n.upper = upper;
  n.source = std::move(source);
  return n;
}

Normalization Normalization::zscore(std::string source) {
  Normalization n;
  n.scheme = NormScheme::ZScore;
  n.source = std::move(source);
  return n;
}

Normalization Normalization::scale(double offset, double divisor, std::string source) {
  Normalization n;
  n.scheme = NormScheme::Scale;
  n.offset = offset;
  n.divisor = divisor;
  n.source = std::move(source);
  return n;
}

Normalization Normalization::none(std::string source) {
  Normalization n;
  n.scheme = NormScheme::None;
  n.source = std::move(source);
  return n;
}

void Normalization::validate(const std::string& context) const {
  if (scheme == NormScheme::Window) {
    TF_CHECK(std::isfinite(lower) && std::isfinite(upper) && upper > lower, ConfigError, context,
             ": window needs finite bounds with upper > lower, got [", lower, ", ", upper, "]");
  }
  if (scheme == NormScheme::Scale) {
    TF_CHECK(std::isfinite(offset) && std::isfinite(divisor) && divisor != 0.0, ConfigError, context,
             ": scale needs a finite offset and a non-zero divisor, got offset ", offset, " divisor ", divisor);
  }
}

nlohmann::json Normalization::to_json() const {
  nlohmann::json j{{"scheme", to_string(scheme)}, {"source", source}};
  if (scheme == NormScheme::Window) {
    j["lower"] = lower;
    j["upper"] = upper;
  } else if (scheme == NormScheme::Scale) {
    j["offset"] = offset;
    j["divisor"] = divisor;
  }
  return j;
}

Normalization Normalization::from_json(const nlohmann::json& j, const std::string& context) {
  Normalization n;
  std::string scheme;
  JsonReader r(j, context);
  r.require("scheme", scheme).get("source", n.source);
  if (scheme == "window") {
    n.scheme = NormScheme::Window;
    r.require("lower", n.lower).require("upper", n.upper);
  } else if (scheme == "zscore") {
    n.scheme = NormScheme::ZScore;
  } else if (scheme == "scale") {
    n.scheme = NormScheme::Scale;
    r.require("offset", n.offset).require("divisor", n.divisor);
  } else if (scheme == "none") {
    n.scheme = NormScheme::None;
  } else {
    TF_THROW(ConfigError, context, ": unknown scheme '", scheme, "'; expected window, zscore, scale or none");
  }
  r.finish();
  n.validate(context);
  return n;
}

std::string Normalization::describe() const {
  std::ostringstream os;
  os << to_string(scheme);
  if (scheme == NormScheme::Window) os << " [" << lower << ", " << upper << "] -> [-1, 1]";
  if (scheme == NormScheme::Scale) os << " (x - " << offset << ") / " << divisor;
  os << " (" << source << ")";
  return os.str();
}

bool is_ct_channel(const std::string& name) { return lower_trimmed(name) == "ct"; }

Normalization default_normalization(const std::string& channel_name) {
  const std::string n = lower_trimmed(channel_name);
  if (n == "ct") return Normalization::window(kCtWindowLower, kCtWindowUpper, "fixed");
  if (contains(pet_names(), n) || contains(mr_names(), n)) return Normalization::zscore("default");
  if (n == "adc") return Normalization::scale(kAdcOffset, kAdcDivisor, "default");
  std::vector<std::string> known{"ct", "adc"};
  known.insert(known.end(), pet_names().begin(), pet_names().end());
  known.insert(known.end(), mr_names().begin(), mr_names().end());
  TF_THROW(ConfigError, "channel '", channel_name, "': no normalisation scheme is known for this name (known: ", known,
           "); name one, e.g. --norm '", channel_name, "=zscore' (or window:LOWER,UPPER, scale:OFFSET,DIVISOR, none)");
}

Normalization parse_normalization(const std::string& spec, const std::string& context) {
  const std::string s = lower_trimmed(spec);
  if (s == "zscore") return Normalization::zscore("user");
  if (s == "none") return Normalization::none("user");
  const auto colon = s.find(':');
  const std::string head = s.substr(0, colon);
  if (colon != std::string::npos && (head == "window" || head == "scale")) {
    const std::string args = s.substr(colon + 1);
    const auto comma = args.find(',');
    TF_CHECK(comma != std::string::npos, InvalidArgument, context, ": '", spec, "' needs two numbers, e.g. ", head,
             head == "window" ? ":-250,250" : ":1500,1500");
    const double a = parse_number(args.substr(0, comma), context, spec);
    const double b = parse_number(args.substr(comma + 1), context, spec);
    Normalization n = head == "window" ? Normalization::window(a, b, "user") : Normalization::scale(a, b, "user");
    try {
      n.validate(context);
    } catch (const ConfigError& e) {
      throw InvalidArgument(e.what());
    }
    return n;
  }
  TF_THROW(InvalidArgument, context, ": unknown scheme '", spec,
           "'; expected zscore, none, window:LOWER,UPPER or scale:OFFSET,DIVISOR");
}

torch::Tensor normalize(const torch::Tensor& channel, const Normalization& n) {
  TF_CHECK(channel.defined(), InvalidArgument, "normalize: undefined tensor");
  n.validate("normalize");
  const auto x = channel.detach().to(torch::kFloat);
  switch (n.scheme) {
    case NormScheme::Window: {
      const double half = 0.5 * (n.upper - n.lower), centre = 0.5 * (n.upper + n.lower);
      return (x.clamp(n.lower, n.upper) - centre) / half;
    }
    case NormScheme::ZScore: {
      // Two passes with double accumulation: float sums over millions of voxels lose digits.
      const auto xc = x.contiguous();
      const float* p = xc.data_ptr<float>();
      const int64_t n = xc.numel();
      double sum = 0.0;
      for (int64_t i = 0; i < n; ++i) sum += p[i];
      const double mean = n > 0 ? sum / double(n) : 0.0;
      double sq = 0.0;
      for (int64_t i = 0; i < n; ++i) sq += (p[i] - mean) * (p[i] - mean);
      const double std = n > 1 ? std::sqrt(sq / double(n)) : 0.0;
      const double scale = std > 1e-8 ? 1.0 / std : 1.0;
      auto out = torch::empty_like(xc);
      float* o = out.data_ptr<float>();
      for (int64_t i = 0; i < n; ++i) o[i] = float((p[i] - mean) * scale);
      return out;
    }
    case NormScheme::Scale: return ((x.to(torch::kDouble) - n.offset) / n.divisor).to(torch::kFloat);
    case NormScheme::None: return x.clone();
  }
  TF_THROW(InternalError, "normalize: unhandled scheme");
}

}  // namespace teachformer::transforms
