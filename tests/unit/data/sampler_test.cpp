#include "teachformer/data/sampler.hpp"

#include "teachformer/core/error.hpp"
#include "teachformer/data/case_source.hpp"

#include <set>

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

// The uint8 fast path and the generic path (any other label type) index the same voxels in the same order,
// thinned the same way.
TEST(Sampler, ForegroundIndexOfUint8LabelsEqualsTheGenericOne) {
  torch::manual_seed(3);
  TrainingCase a;
  a.label = (torch::rand({1, 9, 11, 13}) * 4).floor().to(torch::kByte);  // classes 0..3, each ~300 voxels
  a.label.index_put_({0, 0, 0, 0}, 200);
  TrainingCase b = a;
  b.label = a.label.to(torch::kLong);
  for (int64_t cap : {int64_t(100000), int64_t(57)}) {
    index_foreground(a, cap);
    index_foreground(b, cap);
    ASSERT_EQ(a.class_locations.size(), 4u);
    ASSERT_EQ(b.class_locations.size(), 4u);
    for (const auto& [v, loc] : b.class_locations) {
      ASSERT_TRUE(a.class_locations.count(v)) << v;
      EXPECT_TRUE(torch::equal(a.class_locations.at(v), loc)) << "class " << v << " cap " << cap;
      EXPECT_LE(loc.size(0), cap);
    }
  }
  EXPECT_EQ(a.class_locations.at(200).size(0), 1);
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

TEST(Sampler, ExtraMapsCropExactlyWhenThePatchCoversWholeMapVoxels) {
  auto c = make_case(16, 16, 16);
  c.extras["coarse"] = {torch::nn::functional::avg_pool3d(c.image.unsqueeze(0), torch::nn::functional::AvgPool3dFuncOptions(4)).squeeze(0), 4};
  PatchSamplerOptions o;
  o.patch_size = {8, 8, 8};
  PatchSampler s(o, no_augment());
  for (const std::vector<int64_t> start : {std::vector<int64_t>{0, 4, 8}, {8, 8, 0}, {4, 0, 4}}) {
    auto p = s.crop(c, start);
    auto pooled = torch::nn::functional::avg_pool3d(p.image.unsqueeze(0), torch::nn::functional::AvgPool3dFuncOptions(4)).squeeze(0);
    EXPECT_TRUE(torch::allclose(p.extras["coarse"].data, pooled));
  }
}

// A map that is linear in the coordinates is reproduced exactly by trilinear sampling, wherever the patch starts
// and whatever it is scaled by: the map follows the patch without aligning it.
TEST(Sampler, ExtraMapsFollowPatchesAtAnyPositionAndScale) {
  const int64_t n = 32, f = 4;
  TrainingCase c;
  c.id = "coords";
  const auto axis = torch::arange(n, torch::kFloat);
  const auto g = torch::meshgrid({axis, axis, axis}, "ij");
  c.image = torch::stack({g[0], g[1], g[2], torch::ones_like(g[0])});  // coordinates z, y, x, and 1 inside the case
  // Map voxel (k, j, i) covers case voxels [k f, (k + 1) f): its centre is at case coordinate (k + 0.5) f - 0.5.
  const auto centre = (torch::arange(n / f, torch::kFloat) + 0.5) * double(f) - 0.5;
  const auto m = torch::meshgrid({centre, centre, centre}, "ij");
  const auto value = [](const torch::Tensor& z, const torch::Tensor& y, const torch::Tensor& x) {
    return 3.0 * z - 2.0 * y + 0.5 * x + 7.0;
  };
  c.extras["map"] = {value(m[0], m[1], m[2]).unsqueeze(0), f};
  transforms::AugmentOptions a = no_augment();
  a.spatial = true;
  a.p_flip = 0;
  a.p_rot90 = 0;
  a.p_scale = 0.5;
  PatchSamplerOptions o;
  o.patch_size = {16, 16, 16};
  o.foreground_fraction = 0;
  PatchSampler s(o, a);
  int unaligned = 0, checked = 0;
  const double lo = double(f) / 2 - 0.5, hi = double(n) - double(f) / 2 - 0.5;  // first and last map centres
  for (uint64_t i = 0; i < 40; ++i) {
    Rng rng({21, i});
    auto p = s.sample(c, rng);
    // The case position under each patch-map voxel: the mean of the f^3 patch voxels it covers.
    const auto pos = torch::nn::functional::avg_pool3d(p.image.unsqueeze(0), torch::nn::functional::AvgPool3dFuncOptions(f))
                         .squeeze(0);
    const auto z = pos[0], y = pos[1], x = pos[2];
    // The patch's outer map voxels are left out: where the image itself is resampled (scaling), the resampler
    // clamps at the edges of the cropped region, so the image is not linear there.
    auto interior = torch::zeros_like(z, torch::kBool);
    interior.slice(0, 1, -1).slice(1, 1, -1).slice(2, 1, -1).fill_(true);
    const auto inside = (z >= lo) & (z <= hi) & (y >= lo) & (y <= hi) & (x >= lo) & (x <= hi) & (pos[3] > 0.999) &
                        interior;
    if (inside.sum().item<int64_t>() == 0) continue;
    const auto got = p.extras.at("map").data.squeeze(0);
    EXPECT_LT((got - value(z, y, x)).abs().masked_select(inside).max().item<double>(), 1e-3) << "sample " << i;
    ++checked;
    const double first = z.flatten()[0].item<double>() - lo;
    if (std::abs(first - double(f) * std::round(first / double(f))) > 1e-3) ++unaligned;
  }
  EXPECT_GT(checked, 10);
  EXPECT_GT(unaligned, 0);
}

TEST(Sampler, PatchesDoNotDependOnTheExtras) {
  auto c = make_case(20, 20, 20);
  auto with = c;
  with.extras["map"] = {torch::rand({1, 5, 5, 5}), 4};
  transforms::AugmentOptions a;  // defaults: flips, rotations, scaling, intensity
  PatchSamplerOptions o;
  o.patch_size = {8, 8, 8};
  PatchSampler s(o, a);
  for (uint64_t i = 0; i < 20; ++i) {
    Rng r1({5, i}), r2({5, i});
    EXPECT_TRUE(torch::equal(s.sample(c, r1).image, s.sample(with, r2).image)) << i;
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
  const auto source = in_memory_cases(*cases);
  PatchLoader sync(source, PatchSampler(o, a), a, lo);
  lo.workers = 2;
  PatchLoader threaded(source, PatchSampler(o, a), a, lo);
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

// Sample b of a global batch is the same whichever loader (rank) builds it.
TEST(Loader, ASampleOffsetBuildsTheRestOfTheGlobalBatch) {
  const auto cases = in_memory_cases({make_case(), make_case(12, 12, 12)});
  PatchSamplerOptions o;
  o.patch_size = {8, 8, 8};
  transforms::AugmentOptions a;
  LoaderOptions whole, first, second;
  whole.batch_size = 2;
  first.batch_size = second.batch_size = 1;
  second.sample_offset = 1;
  for (auto* l : {&whole, &first, &second}) l->workers = 0;
  PatchLoader w(cases, PatchSampler(o, a), a, whole), r0(cases, PatchSampler(o, a), a, first),
      r1(cases, PatchSampler(o, a), a, second);
  for (int64_t step : {0, 3, 8}) {
    const auto b = w.build(step);
    EXPECT_TRUE(torch::equal(b.image[0], r0.build(step).image[0]));
    EXPECT_TRUE(torch::equal(b.image[1], r1.build(step).image[0]));
  }
}

// Unlabelled cases are added after each batch's labelled samples, which stay the batch of a loader without them.
TEST(Loader, UnlabelledSamplesFollowTheUnchangedLabelledBatch) {
  const auto labelled = in_memory_cases({make_case(), make_case(12, 12, 12)});
  std::vector<TrainingCase> raw;
  for (int i = 0; i < 3; ++i) {
    TrainingCase c = make_case(16, 16, 16);
    c.id = "unlabelled" + std::to_string(i);
    c.image = c.image + 1000.0f * float(i + 1);
    c.label = torch::Tensor();
    c.class_locations.clear();
    raw.push_back(c);
  }
  const auto unlabelled = in_memory_cases(raw);
  PatchSamplerOptions o;
  o.patch_size = {8, 8, 8};
  const transforms::AugmentOptions a;
  LoaderOptions plain_options;
  plain_options.batch_size = 2;
  plain_options.workers = 0;
  LoaderOptions mixed_options = plain_options;
  mixed_options.unlabelled_per_batch = 3;
  PatchLoader plain(labelled, PatchSampler(o, a), a, plain_options);
  PatchLoader mixed(labelled, PatchSampler(o, a), a, mixed_options, unlabelled);
  std::set<std::string> seen;
  for (int64_t step = 0; step < 6; ++step) {
    const Batch p = plain.build(step), m = mixed.build(step);
    ASSERT_EQ(m.image.size(0), 5);
    EXPECT_TRUE(torch::equal(m.image.narrow(0, 0, 2), p.image)) << step;
    EXPECT_TRUE(torch::equal(m.label.narrow(0, 0, 2), p.label)) << step;
    EXPECT_EQ(m.labelled, (std::vector<bool>{true, true, false, false, false}));
    for (int b = 2; b < 5; ++b) {
      EXPECT_EQ(m.case_ids[size_t(b)].rfind("unlabelled", 0), 0u) << m.case_ids[size_t(b)];
      EXPECT_EQ(m.label[b].sum().item<int64_t>(), 0);
      seen.insert(m.case_ids[size_t(b)]);
    }
  }
  EXPECT_EQ(seen.size(), 3u);  // 18 draws reach every unlabelled case
  // Rank 1 of a job builds the second half of both parts of the global batch.
  LoaderOptions rank1 = mixed_options;
  rank1.batch_size = 1;
  rank1.sample_offset = 1;
  rank1.unlabelled_per_batch = 2;
  rank1.unlabelled_offset = 1;
  PatchLoader r1(labelled, PatchSampler(o, a), a, rank1, unlabelled);
  const Batch whole = mixed.build(4), half = r1.build(4);
  EXPECT_TRUE(torch::equal(half.image[0], whole.image[1]));
  EXPECT_TRUE(torch::equal(half.image.narrow(0, 1, 2), whole.image.narrow(0, 3, 2)));
  // One without the other is a mistake.
  EXPECT_THROW(PatchLoader(labelled, PatchSampler(o, a), a, plain_options, unlabelled), InvalidArgument);
  EXPECT_THROW(PatchLoader(labelled, PatchSampler(o, a), a, mixed_options), InvalidArgument);
}

// Teachers see the patch before the intensity augmentations, with the same spatial ones.
TEST(Loader, TeacherImageIsThePatchBeforeIntensityAugmentation) {
  const auto cases = in_memory_cases({make_case()});
  PatchSamplerOptions o;
  o.patch_size = {8, 8, 8};
  transforms::AugmentOptions a;
  a.spatial = false;
  LoaderOptions lo;
  lo.workers = 0;
  lo.teacher_image = true;
  PatchLoader l(cases, PatchSampler(o, a), a, lo);
  a.intensity = false;
  PatchLoader plain(cases, PatchSampler(o, a), a, lo);
  const auto b = l.build(4), p = plain.build(4);
  ASSERT_TRUE(b.teacher_image.defined());
  EXPECT_TRUE(torch::equal(b.teacher_image, p.image));
  EXPECT_FALSE(torch::equal(b.image, b.teacher_image));
}

// A case that cannot be read fails the batch with its own error, in the caller's thread.
TEST(Loader, AnErrorWhileReadingACaseReachesTheCaller) {
  auto source = cached_cases({"a", "b"}, [](const std::string& id) -> TrainingCase {
    TF_THROW(IoError, "cannot read case '", id, "'");
  }, 1 << 20);
  PatchSamplerOptions o;
  o.patch_size = {8, 8, 8};
  LoaderOptions lo;
  lo.workers = 2;
  PatchLoader l(source, PatchSampler(o, no_augment()), no_augment(), lo);
  EXPECT_THROW(l.get(0), IoError);
}

}  // namespace
}  // namespace teachformer::data
