#include "teachformer/data/plan.hpp"

#include <cmath>
#include <limits>
#include <set>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/data/dataset.hpp"

namespace teachformer::data {
namespace {
std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

std::vector<std::string> PreprocessPlan::channel_names() const {
  std::vector<std::string> names;
  for (const auto& c : channels) names.push_back(c.name);
  return names;
}

int PreprocessPlan::reference_index() const {
  for (size_t i = 0; i < channels.size(); ++i)
    if (channels[i].name == reference_channel) return int(i);
  TF_THROW(ConfigError, "plan: reference_channel '", reference_channel, "' is not one of the channels ", channel_names());
}

bool PreprocessPlan::needs_fingerprint() const {
  for (const auto& c : channels)
    if (c.normalization.scheme == transforms::NormScheme::Window &&
        (!std::isfinite(c.normalization.lower) || !std::isfinite(c.normalization.upper)))
      return true;
  return false;
}

void PreprocessPlan::validate(const std::string& context) const {
  TF_CHECK(version == 1, ConfigError, context, ": version must be 1, got ", version);
  TF_CHECK(!channels.empty(), ConfigError, context, ": 'channels' must list at least one channel");
  std::set<std::string> seen;
  for (const auto& c : channels) {
    TF_CHECK(!c.name.empty(), ConfigError, context, ": a channel has an empty name");
    TF_CHECK(seen.insert(c.name).second, ConfigError, context, ": channel '", c.name, "' appears twice");
    c.normalization.validate(context + " channel " + c.name);
  }
  TF_CHECK(seen.count(reference_channel), ConfigError, context, ": reference_channel '", reference_channel,
           "' is not one of the channels ", channel_names());
  auto check_spacing = [&](const Vec3& s, const char* key) {
    for (double v : s)
      TF_CHECK(std::isfinite(v) && v > 0, ConfigError, context, ": ", key, " must be positive in every axis, got ", s);
  };
  if (target_spacing) check_spacing(*target_spacing, "target_spacing");
  check_spacing(bbox_spacing, "bbox spacing");
  TF_CHECK(image_interpolation != transforms::Interpolation::Nearest, ConfigError, context,
           ": image_interpolation must be linear or bspline (nearest is for labels)");
  TF_CHECK(std::isfinite(snap_tolerance_voxels) && snap_tolerance_voxels >= 0 && snap_tolerance_voxels < 0.5,
           ConfigError, context, ": snap_tolerance_voxels must be in [0, 0.5), got ", snap_tolerance_voxels);
}

nlohmann::json PreprocessPlan::to_json() const {
  nlohmann::json ch = nlohmann::json::array();
  for (const auto& c : channels) ch.push_back({{"name", c.name}, {"normalization", c.normalization.to_json()}});
  return {{"version", version},
          {"channels", ch},
          {"reference_channel", reference_channel},
          {"target_spacing", target_spacing ? nlohmann::json(*target_spacing) : nlohmann::json(nullptr)},
          {"bbox", {{"crop", crop_to_bbox}, {"spacing", bbox_spacing}}},
          {"image_interpolation", transforms::to_string(image_interpolation)},
          {"label_interpolation", "nearest"},
          {"lesion_check", transforms::to_string(lesion_check)},
          {"snap_tolerance_voxels", snap_tolerance_voxels}};
}

PreprocessPlan PreprocessPlan::from_json(const nlohmann::json& j, const std::string& context) {
  PreprocessPlan p;
  nlohmann::json channels, target, bbox;
  std::string image_interp = "linear", label_interp = "nearest", lesion = "warn";
  JsonReader r(j, context);
  r.require("version", p.version).require("channels", channels).require("reference_channel", p.reference_channel);
  r.get("target_spacing", target).get("bbox", bbox).get("image_interpolation", image_interp);
  r.get("label_interpolation", label_interp).get("lesion_check", lesion);
  r.get("snap_tolerance_voxels", p.snap_tolerance_voxels);
  r.finish();
  TF_CHECK(channels.is_array(), ConfigError, context, ": 'channels' must be a list of {name, normalization}");
  for (const auto& c : channels) {
    ChannelPlan cp;
    nlohmann::json norm;
    JsonReader cr(c, context + " channel");
    cr.require("name", cp.name).require("normalization", norm);
    cr.finish();
    cp.normalization = transforms::Normalization::from_json(norm, context + " channel " + cp.name + " normalization");
    p.channels.push_back(std::move(cp));
  }
  if (!target.is_null()) {
    Vec3 t{};
    try {
      t = target.get<Vec3>();
    } catch (const nlohmann::json::exception&) {
      TF_THROW(ConfigError, context, ": target_spacing must be null or [x, y, z] in mm, got ", target.dump());
    }
    p.target_spacing = t;
  }
  if (!bbox.is_null()) {
    JsonReader br(bbox, context + " bbox");
    br.get("crop", p.crop_to_bbox).get("spacing", p.bbox_spacing);
    br.finish();
  }
  p.image_interpolation = transforms::interpolation_from_string(image_interp, context + " image_interpolation");
  TF_CHECK(label_interp == "nearest", ConfigError, context, ": label_interpolation must be \"nearest\", got \"",
           label_interp, "\"");
  p.lesion_check = transforms::lesion_check_from_string(lesion, context + " lesion_check");
  p.validate(context);
  return p;
}

std::string PreprocessPlan::digest() const {
  const std::string text = to_json().dump();
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

PreprocessPlan read_plan(const std::filesystem::path& path) {
  return PreprocessPlan::from_json(read_json(path), "plan '" + path.string() + "'");
}

std::string to_string(CtWindow window) { return window == CtWindow::Fixed ? "fixed" : "fingerprint"; }

CtWindow ct_window_from_string(const std::string& name) {
  if (name == "fixed") return CtWindow::Fixed;
  if (name == "fingerprint") return CtWindow::Fingerprint;
  TF_THROW(InvalidArgument, "--ct-window: unknown value '", name, "'; expected fixed or fingerprint");
}

PreprocessPlan make_plan(const Dataset& dataset, const PlanOptions& options) {
  TF_CHECK(!dataset.channel_names.empty(), DatasetError, "dataset '", dataset.root.string(), "' declares no channels");
  PreprocessPlan plan;
  std::set<std::string> used;
  for (const auto& name : dataset.channel_names) {
    ChannelPlan cp;
    cp.name = name;
    std::optional<transforms::Normalization> named;
    for (const auto& [key, n] : options.normalization)
      if (lower(key) == lower(name)) {
        named = n;
        used.insert(key);
      }
    if (named) {
      cp.normalization = *named;
    } else if (transforms::is_ct_channel(name) && options.ct_window == CtWindow::Fingerprint) {
      const double nan = std::numeric_limits<double>::quiet_NaN();
      cp.normalization = transforms::Normalization::window(nan, nan, "fingerprint");
    } else {
      cp.normalization = transforms::default_normalization(name);
    }
    plan.channels.push_back(std::move(cp));
  }
  for (const auto& [key, n] : options.normalization)
    TF_CHECK(used.count(key), InvalidArgument, "--norm: channel '", key, "' is not in the dataset; channels are ",
             dataset.channel_names);
  plan.reference_channel = dataset.reference_channel();
  bool any_box = false, all_boxes = true;
  for (const auto& c : dataset.all_cases()) {
    any_box = any_box || c.bbox.has_value();
    all_boxes = all_boxes && c.bbox.has_value();
  }
  const bool hecktor = dataset.format == DatasetFormat::Hecktor2021 || dataset.format == DatasetFormat::Hecktor2022;
  plan.crop_to_bbox = hecktor && any_box;
  TF_CHECK(!plan.crop_to_bbox || all_boxes, DatasetError, "dataset '", dataset.root.string(),
           "': some cases have a bounding box and others not; cropping needs one box per case (see teachformer verify)");
  if (plan.crop_to_bbox) {
    if (options.target_spacing) plan.bbox_spacing = *options.target_spacing;
  } else {
    plan.target_spacing = options.target_spacing;
  }
  plan.image_interpolation = options.image_interpolation;
  plan.lesion_check = options.lesion_check;
  if (!plan.needs_fingerprint()) plan.validate("plan");
  return plan;
}

}  // namespace teachformer::data
