#include "teachformer/transforms/case_geometry.hpp"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::transforms {
namespace {

TEST(GridForBox, A144MillimetreBoxAtOneMillimetreGives144Cubed) {
  const BoundingBox box{{-70.3, 12.0, -1000.5}, {73.7, 156.0, -856.5}};
  const Grid g = grid_for_box(box, {1, 1, 1});
  EXPECT_EQ(g.size, (Size3{144, 144, 144}));
  const auto [lo, hi] = grid_extent(g);
  for (int a = 0; a < 3; ++a) {
    EXPECT_NEAR(lo[a], box.min[a], 1e-9);
    EXPECT_NEAR(hi[a], box.max[a], 1e-9);
  }
  EXPECT_EQ(grid_for_box({{0, 0, 0}, {10, 20, 30}}, {2, 2, 2}).size, (Size3{5, 10, 15}));
  EXPECT_THROW(grid_for_box({{0, 0, 0}, {0, 1, 1}}, {1, 1, 1}), InvalidArgument);
}

CaseGeometry example_geometry() {
  CaseGeometry g;
  g.patient_id = "CHGJ007";
  g.reference_channel = "CT";
  g.reference.size = {40, 36, 14};
  g.reference.geometry.spacing = {1.0, 1.0, 3.0};
  g.reference.geometry.origin = {-20.2, -17.7, 900.1};
  g.bbox = BoundingBox{{-10.0, -8.0, 905.0}, {14.0, 12.0, 929.0}};
  g.preprocessed = grid_for_box(*g.bbox, {1, 1, 1});
  g.channel_names = {"CT", "PET"};
  g.channel_grids = {g.reference, g.reference};
  g.channel_grids[1].geometry.spacing = {4, 4, 4};
  return g;
}

TEST(CaseGeometry, JsonRoundTripIsExactAndStrict) {
  const CaseGeometry g = example_geometry();
  const auto j = g.to_json();
  const CaseGeometry back = CaseGeometry::from_json(nlohmann::json::parse(j.dump()), "test");
  EXPECT_EQ(back.to_json(), j);
  EXPECT_EQ(back.reference.geometry.origin, g.reference.geometry.origin);
  ASSERT_TRUE(back.bbox.has_value());
  auto bad = j;
  bad["reference"]["spacing_mm"] = {1, 1, 1};
  EXPECT_THROW(CaseGeometry::from_json(bad, "test"), ConfigError);
  bad = j;
  bad["preprocessed"]["spacing"] = {1, 0, 1};
  EXPECT_THROW(CaseGeometry::from_json(bad, "test"), ConfigError);
}

double smooth(const Vec3& w) { return std::sin(0.2 * w[0]) + std::cos(0.15 * w[1]) + 0.01 * w[2]; }

TEST(RestoreToReference, InvertsTheBboxCropWithinInterpolationTolerance) {
  const CaseGeometry g = example_geometry();
  const Grid& ref = g.reference;
  auto image = torch::empty({1, ref.size[2], ref.size[1], ref.size[0]});
  auto label = torch::zeros({1, ref.size[2], ref.size[1], ref.size[0]}, torch::kUInt8);
  auto ia = image.accessor<float, 4>();
  auto la = label.accessor<uint8_t, 4>();
  for (int64_t k = 0; k < ref.size[2]; ++k)
    for (int64_t j = 0; j < ref.size[1]; ++j)
      for (int64_t i = 0; i < ref.size[0]; ++i) {
        const Vec3 w = ref.geometry.index_to_world({double(i), double(j), double(k)});
        ia[0][k][j][i] = float(smooth(w));
        la[0][k][j][i] = (std::abs(w[0] - 2) < 5 && std::abs(w[1]) < 4 && std::abs(w[2] - 917) < 7) ? 1 : 0;
      }
  const auto cropped = resample(image, ref.geometry, g.preprocessed, Interpolation::Linear);
  const auto cropped_label = resample(label, ref.geometry, g.preprocessed, Interpolation::Nearest);
  const io::Volume back = restore_to_reference(cropped, g, Interpolation::Linear);
  const io::Volume back_label = restore_to_reference(cropped_label, g, Interpolation::Nearest);
  EXPECT_EQ(back.size(), ref.size);
  EXPECT_EQ(back_label.data.scalar_type(), torch::kUInt8);
  const auto inside = inside_mask(ref, g.preprocessed).unsqueeze(0);
  ASSERT_GT(inside.sum().item<int64_t>(), 1000);
  // Inside the box: linear twice blurs a little; the label comes back exactly. (Within half a voxel of the box
  // faces values are held constant, so the image is compared one voxel inside them.)
  BoundingBox inner = *g.bbox;
  for (int a = 0; a < 3; ++a) {
    inner.min[a] += 1.0;
    inner.max[a] -= 1.0;
  }
  const auto core = inside_mask(ref, grid_for_box(inner, {1, 1, 1})).unsqueeze(0);
  EXPECT_LT((back.data - image).abs().masked_select(core).max().item<float>(), 0.02);
  EXPECT_LT((back.data - image).abs().masked_select(inside).max().item<float>(), 0.11);
  EXPECT_TRUE(torch::equal(back_label.data.masked_select(inside), label.masked_select(inside)));
  // Outside: background / probability 0.
  EXPECT_EQ(back.data.masked_select(inside.logical_not()).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(back_label.data.masked_select(inside.logical_not()).sum().item<int64_t>(), 0);
}

TEST(RestoreToReference, RejectsATensorOfTheWrongShape) {
  const CaseGeometry g = example_geometry();
  EXPECT_THROW(restore_to_reference(torch::zeros({1, 5, 5, 5}), g, Interpolation::Linear), InvalidArgument);
}

TEST(RestoreToReference, SameGridCopiesWithoutInterpolation) {
  CaseGeometry g = example_geometry();
  g.bbox.reset();
  g.preprocessed = g.reference;
  const auto probs = torch::rand({3, 14, 36, 40});
  const io::Volume v = restore_to_reference(probs, g, Interpolation::Linear);
  EXPECT_TRUE(torch::equal(v.data, probs));
}

}  // namespace
}  // namespace teachformer::transforms
