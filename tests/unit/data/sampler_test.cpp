#include "teachformer/data/sampler.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/data/loader.hpp"

namespace teachformer::data {
namespace {

// image channel 0 encodes the position (z*10000 + y*100 + x), channel 1 its negative; label = a small cube.
TrainingCase make_case(int64_t d = 20, int64_t h = 24, int64_t w = 24) {
  TrainingCase c;
  c.id = "case";
  auto z = torch::arange(d).view({d, 1, 1}).expand({d, h, w});
  auto y = torch::arange(h).view({1, h, 1}).expand({d, h, w});
  auto x = torch::arange(w).view({1, 1, w}).expand({d, h, w});
  auto code = (z * 10000 + y * 100 + x).to(torch::kFloat);
  c.image = torch::stack({code, -code});
  c.label = torch::zeros({1, d, h, w}, torch::kByte);
  c.label.index_put_({0, torch::indexing::Slice(2, 4), torch::indexing::Slice(3, 6), torch::indexing::Slice(18, 21)}, 1);
  index_foreground(c);
  return c;
}

transforms::AugmentOptions no_augment() {
  transforms::AugmentOptions a;
  a.spatial = false;
  a.intensity = false;
  return a;
}

TEST(Sampler, ForegroundOversamplingHitsTheLesion) {
  const auto c = make_case();
  PatchSamplerOptions o;
  o.patch_size = {8, 8, 8};
  o.foreground_fraction = 1.0;
  PatchSampler s(o, no_augment());
  for (uint64_t i = 0; i < 50; ++i) {
    Rng rng({3, i});
    EXPECT_GT(s.sample(c, rng).label.sum().item<int64_t>(), 0);
  }
}

TEST(Sampler, ForegroundFractionIsRespected) {
  const auto c = make_case(32, 48, 48);
  PatchSamplerOptions o;
  o.patch_size = {8, 8, 8};
  o.foreground_fraction = 0.0;
  PatchSampler s(o, no_augment());
  int with_fg = 0;
  for (uint64_t i = 0; i < 200; ++i) {
    Rng rng({4, i});
    with_fg += s.sample(c, rng).label.sum().item<int64_t>() > 0;
  }
  EXPECT_LT(with_fg, 20);  // the lesion covers a tiny part of the volume
}

TEST(Sampler, CropMatchesTheSourceVoxelsAndPadsOutside) {
  const auto c = make_case();
  PatchSamplerOptions o;
  o.patch_size = {4, 4, 4};
  PatchSampler s(o, no_augment());
  auto p = s.crop(c, {1, 2, 3});
  EXPECT_EQ(p.image[0][0][0][0].item<float>(), 1 * 10000 + 2 * 100 + 3);
  EXPECT_EQ(p.image[0][3][3][3].item<float>(), 4 * 10000 + 5 * 100 + 6);
  auto q = s.crop(c, {-2, 0, 22});
  EXPECT_EQ(q.image[0][0][0][0].item<float>(), 0);  // padding
  EXPECT_EQ(q.image[0][2][0][0].item<float>(), 22);
  EXPECT_EQ(q.image[0][2][0][3].item<float>(), 0);  // x = 25 is outside
}

TEST(Sampler, CaseSmallerThanPatchIsPadded) {
  const auto c = make_case(4, 6, 6);
  PatchSamplerOptions o;
  o.patch_size = {8, 8, 8};
  PatchSampler s(o, no_augment());
  Rng rng(1);
  auto p = s.sample(c, rng);
  EXPECT_EQ(p.image.sizes(), (std::vector<int64_t>{2, 8, 8, 8}));
}

TEST(Sampler, ExtraMapsCropWithThePatchAtTheirFactor) {
  auto c = make_case(16, 16, 16);
  c.extras["coarse"] = {torch::nn::functional::avg_pool3d(c.image.unsqueeze(0), torch::nn::functional::AvgPool3dFuncOptions(4)).squeeze(0), 4};
  PatchSamplerOptions o;
  o.patch_size = {8, 8, 8};
  o.align = 4;
  PatchSampler s(o, no_augment());
  for (uint64_t i = 0; i < 10; ++i) {
    Rng rng({9, i});
    auto p = s.sample(c, rng);
    auto pooled = torch::nn::functional::avg_pool3d(p.image.unsqueeze(0), torch::nn::functional::AvgPool3dFuncOptions(4)).squeeze(0);
    EXPECT_TRUE(torch::allclose(p.extras["coarse"].data, pooled));
  }
}

TEST(Sampler, ScalingKeepsPatchSizeAndLabelAligned) {
  auto c = make_case(24, 24, 24);
  c.label = (c.image[0] > 50000).to(torch::kByte).unsqueeze(0);  // z >= 5
  index_foreground(c);
  transforms::AugmentOptions a = no_augment();
  a.spatial = true;
  a.p_flip = 0;
  a.p_rot90 = 0;
  a.p_scale = 1.0;
  PatchSamplerOptions o;
  o.patch_size = {8, 8, 8};
  PatchSampler s(o, a);
  for (uint64_t i = 0; i < 10; ++i) {
    Rng rng({11, i});
    auto p = s.sample(c, rng);
    ASSERT_EQ(p.image.sizes(), (std::vector<int64_t>{2, 8, 8, 8}));
    // label 1 exactly where the resampled z coordinate is >= 5 (up to one voxel at the boundary)
    auto expect = (p.image[0] >= 45000).to(torch::kByte);
    EXPECT_LE((expect != p.label[0]).sum().item<int64_t>(), 64);
  }
}

TEST(Loader, BatchesAreDeterministicAndIndependentOfWorkers) {
  auto cases = std::make_shared<std::vector<TrainingCase>>();
  cases->push_back(make_case());
  auto second = make_case();
  second.id = "case2";
  second.image = second.image + 1;
  cases->push_back(second);
  PatchSamplerOptions o;
  o.patch_size = {8, 8, 8};
  transforms::AugmentOptions a;  // defaults: flips, rotations, intensity
  LoaderOptions lo;
  lo.batch_size = 3;
  lo.seed = 77;
  lo.workers = 0;
  PatchLoader sync(cases, PatchSampler(o, a), a, lo);
  lo.workers = 2;
  PatchLoader threaded(cases, PatchSampler(o, a), a, lo);
  for (int64_t step : {0, 1, 2, 3, 10, 11, 5}) {
    auto x = sync.get(step);
    auto y = threaded.get(step);
    EXPECT_TRUE(torch::equal(x.image, y.image)) << step;
    EXPECT_TRUE(torch::equal(x.label, y.label)) << step;
    EXPECT_EQ(x.case_ids, y.case_ids);
    EXPECT_EQ(x.image.sizes(), (std::vector<int64_t>{3, 2, 8, 8, 8}));
  }
  EXPECT_FALSE(torch::equal(sync.get(20).image, sync.get(21).image));
}

}  // namespace
}  // namespace teachformer::data
