#include "teachformer/data/fingerprint.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/transforms/lesions.hpp"

namespace teachformer::data {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Percentile q in [0, 1] with numpy's linear interpolation; reorders `v`.
double percentile(std::vector<float>& v, double q) {
  const double pos = q * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos));
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(lo), v.end());
  const double a = v[lo];
  if (lo + 1 >= v.size()) return a;
  const double b = *std::min_element(v.begin() + std::ptrdiff_t(lo) + 1, v.end());
  return a + (pos - double(lo)) * (b - a);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// Up to kFingerprintSamples values drawn with replacement by a generator whose output the C++ standard fixes
// (mt19937_64), mapped to indices by multiply-shift rather than a library distribution.
std::vector<float> sample(const std::vector<float>& values, uint64_t seed) {
  if (int64_t(values.size()) <= kFingerprintSamples) return values;
  std::mt19937_64 gen(seed);
  std::vector<float> out(static_cast<size_t>(kFingerprintSamples));
  const unsigned __int128 n = values.size();
  for (auto& x : out) x = values[size_t((unsigned __int128)(gen()) * n >> 64)];
  return out;
}

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
// null stands for NaN (JSON has no NaN); anything else but a number is an error naming the key.
double read_number(const nlohmann::json& j, const std::string& context, const char* key) {
  if (j.is_null()) return kNaN;
  TF_CHECK(j.is_number(), ConfigError, context, ": key '", key, "' must be a number or null, got ", j.dump());
  return j.get<double>();
}

}  // namespace

IntensitySummary summarize(std::vector<float> values) {
  IntensitySummary s;
  s.count = int64_t(values.size());
  if (values.empty()) {
    s.mean = s.std = s.min = s.max = s.p00_5 = s.p99_5 = kNaN;
    return s;
  }
  double sum = 0.0, sq = 0.0;
  float lo = values[0], hi = values[0];
  for (float v : values) {
    sum += v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  s.mean = sum / double(values.size());
  for (float v : values) sq += (double(v) - s.mean) * (double(v) - s.mean);
  s.std = std::sqrt(sq / double(values.size()));
  s.min = lo;
  s.max = hi;
  s.p00_5 = percentile(values, 0.005);
  s.p99_5 = percentile(values, 0.995);  // the selection above left the upper part after the lower rank
  return s;
}

nlohmann::json IntensitySummary::to_json() const {
  return {{"count", count},          {"mean", number_or_null(mean)},   {"std", number_or_null(std)},
          {"min", number_or_null(min)}, {"max", number_or_null(max)},     {"p00_5", number_or_null(p00_5)},
          {"p99_5", number_or_null(p99_5)}};
}

IntensitySummary IntensitySummary::from_json(const nlohmann::json& j, const std::string& context) {
  IntensitySummary s;
  nlohmann::json mean, std, min, max, p0, p1;
  JsonReader r(j, context);
  r.require("count", s.count).require("mean", mean).require("std", std).require("min", min).require("max", max);
  r.require("p00_5", p0).require("p99_5", p1);
  r.finish();
  s.mean = read_number(mean, context, "mean");
  s.std = read_number(std, context, "std");
  s.min = read_number(min, context, "min");
  s.max = read_number(max, context, "max");
  s.p00_5 = read_number(p0, context, "p00_5");
  s.p99_5 = read_number(p1, context, "p99_5");
  return s;
}

nlohmann::json CaseStats::to_json() const {
  nlohmann::json ch = nlohmann::json::array();
  for (const auto& c : channels)
    ch.push_back({{"foreground", c.foreground.to_json()},
                  {"all", c.all.to_json()},
                  {"foreground_sample", c.foreground_sample},
                  {"all_sample", c.all_sample}});
  nlohmann::json voxels = nlohmann::json::object();
  for (const auto& [v, n] : label_voxels) voxels[std::to_string(v)] = n;
  return {{"id", id},
          {"patient_id", patient_id},
          {"shape", shape},
          {"spacing", spacing},
          {"original_shape", original_shape},
          {"original_spacing", original_spacing},
          {"labelled", labelled},
          {"label_voxels", voxels},
          {"lesions", lesions},
          {"channels", ch}};
}

CaseStats CaseStats::from_json(const nlohmann::json& j, const std::string& context) {
  CaseStats s;
  nlohmann::json voxels, channels;
  JsonReader r(j, context);
  r.require("id", s.id).require("patient_id", s.patient_id).require("shape", s.shape).require("spacing", s.spacing);
  r.require("original_shape", s.original_shape).require("original_spacing", s.original_spacing);
  r.require("labelled", s.labelled).require("label_voxels", voxels).require("lesions", s.lesions);
  r.require("channels", channels);
  r.finish();
  TF_CHECK(voxels.is_object() && channels.is_array(), ConfigError, context,
           ": label_voxels must be an object and channels a list");
  for (auto it = voxels.begin(); it != voxels.end(); ++it) {
    const std::string& key = it.key();
    const bool label = !key.empty() && key.size() <= 3 && key.find_first_not_of("0123456789") == std::string::npos &&
                       std::stoi(key) <= 255;
    TF_CHECK(label && it.value().is_number_integer(), ConfigError, context, ": label_voxels must map label values (0 to ",
             "255) to voxel counts, got \"", key, "\": ", it.value().dump());
    s.label_voxels[std::stoi(key)] = it.value().get<int64_t>();
  }
  for (const auto& c : channels) {
    ChannelStats cs;
    nlohmann::json fg, all;
    JsonReader cr(c, context + " channel");
    cr.require("foreground", fg).require("all", all);
    cr.require("foreground_sample", cs.foreground_sample).require("all_sample", cs.all_sample);
    cr.finish();
    cs.foreground = IntensitySummary::from_json(fg, context + " foreground");
    cs.all = IntensitySummary::from_json(all, context + " all");
    s.channels.push_back(std::move(cs));
  }
  return s;
}

CaseStats compute_case_stats(const std::string& id, const std::string& patient_id, const torch::Tensor& image,
                             const torch::Tensor& label) {
  TF_CHECK(image.defined() && image.dim() == 4, InvalidArgument, "compute_case_stats: image must be [C, Z, Y, X]");
  CaseStats s;
  s.id = id;
  s.patient_id = patient_id;
  s.shape = {image.size(3), image.size(2), image.size(1)};
  s.labelled = label.defined();
  const auto img = image.detach().to(torch::kFloat).contiguous();
  torch::Tensor fg;
  if (s.labelled) {
    TF_CHECK(label.dim() == 4 && label.size(0) == 1 && label.sizes().slice(1) == image.sizes().slice(1),
             InvalidArgument, "compute_case_stats: label must be [1, Z, Y, X] matching the image, got ",
             label.sizes().vec(), " vs ", image.sizes().vec());
    const auto lab = label.detach().to(torch::kUInt8).contiguous();
    fg = lab[0].ne(0).reshape({-1}).contiguous();
    const auto counts = lab.reshape({-1}).to(torch::kLong).bincount().contiguous();
    for (int64_t v = 0; v < counts.numel(); ++v) {
      const int64_t n = counts.data_ptr<int64_t>()[v];
      if (n > 0) s.label_voxels[int(v)] = n;
    }
    s.lesions = transforms::count_components(lab, 26);
  }
  const uint64_t seed = fnv1a(id);
  const int64_t channels = img.size(0), voxels = img[0].numel();
  const bool* fg_mask = s.labelled ? fg.data_ptr<bool>() : nullptr;
  s.channels.resize(size_t(channels));
  // Channels are independent: one per thread (plain loops inside, no tensor ops).
  at::parallel_for(0, channels, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float* v = img.data_ptr<float>() + c * voxels;
      std::vector<float> all(v, v + voxels);
      ChannelStats& cs = s.channels[size_t(c)];
      cs.all_sample = sample(all, seed ^ (uint64_t(c) * 0x9E3779B97F4A7C15ULL));
      if (fg_mask) {
        std::vector<float> fgv;
        for (int64_t i = 0; i < voxels; ++i)
          if (fg_mask[i]) fgv.push_back(v[i]);
        cs.foreground_sample = sample(fgv, seed ^ (uint64_t(c + 101) * 0x9E3779B97F4A7C15ULL));
        cs.foreground = summarize(std::move(fgv));
      } else {
        cs.foreground = summarize({});
      }
      cs.all = summarize(std::move(all));
    }
  });
  return s;
}

namespace {

IntensitySummary pool(const std::vector<const IntensitySummary*>& parts, std::vector<float> samples) {
  IntensitySummary s;
  double n = 0.0, sum = 0.0, sq = 0.0;
  s.min = INFINITY;
  s.max = -INFINITY;
  for (const auto* p : parts) {
    if (p->count == 0) continue;
    const double c = double(p->count);
    n += c;
    sum += c * p->mean;
    sq += c * (p->std * p->std + p->mean * p->mean);
    s.min = std::min(s.min, p->min);
    s.max = std::max(s.max, p->max);
  }
  s.count = int64_t(n);
  if (n == 0 || samples.empty()) return summarize({});
  s.mean = sum / n;
  s.std = std::sqrt(std::max(0.0, sq / n - s.mean * s.mean));
  s.p00_5 = percentile(samples, 0.005);
  s.p99_5 = percentile(samples, 0.995);
  return s;
}

template <typename T>
T median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? T{} : v[v.size() / 2];
}

}  // namespace

DatasetFingerprint aggregate_fingerprint(const std::vector<std::string>& channel_names,
                                         const std::vector<CaseStats>& cases) {
  DatasetFingerprint f;
  f.channel_names = channel_names;
  f.cases = cases;
  for (size_t c = 0; c < channel_names.size(); ++c) {
    std::vector<const IntensitySummary*> fg, all;
    std::vector<float> fg_samples, all_samples;
    for (const auto& cs : cases) {
      TF_CHECK(cs.channels.size() == channel_names.size(), InvalidArgument, "fingerprint: case '", cs.id, "' has ",
               cs.channels.size(), " channels, expected ", channel_names.size());
      fg.push_back(&cs.channels[c].foreground);
      all.push_back(&cs.channels[c].all);
      fg_samples.insert(fg_samples.end(), cs.channels[c].foreground_sample.begin(), cs.channels[c].foreground_sample.end());
      all_samples.insert(all_samples.end(), cs.channels[c].all_sample.begin(), cs.channels[c].all_sample.end());
    }
    f.foreground.push_back(pool(fg, std::move(fg_samples)));
    f.all.push_back(pool(all, std::move(all_samples)));
  }
  return f;
}

nlohmann::json DatasetFingerprint::to_json() const {
  nlohmann::json intensity = nlohmann::json::object();
  for (size_t c = 0; c < channel_names.size(); ++c)
    intensity[channel_names[c]] = {{"foreground", foreground[c].to_json()}, {"all", all[c].to_json()}};
  nlohmann::json list = nlohmann::json::array();
  std::vector<double> sx, sy, sz;
  std::vector<int64_t> nx, ny, nz;
  for (const auto& cs : cases) {
    nlohmann::json j = cs.to_json();
    nlohmann::json per_channel = nlohmann::json::object();
    for (size_t c = 0; c < cs.channels.size() && c < channel_names.size(); ++c)
      per_channel[channel_names[c]] = {{"foreground", cs.channels[c].foreground.to_json()},
                                       {"all", cs.channels[c].all.to_json()}};
    j.erase("channels");
    j["intensity"] = per_channel;
    list.push_back(j);
    sx.push_back(cs.original_spacing[0]);
    sy.push_back(cs.original_spacing[1]);
    sz.push_back(cs.original_spacing[2]);
    nx.push_back(cs.shape[0]);
    ny.push_back(cs.shape[1]);
    nz.push_back(cs.shape[2]);
  }
  return {{"channel_names", channel_names},
          {"num_cases", cases.size()},
          {"intensity", intensity},
          {"original_spacing_median", {median(sx), median(sy), median(sz)}},
          {"shape_median", {median(nx), median(ny), median(nz)}},
          {"cases", list}};
}

}  // namespace teachformer::data
