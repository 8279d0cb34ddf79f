#include "teachformer/data/preprocess.hpp"

#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/log.hpp"
#include "teachformer/transforms/lesions.hpp"
#include "teachformer/transforms/resample.hpp"

namespace teachformer::data {

Grid target_grid(const Case& c, const Grid& reference, const PreprocessPlan& plan) {
  if (plan.crop_to_bbox) {
    TF_CHECK(c.bbox.has_value(), DatasetError, "case '", c.id,
             "': the plan crops to the bounding box but the case has none (hint: add its row to the bbox CSV)");
    return transforms::grid_for_box(*c.bbox, plan.bbox_spacing);
  }
  if (plan.target_spacing) return transforms::grid_with_spacing(reference, *plan.target_spacing);
  return reference;
}

ResampledCase resample_case(const Case& c, const PreprocessPlan& plan) { return resample_case(c, c.load(), plan); }

ResampledCase resample_case(const Case& c, const LoadedCase& loaded, const PreprocessPlan& plan) {
  const auto names = plan.channel_names();
  TF_CHECK(c.channel_names == names, DatasetError, "case '", c.id, "': channels ", c.channel_names,
           " differ from the plan's ", names, " (hint: the plan was made for another dataset)");
  TF_CHECK(loaded.channels.size() == names.size(), DatasetError, "case '", c.id, "': loaded ", loaded.channels.size(),
           " channels, the plan has ", names.size());
  const int ref = plan.reference_index();
  const Grid reference = loaded.channels[size_t(ref)].grid();
  const Grid target = target_grid(c, reference, plan);
  const double tol = plan.snap_tolerance_voxels;

  ResampledCase out;
  out.data.id = c.id;
  auto& geom = out.data.geometry;
  geom.patient_id = c.patient_id;
  geom.reference_channel = plan.reference_channel;
  geom.reference = reference;
  geom.preprocessed = target;
  if (plan.crop_to_bbox) geom.bbox = c.bbox;
  geom.channel_names = names;

  std::vector<torch::Tensor> channels;
  for (const auto& ch : loaded.channels) {
    geom.channel_grids.push_back(ch.grid());
    if (transforms::grids_match(ch.grid(), target, tol)) {
      channels.push_back(ch.data.to(torch::kFloat));
    } else {
      const double fill = ch.data.min().item<double>();
      channels.push_back(transforms::resample(ch.data, ch.geometry, target, plan.image_interpolation, fill));
    }
  }
  out.data.image = torch::cat(channels, 0).contiguous();

  if (loaded.label) {
    const io::Volume& label = *loaded.label;
    if (transforms::grids_match(label.grid(), target, tol)) {
      out.data.label = label.data.to(torch::kUInt8).contiguous();
    } else {
      out.data.label = transforms::resample(label.data, label.geometry, target, transforms::Interpolation::Nearest, 0.0)
                           .to(torch::kUInt8)
                           .contiguous();
      if (plan.lesion_check != transforms::LesionCheck::Off) {
        const auto inside = transforms::inside_mask(label.grid(), target);
        out.lesions_before = transforms::count_components(label.data[0].ne(0).logical_and(inside), 26);
        out.lesions_after = transforms::count_components(out.data.label, 26);
        if (auto w = transforms::check_lesion_count(out.lesions_before, out.lesions_after, plan.lesion_check,
                                                    "case '" + c.id + "'"))
          out.warnings.push_back(*w);
      }
    }
  }
  return out;
}

torch::Tensor normalize_image(const torch::Tensor& raw, const PreprocessPlan& plan) {
  TF_CHECK(raw.defined() && raw.dim() == 4 && raw.size(0) == int64_t(plan.channels.size()), InvalidArgument,
           "normalize_image: expected [", plan.channels.size(), ", Z, Y, X], got ",
           raw.defined() ? raw.sizes().vec() : std::vector<int64_t>{});
  std::vector<torch::Tensor> out;
  for (size_t c = 0; c < plan.channels.size(); ++c)
    out.push_back(transforms::normalize(raw[int64_t(c)], plan.channels[c].normalization).unsqueeze(0));
  return torch::cat(out, 0).contiguous();
}

PreprocessedCase preprocess_case(const Case& c, const PreprocessPlan& plan) {
  plan.validate("plan");
  ResampledCase r = resample_case(c, plan);
  for (const auto& w : r.warnings) spdlog::warn("{}", w);
  r.data.image = normalize_image(r.data.image, plan);
  return std::move(r.data);
}

}  // namespace teachformer::data
