#include "teachformer/report/volumes.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::report {

std::string base64(std::string_view bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(table[(v >> s) & 63]);
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out.push_back(table[(v >> 18) & 63]);
    out.push_back(table[(v >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? table[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

io::Volume crop_to_box(const io::Volume& volume, const transforms::BoundingBox& box, double margin_mm) {
  const Vec3 lo{box.min[0] - margin_mm, box.min[1] - margin_mm, box.min[2] - margin_mm};
  const Vec3 hi{box.max[0] + margin_mm, box.max[1] + margin_mm, box.max[2] + margin_mm};
  const auto size = volume.size();
  std::array<double, 3> first{1e300, 1e300, 1e300}, last{-1e300, -1e300, -1e300};
  for (int corner = 0; corner < 8; ++corner) {
    const Vec3 w{(corner & 1) ? hi[0] : lo[0], (corner & 2) ? hi[1] : lo[1], (corner & 4) ? hi[2] : lo[2]};
    const Vec3 idx = volume.geometry.world_to_index(w);
    for (int a = 0; a < 3; ++a) first[a] = std::min(first[a], idx[a]), last[a] = std::max(last[a], idx[a]);
  }
  std::array<int64_t, 3> i0{}, i1{};
  for (int a = 0; a < 3; ++a) {
    i0[a] = std::max<int64_t>(0, int64_t(std::ceil(first[a] - 1e-6)));
    i1[a] = std::min<int64_t>(size[a] - 1, int64_t(std::floor(last[a] + 1e-6)));
    TF_CHECK(i0[a] <= i1[a], InvalidArgument, "crop: box ", box.to_string(), " does not overlap the volume (",
             volume.grid().to_string(), ")");
  }
  io::Volume out;
  out.data = volume.data.slice(1, i0[2], i1[2] + 1).slice(2, i0[1], i1[1] + 1).slice(3, i0[0], i1[0] + 1).contiguous();
  out.geometry = volume.geometry;
  out.geometry.origin = volume.geometry.index_to_world({double(i0[0]), double(i0[1]), double(i0[2])});
  return out;
}

std::pair<double, double> intensity_range(const torch::Tensor& data, double lo, double hi) {
  auto flat = data.reshape({-1}).to(torch::kFloat);
  const int64_t n = flat.numel();
  if (n == 0) return {0.0, 1.0};
  const int64_t step = std::max<int64_t>(1, n / 2000000);
  flat = std::get<0>(flat.slice(0, 0, n, step).sort());
  const int64_t m = flat.size(0);
  auto at = [&](double q) { return flat[std::clamp<int64_t>(int64_t(std::llround(q * double(m - 1))), 0, m - 1)].item<double>(); };
  return {at(lo), at(hi)};
}

std::optional<Vec3> label_centroid_ras(const io::Volume& label) {
  const auto nz = (label.data[0] > 0).nonzero();  // [N, 3] as (z, y, x)
  if (nz.size(0) == 0) return std::nullopt;
  const auto mean = nz.to(torch::kDouble).mean(0);
  const Vec3 idx{mean[2].item<double>(), mean[1].item<double>(), mean[0].item<double>()};
  const Vec3 lps = label.geometry.index_to_world(idx);
  return Vec3{-lps[0], -lps[1], lps[2]};
}

VolumeScript::VolumeScript(fs::path scratch) : scratch_(std::move(scratch)) {}

void VolumeScript::add(const std::string& layer, const io::Volume& volume, io::PixelType type) {
  fs::create_directories(scratch_);
  const fs::path tmp = scratch_ / ("layer-" + std::to_string(layers_.size()) + ".nii.gz");
  io::write_image(tmp, volume, type);
  layers_[layer] = base64(read_file(tmp));
  fs::remove(tmp);
}

int64_t VolumeScript::write(const fs::path& path, const std::string& key) const {
  Json layers = Json::object();
  for (const auto& [name, b64] : layers_) layers[name] = b64;
  const std::string text = "window.TF_VOLUMES = window.TF_VOLUMES || {};\nwindow.TF_VOLUMES[" + Json(key).dump() +
                           "] = " + layers.dump() + ";\n";
  write_file_atomic(path, text);
  return int64_t(text.size());
}

}  // namespace teachformer::report
