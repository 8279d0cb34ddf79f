#include "teachformer/transforms/case_geometry.hpp"

#include <torch/torch.h>

#include <cmath>
#include <sstream>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::transforms {

std::string BoundingBox::to_string() const {
  std::ostringstream os;
  os.precision(6);
  os << "x [" << min[0] << ", " << max[0] << "] y [" << min[1] << ", " << max[1] << "] z [" << min[2] << ", "
     << max[2] << "] mm";
  return os.str();
}

Grid grid_for_box(const BoundingBox& box, const Vec3& spacing) {
  Grid g;
  for (int a = 0; a < 3; ++a) {
    TF_CHECK(std::isfinite(box.min[a]) && std::isfinite(box.max[a]) && box.max[a] > box.min[a], InvalidArgument,
             "bounding box ", box.to_string(), ": every max must exceed its min");
    TF_CHECK(std::isfinite(spacing[a]) && spacing[a] > 0, InvalidArgument,
             "bounding box spacing must be positive, got ", spacing);
    const double extent = box.max[a] - box.min[a];
    g.size[a] = std::max<int64_t>(1, int64_t(std::llround(extent / spacing[a])));
    g.geometry.spacing[a] = spacing[a];
    const double centre = 0.5 * (box.min[a] + box.max[a]);
    g.geometry.origin[a] = centre - 0.5 * double(g.size[a] - 1) * spacing[a];
  }
  g.geometry.direction = kIdentityDirection;
  return g;
}

nlohmann::json grid_to_json(const Grid& grid) {
  return {{"size", grid.size},
          {"spacing", grid.geometry.spacing},
          {"origin", grid.geometry.origin},
          {"direction", grid.geometry.direction}};
}

Grid grid_from_json(const nlohmann::json& j, const std::string& context) {
  Grid g;
  JsonReader r(j, context);
  r.require("size", g.size).require("spacing", g.geometry.spacing).require("origin", g.geometry.origin);
  r.require("direction", g.geometry.direction);
  r.finish();
  for (int a = 0; a < 3; ++a) {
    TF_CHECK(g.size[a] >= 1, ConfigError, context, ": size must be positive, got ", g.size);
    TF_CHECK(std::isfinite(g.geometry.spacing[a]) && g.geometry.spacing[a] > 0, ConfigError, context,
             ": spacing must be positive, got ", g.geometry.spacing);
  }
  return g;
}

nlohmann::json box_to_json(const BoundingBox& box) { return {{"min", box.min}, {"max", box.max}}; }

BoundingBox box_from_json(const nlohmann::json& j, const std::string& context) {
  BoundingBox b;
  JsonReader r(j, context);
  r.require("min", b.min).require("max", b.max);
  r.finish();
  for (int a = 0; a < 3; ++a)
    TF_CHECK(b.max[a] > b.min[a], ConfigError, context, ": every max must exceed its min, got ", b.to_string());
  return b;
}

nlohmann::json CaseGeometry::to_json() const {
  nlohmann::json channels = nlohmann::json::array();
  for (size_t c = 0; c < channel_names.size(); ++c)
    channels.push_back({{"name", channel_names[c]}, {"grid", grid_to_json(channel_grids.at(c))}});
  return {{"patient_id", patient_id},
          {"reference_channel", reference_channel},
          {"reference", grid_to_json(reference)},
          {"preprocessed", grid_to_json(preprocessed)},
          {"bbox", bbox ? box_to_json(*bbox) : nlohmann::json(nullptr)},
          {"channels", channels}};
}

CaseGeometry CaseGeometry::from_json(const nlohmann::json& j, const std::string& context) {
  CaseGeometry g;
  JsonReader r(j, context);
  nlohmann::json reference, preprocessed, bbox, channels;
  r.require("patient_id", g.patient_id).require("reference_channel", g.reference_channel);
  r.require("reference", reference).require("preprocessed", preprocessed).get("bbox", bbox);
  r.require("channels", channels);
  r.finish();
  g.reference = grid_from_json(reference, context + " reference");
  g.preprocessed = grid_from_json(preprocessed, context + " preprocessed");
  if (!bbox.is_null()) g.bbox = box_from_json(bbox, context + " bbox");
  TF_CHECK(channels.is_array() && !channels.empty(), ConfigError, context, ": 'channels' must be a non-empty list");
  for (const auto& c : channels) {
    std::string name;
    nlohmann::json grid;
    JsonReader cr(c, context + " channel");
    cr.require("name", name).require("grid", grid);
    cr.finish();
    g.channel_names.push_back(name);
    g.channel_grids.push_back(grid_from_json(grid, context + " channel " + name));
  }
  return g;
}

io::Volume restore_to_reference(const torch::Tensor& data, const CaseGeometry& geometry,
                                Interpolation interpolation) {
  TF_CHECK(data.defined() && data.dim() == 4, InvalidArgument,
           "restore_to_reference: expected a [C, Z, Y, X] tensor on the preprocessed grid, got ",
           data.defined() ? data.sizes().vec() : std::vector<int64_t>{});
  const Size3& s = geometry.preprocessed.size;
  TF_CHECK(data.size(1) == s[2] && data.size(2) == s[1] && data.size(3) == s[0], InvalidArgument,
           "restore_to_reference: tensor spatial shape ", std::vector<int64_t>{data.size(1), data.size(2), data.size(3)},
           " differs from the preprocessed grid [", s[2], ", ", s[1], ", ", s[0], "] (Z, Y, X)");
  if (grids_match(geometry.preprocessed, geometry.reference, 1e-6, 1e-9)) {
    auto copy = data.detach().to(torch::kCPU).clone();
    if (interpolation != Interpolation::Nearest) copy = copy.to(torch::kFloat);
    return io::Volume{copy, geometry.reference.geometry};
  }
  return io::Volume{resample(data, geometry.preprocessed.geometry, geometry.reference, interpolation, 0.0),
                    geometry.reference.geometry};
}

}  // namespace teachformer::transforms
