#include "teachformer/transforms/augment.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::transforms {
namespace {

// The label marks exactly the voxels where channel 0 is > 0.5; spatial transforms must keep that true.
Sample aligned_sample(int64_t d = 6, int64_t h = 8, int64_t w = 8) {
  Sample s;
  auto img = torch::rand({2, d, h, w});
  s.image = img;
  s.label = (img.narrow(0, 0, 1) > 0.5).to(torch::kByte);
  s.extras["teacher"] = {img.narrow(0, 0, 1).clone(), 1};
  return s;
}

TEST(Augment, EverySpatialTransformKeepsImageLabelAndExtrasAligned) {
  AugmentOptions o;
  o.intensity = false;
  o.p_flip = 0.5;
  o.p_rot90 = 1.0;
  for (uint64_t i = 0; i < 30; ++i) {
    auto s = aligned_sample();
    Rng rng({5, i});
    augment_spatial(s, o, rng);
    EXPECT_TRUE(torch::equal(s.label, (s.image.narrow(0, 0, 1) > 0.5).to(torch::kByte))) << i;
    EXPECT_TRUE(torch::equal(s.extras["teacher"].data, s.image.narrow(0, 0, 1))) << i;
  }
}

TEST(Augment, FlipAndRotationMatchHandComputedIndices) {
  auto t = torch::arange(2 * 3 * 4, torch::kFloat).reshape({1, 2, 3, 4});
  auto f = flip_spatial(t, {2});
  EXPECT_EQ(f[0][1][2][0].item<float>(), t[0][1][2][3].item<float>());
  auto sq = torch::arange(9, torch::kFloat).reshape({1, 1, 3, 3});
  auto r = rot90_inplane(sq, 1);  // counter-clockwise in the (H, W) plane, as torch.rot90
  EXPECT_EQ(r[0][0][0][0].item<float>(), 2);
  EXPECT_EQ(r[0][0][2][0].item<float>(), 0);
  EXPECT_TRUE(torch::equal(rot90_inplane(sq, 4), sq));
}

TEST(Augment, RotationIsSkippedForNonSquarePlanes) {
  AugmentOptions o;
  o.intensity = false;
  o.p_flip = 0;
  o.p_rot90 = 1.0;
  auto s = aligned_sample(4, 6, 8);
  auto before = s.image.clone();
  Rng rng(1);
  augment_spatial(s, o, rng);
  EXPECT_TRUE(torch::equal(s.image, before));
}

TEST(Augment, IntensityLeavesLabelAndExtrasUntouched) {
  AugmentOptions o;
  o.spatial = false;
  o.p_intensity_scale = o.p_intensity_shift = o.p_gamma = o.p_noise = 1.0;
  auto s = aligned_sample();
  auto label = s.label.clone();
  auto extra = s.extras["teacher"].data.clone();
  auto image = s.image.clone();
  Rng rng(2);
  augment_intensity(s, o, rng);
  EXPECT_TRUE(torch::equal(s.label, label));
  EXPECT_TRUE(torch::equal(s.extras["teacher"].data, extra));
  EXPECT_FALSE(torch::allclose(s.image, image));
  EXPECT_TRUE(torch::isfinite(s.image).all().item<bool>());
}

TEST(Augment, GammaOfOneAndNoProbabilitiesIsIdentity) {
  AugmentOptions o;
  o.p_flip = o.p_rot90 = o.p_intensity_scale = o.p_intensity_shift = o.p_noise = 0;
  o.p_gamma = 1.0;
  o.gamma_range = {1.0, 1.0};
  auto s = aligned_sample();
  auto image = s.image.clone();
  Rng rng(3);
  augment_spatial(s, o, rng);
  augment_intensity(s, o, rng);
  EXPECT_TRUE(torch::allclose(s.image, image, 1e-5, 1e-6));
}

TEST(Augment, JsonIsStrictAndRoundTrips) {
  AugmentOptions o;
  o.p_scale = 0.2;
  auto back = augment_options_from_json(to_json(o));
  EXPECT_EQ(back.p_scale, 0.2);
  EXPECT_THROW(augment_options_from_json({{"p_flipp", 0.5}}), ConfigError);
  EXPECT_THROW(augment_options_from_json({{"gamma_range", {2.0, 1.0}}}), ConfigError);
}

}  // namespace
}  // namespace teachformer::transforms
