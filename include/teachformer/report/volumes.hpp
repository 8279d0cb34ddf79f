// Volumes for the report's viewers: cropped, encoded as .nii.gz, embedded as base64 in small scripts that set
// window.TF_VOLUMES[<key>] = {<layer>: "<base64>"} (a <script> tag loads them from file://, where fetch() cannot).
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "teachformer/io/image_io.hpp"
#include "teachformer/io/volume.hpp"
#include "teachformer/transforms/case_geometry.hpp"

namespace teachformer::report {

/// Standard base64 (RFC 4648, with padding).
std::string base64(std::string_view bytes);

/// The part of `volume` inside `box` grown by `margin_mm` on every side (voxels whose centres fall inside), with
/// the origin moved accordingly; the whole volume when the box covers it. Throws InvalidArgument when the box does
/// not overlap the volume.
io::Volume crop_to_box(const io::Volume& volume, const transforms::BoundingBox& box, double margin_mm);

/// The `lo` and `hi` quantiles (in [0, 1]) of the values of `data` (subsampled to at most ~2 M values).
std::pair<double, double> intensity_range(const torch::Tensor& data, double lo, double hi);

/// Centre of mass of the non-zero voxels of a label map in NiiVue's world coordinates (mm, RAS: NIfTI's
/// convention, x and y negated from ITK's LPS); nothing when the map is empty.
std::optional<Vec3> label_centroid_ras(const io::Volume& label);

/// The layers of one viewer, written as one script.
class VolumeScript {
 public:
  /// `scratch` is a folder for temporary .nii.gz files.
  explicit VolumeScript(std::filesystem::path scratch);
  /// Adds a layer (stored as .nii.gz of `type`).
  void add(const std::string& layer, const io::Volume& volume, io::PixelType type);
  /// Writes `path`: window.TF_VOLUMES[key] = {layer: base64, ...}. Returns the file size in bytes.
  int64_t write(const std::filesystem::path& path, const std::string& key) const;
  bool empty() const { return layers_.empty(); }

 private:
  std::filesystem::path scratch_;
  std::map<std::string, std::string> layers_;
};

}  // namespace teachformer::report
