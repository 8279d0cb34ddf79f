#include <cmath>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/inference/ensemble.hpp"
#include "teachformer/inference/sliding_window.hpp"

namespace teachformer::inference {
namespace {

namespace F = torch::nn::functional;
using V = std::vector<int64_t>;

WindowOutput feature(const std::string& name = "out", std::array<int64_t, 3> f = {1, 1, 1}) {
  return WindowOutput{name, f, OutputKind::Feature};
}

std::vector<torch::Tensor> identity(const torch::Tensor& x) { return {x.clone()}; }

TEST(SlidingWindow, IdentityReproducesTheImageAcrossSeams) {
  torch::manual_seed(1);
  struct Case {
    V size, roi;
  };
  const std::vector<Case> cases{
      {{20, 23, 17}, {8, 8, 8}},     // non-divisible sizes
      {{9, 6, 5}, {16, 12, 10}},     // image smaller than the roi in every dim
      {{23, 16, 30}, {10, 16, 12}},  // anisotropic roi, one dim exactly the roi
      {{7, 30, 12}, {12, 8, 4}},     // smaller in one dim only
  };
  int checked = 0;
  for (const auto& c : cases)
    for (double overlap : {0.0, 0.25, 0.5, 0.7})
      for (auto mode : {BlendMode::Constant, BlendMode::Gaussian})
        for (auto placement : {WindowPlacement::Monai, WindowPlacement::Even})
          for (int64_t sw : {1, 3}) {
            const auto image = torch::randn({2, c.size[0], c.size[1], c.size[2]});
            const auto opts = SlidingWindowOptions()
                                  .roi_size(c.roi)
                                  .overlap(overlap)
                                  .mode(mode)
                                  .placement(placement)
                                  .sw_batch_size(sw)
                                  .padding_value(5.0);
            const auto out = sliding_window_inference(image, {identity}, {feature()}, opts).at("out");
            ASSERT_EQ(out.sizes(), image.sizes());
            EXPECT_TRUE(torch::allclose(out, image, 1e-5, 1e-6))
                << "size " << c.size << " roi " << c.roi << " overlap " << overlap << " mode " << to_string(mode)
                << " placement " << to_string(placement) << " max diff " << (out - image).abs().max().item<float>();
            ++checked;
          }
  EXPECT_EQ(checked, 4 * 4 * 2 * 2 * 2);
}

// Blends per-window constants by the importance map, by brute force over the plan (double precision).
torch::Tensor reference_blend(const WindowPlan& plan, const std::vector<double>& per_window, const torch::Tensor& imp,
                              const V& size) {
  const auto& a = plan.axes;
  auto num = torch::zeros({a[0].padded_size, a[1].padded_size, a[2].padded_size}, torch::kDouble);
  auto den = torch::zeros_like(num);
  const auto imp64 = imp.to(torch::kDouble);
  for (int64_t w = 0; w < plan.count(); ++w) {
    const auto o = plan.origin(w);
    using torch::indexing::Slice;
    const std::vector<torch::indexing::TensorIndex> idx{
        Slice(o[0], o[0] + plan.roi[0]), Slice(o[1], o[1] + plan.roi[1]), Slice(o[2], o[2] + plan.roi[2])};
    num.index_put_(idx, num.index(idx) + imp64 * per_window[w]);
    den.index_put_(idx, den.index(idx) + imp64);
  }
  using torch::indexing::Slice;
  return (num / den).index({Slice(a[0].pad_before, a[0].pad_before + size[0]),
                            Slice(a[1].pad_before, a[1].pad_before + size[1]),
                            Slice(a[2].pad_before, a[2].pad_before + size[2])});
}

TEST(SlidingWindow, BlendsWindowsWithTheImportanceMapWeights) {
  // Each window answers one constant (the mean of its input); the result must be the importance-weighted mean
  // of the constants of the windows covering each voxel.
  torch::manual_seed(2);
  const V size{21, 14, 19};
  const V roi{8, 10, 6};
  const auto image = torch::rand({1, size[0], size[1], size[2]});
  for (auto mode : {BlendMode::Constant, BlendMode::Gaussian}) {
    const auto opts = SlidingWindowOptions().roi_size(roi).overlap(0.6).mode(mode).sigma_scale(0.2);
    auto window_mean = [](const torch::Tensor& x) {
      return std::vector<torch::Tensor>{x.mean({1, 2, 3, 4}, true).expand_as(x).clone()};
    };
    const auto out = sliding_window_inference(image, {window_mean}, {feature()}, opts).at("out");
    const auto plan = plan_windows(size, roi, 0.6);
    std::vector<double> means;
    for (int64_t w = 0; w < plan.count(); ++w) {
      const auto o = plan.origin(w);
      means.push_back(
          image[0].narrow(0, o[0], roi[0]).narrow(1, o[1], roi[1]).narrow(2, o[2], roi[2]).mean().item<double>());
    }
    const auto expected = reference_blend(plan, means, importance_map(roi, mode, 0.2), size);
    EXPECT_TRUE(torch::allclose(out[0].to(torch::kDouble), expected, 1e-5, 1e-6)) << to_string(mode);
    // The blend is not trivially constant: windows disagree.
    EXPECT_GT((out.max() - out.min()).item<double>(), 1e-3);
  }
}

TEST(SlidingWindow, PaddingValueFillsVoxelsOutsideSmallImages) {
  // Image 2 x 3 x 4 in a 4 x 4 x 4 window: the window mean is (sum + pad * padded voxels) / 64.
  const auto image = torch::arange(24, torch::kFloat).view({1, 2, 3, 4});
  auto window_mean = [](const torch::Tensor& x) {
    return std::vector<torch::Tensor>{x.mean({2, 3, 4}, true).expand_as(x).clone()};
  };
  const auto opts = SlidingWindowOptions().roi_size({4, 4, 4}).padding_value(-2.0);
  const auto out = sliding_window_inference(image, {window_mean}, {feature()}, opts).at("out");
  const double expected = (276.0 + -2.0 * (64 - 24)) / 64.0;
  EXPECT_TRUE(torch::allclose(out, torch::full({1, 2, 3, 4}, expected))) << out;
}

TEST(SlidingWindow, SegmentationOutputsAccumulateProbabilitiesOrLogits) {
  torch::manual_seed(3);
  const auto image = torch::randn({3, 13, 11, 18}) * 3;
  const auto opts = SlidingWindowOptions().roi_size({8, 8, 8}).overlap(0.5);
  const auto probs = sliding_window_inference(image, identity, opts);
  EXPECT_TRUE(torch::allclose(probs, torch::softmax(image, 0), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(probs.sum(0), torch::ones({13, 11, 18}), 1e-5, 1e-5));
  const auto logits =
      sliding_window_inference(image, identity, SlidingWindowOptions(opts).accumulate(Accumulate::Logits));
  EXPECT_TRUE(torch::allclose(logits, image, 1e-5, 1e-5));
}

TEST(SlidingWindow, BatchedImagesEqualOneByOne) {
  torch::manual_seed(4);
  const auto images = torch::randn({2, 2, 10, 12, 9});
  auto f = [](const torch::Tensor& x) { return std::vector<torch::Tensor>{x * x.mean({1, 2, 3, 4}, true)}; };
  const auto opts = SlidingWindowOptions().roi_size({6, 6, 6}).sw_batch_size(4);
  const auto both = sliding_window_inference(images, {f}, {feature()}, opts);
  ASSERT_EQ(both.at("out").sizes().vec(), (V{2, 2, 10, 12, 9}));
  for (int64_t b = 0; b < 2; ++b) {
    const auto one = sliding_window_inference(images[b], {f}, {feature()}, opts).at("out");
    EXPECT_TRUE(torch::allclose(both.at("out")[b], one, 1e-6, 1e-6));
  }
}

TEST(SlidingWindow, DownsampledOutputEqualsDirectPooling) {
  torch::manual_seed(5);
  // 37 and 44 are not multiples of 8: the grid is padded at the end and the last cell covers some padding.
  const auto image = torch::randn({2, 40, 37, 44});
  auto two_outputs = [](const torch::Tensor& x) {
    return std::vector<torch::Tensor>{x.clone(), F::avg_pool3d(x, F::AvgPool3dFuncOptions(8))};
  };
  for (auto mode : {BlendMode::Constant, BlendMode::Gaussian}) {
    const double overlap = mode == BlendMode::Constant ? 0.5 : 0.7;
    const auto opts = SlidingWindowOptions().roi_size({16, 24, 16}).overlap(overlap).mode(mode).sw_batch_size(2);
    const auto r =
        sliding_window_inference(image, {two_outputs}, {feature("full"), feature("coarse", {8, 8, 8})}, opts);
    EXPECT_TRUE(torch::allclose(r.at("full"), image, 1e-5, 1e-6));
    const auto& coarse = r.at("coarse");
    ASSERT_EQ(coarse.sizes().vec(), (V{2, 5, 5, 6}));
    // Exact where the pooling cells lie inside the image ...
    const auto direct = F::avg_pool3d(image.unsqueeze(0), F::AvgPool3dFuncOptions(8)).squeeze(0);  // [2, 5, 4, 5]
    EXPECT_TRUE(torch::allclose(coarse.narrow(2, 0, 4).narrow(3, 0, 5), direct, 1e-5, 1e-6));
    // ... and the border cells equal pooling over the image padded with zeros at the end.
    const auto padded = torch::constant_pad_nd(image, {0, 4, 0, 3, 0, 0}, 0.0);
    const auto direct_padded = F::avg_pool3d(padded.unsqueeze(0), F::AvgPool3dFuncOptions(8)).squeeze(0);
    EXPECT_TRUE(torch::allclose(coarse, direct_padded, 1e-5, 1e-6)) << to_string(mode) << " " << overlap;
  }
}

TEST(SlidingWindow, AnisotropicDownsamplingAndSmallImageLandOnTheirGrid) {
  torch::manual_seed(6);
  const auto image = torch::randn({1, 12, 20, 5});
  auto pooled = [](const torch::Tensor& x) {
    return std::vector<torch::Tensor>{F::avg_pool3d(x, F::AvgPool3dFuncOptions({1, 2, 4}))};
  };
  // roi X = 16 > 5: padding 11 puts floor(11 / 8) * 4 = 4 voxels before the image (a multiple of the factor
  // 4) and 7 after; the result keeps the ceil(5 / 4) = 2 cells starting at cell 1.
  const auto opts = SlidingWindowOptions().roi_size({4, 8, 16}).overlap(0.5);
  const auto out = sliding_window_inference(image, {pooled}, {feature("p", {1, 2, 4})}, opts).at("p");
  ASSERT_EQ(out.sizes().vec(), (V{1, 12, 10, 2}));
  const auto padded = torch::constant_pad_nd(image, {4, 7, 0, 0, 0, 0}, 0.0);
  const auto direct = F::avg_pool3d(padded.unsqueeze(0), F::AvgPool3dFuncOptions({1, 2, 4})).squeeze(0);
  EXPECT_TRUE(torch::allclose(out, direct.narrow(3, 1, 2), 1e-5, 1e-6));
}

TEST(SlidingWindow, MirroringWithFlipEquivariantFunctionEqualsNoMirroring) {
  torch::manual_seed(7);
  // A 3x3x3 convolution with a kernel symmetric under every flip commutes with mirroring.
  auto kernel = torch::rand({2, 2, 3, 3, 3});
  kernel = (kernel + kernel.flip({2}) + kernel.flip({3}) + kernel.flip({4}) + kernel.flip({2, 3}) +
            kernel.flip({2, 4}) + kernel.flip({3, 4}) + kernel.flip({2, 3, 4}));
  auto conv = [kernel](const torch::Tensor& x) {
    return std::vector<torch::Tensor>{F::conv3d(x, kernel, F::Conv3dFuncOptions().padding(1))};
  };
  const auto image = torch::randn({2, 14, 17, 12});
  const auto opts = SlidingWindowOptions().roi_size({8, 8, 8}).overlap(0.25);
  const auto plain = sliding_window_inference(image, conv, opts);
  const auto mirrored =
      sliding_window_inference(image, {conv}, {WindowOutput{}}, SlidingWindowOptions(opts).mirror_axes({0, 1, 2}));
  EXPECT_EQ(mirrored.function_calls, 8 * mirrored.windows);
  EXPECT_TRUE(torch::allclose(mirrored.at("logits"), plain, 1e-5, 1e-6));
}

TEST(SlidingWindow, MirroringUndoesEachFlipOnTheOutputs) {
  // f adds a ramp 0..r-1 along the window's Z: mirrored along Z it adds the reversed ramp, so the average of
  // the two passes adds (r - 1) / 2 everywhere. A missing flip-back would leave the ramp.
  torch::manual_seed(8);
  const auto image = torch::randn({1, 16, 10, 12});
  auto ramp_z = [](const torch::Tensor& x) {
    const auto ramp = torch::arange(x.size(2), x.options()).view({1, 1, -1, 1, 1});
    return std::vector<torch::Tensor>{x + ramp};
  };
  const auto opts = SlidingWindowOptions().roi_size({8, 10, 6}).overlap(0.5).mirror_axes({0});
  const auto out = sliding_window_inference(image, {ramp_z}, {feature()}, opts).at("out");
  EXPECT_TRUE(torch::allclose(out, image + 3.5, 1e-5, 1e-5));
  // Mirroring only X leaves the Z ramp in place: blended ramps are not constant.
  const auto x_only =
      sliding_window_inference(image, {ramp_z}, {feature()}, SlidingWindowOptions(opts).mirror_axes({2})).at("out");
  EXPECT_GT((x_only - image - 3.5).abs().max().item<double>(), 0.5);
}

TEST(SlidingWindow, MirrorCombinationsListEverySubsetOnce) {
  const auto all = mirror_combinations({0, 1, 2});
  ASSERT_EQ(all.size(), 8u);
  EXPECT_TRUE(all.front().empty());
  std::set<std::vector<int64_t>> unique(all.begin(), all.end());
  EXPECT_EQ(unique.size(), 8u);
  EXPECT_EQ(mirror_combinations({}).size(), 1u);
  EXPECT_EQ(mirror_combinations({2}), (std::vector<std::vector<int64_t>>{{}, {2}}));
}

TEST(SlidingWindow, EnsembleIsTheMeanOfMembers) {
  torch::manual_seed(9);
  const auto image = torch::randn({2, 11, 9, 13});
  auto twice = [](const torch::Tensor& x) { return std::vector<torch::Tensor>{2 * x}; };
  auto plus_one = [](const torch::Tensor& x) { return std::vector<torch::Tensor>{x + 1}; };
  const auto opts = SlidingWindowOptions().roi_size({6, 6, 6});
  const auto mean = sliding_window_inference(image, {twice, plus_one}, {feature()}, opts);
  EXPECT_TRUE(torch::allclose(mean.at("out"), 1.5 * image + 0.5, 1e-5, 1e-5));
  // Probabilities: the mean of the members' softmaxes (not the softmax of the mean logits).
  const auto probs = sliding_window_inference(image, {twice, plus_one}, {WindowOutput{}}, opts).at("logits");
  const auto expected = (torch::softmax(2 * image, 0) + torch::softmax(image + 1, 0)) / 2;
  EXPECT_TRUE(torch::allclose(probs, expected, 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(probs, torch::softmax(1.5 * image + 0.5, 0), 1e-3, 1e-3));
  // Sequential members through RunningMean give the same result.
  RunningMean running;
  for (const WindowFunction& f : std::vector<WindowFunction>{twice, plus_one})
    running.add(sliding_window_inference(image, {f}, {WindowOutput{}}, opts));
  EXPECT_EQ(running.count(), 2);
  EXPECT_TRUE(torch::allclose(running.finish().at("logits"), probs, 1e-5, 1e-6));
}

TEST(SlidingWindow, Float16OutputHoldsTheSameValues) {
  torch::manual_seed(10);
  const auto image = torch::randn({2, 9, 9, 9});
  const auto opts = SlidingWindowOptions().roi_size({6, 6, 6});
  const auto full = sliding_window_inference(image, identity, opts);
  const auto half = sliding_window_inference(image, identity, SlidingWindowOptions(opts).output_dtype(torch::kHalf));
  EXPECT_EQ(half.scalar_type(), torch::kHalf);
  EXPECT_TRUE(torch::allclose(half.to(torch::kFloat), full, 1e-3, 1e-3));
}

TEST(SlidingWindow, BatchesWindowsUpToSwBatchSizeAndReportsProgress) {
  const auto image = torch::randn({1, 20, 20, 20});
  std::vector<int64_t> batch_sizes;
  auto record = [&batch_sizes](const torch::Tensor& x) {
    batch_sizes.push_back(x.size(0));
    return std::vector<torch::Tensor>{x.clone()};
  };
  std::vector<std::pair<int64_t, int64_t>> progress;
  const auto r = sliding_window_inference(image, {record}, {feature()},
                                          SlidingWindowOptions().roi_size({10, 10, 10}).overlap(0.5).sw_batch_size(4),
                                          [&](int64_t done, int64_t total) { progress.emplace_back(done, total); });
  EXPECT_EQ(r.windows, 27);
  EXPECT_EQ(batch_sizes, (V{4, 4, 4, 4, 4, 4, 3}));
  ASSERT_EQ(progress.size(), 7u);
  EXPECT_EQ(progress.back(), (std::pair<int64_t, int64_t>{27, 27}));
  EXPECT_EQ(progress.front().first, 4);
}

TEST(SlidingWindow, ModelDeviceAndStitchDeviceAreHonoured) {
  // CPU only here: the window batch arrives on options.device and outputs are stitched on stitch_device.
  const auto image = torch::randn({1, 8, 8, 8});
  auto check_device = [](const torch::Tensor& x) {
    EXPECT_EQ(x.device(), torch::Device(torch::kCPU));
    return std::vector<torch::Tensor>{x.clone()};
  };
  const auto r =
      sliding_window_inference(image, {check_device}, {feature()}, SlidingWindowOptions().roi_size({4, 4, 4}));
  EXPECT_EQ(r.at("out").device(), torch::Device(torch::kCPU));
}

TEST(SlidingWindow, WrongFunctionOutputsAreNamedInTheError) {
  const auto image = torch::randn({1, 8, 8, 8});
  const auto opts = SlidingWindowOptions().roi_size({4, 4, 4});
  auto expect_message = [&](const WindowFunction& f, const std::vector<WindowOutput>& outs, const std::string& part) {
    try {
      sliding_window_inference(image, {f}, outs, opts);
      ADD_FAILURE() << "no error, expected " << part;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_message(identity, {feature("a"), feature("b")}, "returned 1 tensors, expected 2");
  expect_message([](const torch::Tensor& x) { return std::vector<torch::Tensor>{x.narrow(2, 0, 2)}; }, {feature("seg")},
                 "output 'seg' has shape [1, 1, 2, 4, 4], expected [1, C, 4, 4, 4]");
  expect_message(identity, {feature("c", {3, 1, 1})}, "downsample [3, 1, 1] must be >= 1 and divide roi_size");
  expect_message(identity, {feature("x"), feature("x")}, "declared twice");
  int calls = 0;
  auto changing = [&calls](const torch::Tensor& x) {
    return std::vector<torch::Tensor>{++calls == 1 ? x.clone() : torch::cat({x, x}, 1)};
  };
  expect_message(changing, {feature("ch")}, "has 2 channels, but earlier windows had 1");
  EXPECT_THROW(sliding_window_inference(torch::randn({8, 8, 8}), identity, opts), InvalidArgument);
  EXPECT_THROW(sliding_window_inference(image, {}, {feature()}, opts), InvalidArgument);
  EXPECT_THROW(sliding_window_inference(image, {WindowFunction{}}, {feature()}, opts), InvalidArgument);
}

TEST(SlidingWindowOptions, ValidationNamesTheOption) {
  auto expect_message = [](const SlidingWindowOptions& o, const std::string& part) {
    try {
      validate(o);
      ADD_FAILURE() << "no error, expected " << part;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_message(SlidingWindowOptions().overlap(1.0), "overlap must be in [0, 1)");
  expect_message(SlidingWindowOptions().roi_size({96, 96}), "roi_size must have 3 values");
  expect_message(SlidingWindowOptions().roi_size({96, 0, 96}), "dim 1 is 0");
  expect_message(SlidingWindowOptions().sw_batch_size(0), "sw_batch_size must be >= 1");
  expect_message(SlidingWindowOptions().sigma_scale(0), "sigma_scale must be > 0");
  expect_message(SlidingWindowOptions().mirror_axes({0, 3}), "got 3");
  expect_message(SlidingWindowOptions().mirror_axes({1, 1}), "repeats axis 1");
  expect_message(SlidingWindowOptions().output_dtype(torch::kDouble), "output_dtype must be float32 or float16");
  EXPECT_NO_THROW(validate(SlidingWindowOptions()));
}

TEST(SlidingWindowOptions, JsonRoundTripAndStrictKeys) {
  const auto opts = SlidingWindowOptions()
                        .roi_size({64, 128, 32})
                        .overlap(0.25)
                        .sw_batch_size(4)
                        .mode(BlendMode::Constant)
                        .sigma_scale(0.25)
                        .placement(WindowPlacement::Even)
                        .padding_value(-1)
                        .accumulate(Accumulate::Logits)
                        .mirror_axes({0, 2})
                        .output_dtype(torch::kHalf);
  const nlohmann::json j = opts;
  EXPECT_EQ(j["mode"], "constant");
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["output_dtype"], "float16");
  const auto back = j.get<SlidingWindowOptions>();
  EXPECT_EQ(nlohmann::json(back), j);
  EXPECT_EQ(back.roi_size(), (V{64, 128, 32}));
  EXPECT_EQ(back.placement(), WindowPlacement::Even);
  EXPECT_EQ(back.accumulate(), Accumulate::Logits);
  EXPECT_EQ(back.mirror_axes(), (V{0, 2}));
  const auto defaults = nlohmann::json::object().get<SlidingWindowOptions>();
  EXPECT_EQ(defaults.roi_size(), (V{96, 96, 96}));
  EXPECT_EQ(defaults.overlap(), 0.5);
  EXPECT_EQ(defaults.mode(), BlendMode::Gaussian);
  auto expect_config_error = [](const nlohmann::json& bad, const std::string& part) {
    try {
      bad.get<SlidingWindowOptions>();
      ADD_FAILURE() << "accepted " << bad.dump();
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_config_error({{"roi", {96, 96, 96}}}, "roi_size");
  expect_config_error({{"overlap", 1.5}}, "overlap must be in [0, 1)");
  expect_config_error({{"mode", "gauss"}}, "\"gauss\"");
  expect_config_error({{"accumulate", "probs"}}, "\"probs\"");
  expect_config_error({{"device", "tpu"}}, "device");
  expect_config_error({{"output_dtype", "bfloat16"}}, "\"bfloat16\"");
  expect_config_error({{"overlap", "half"}}, "overlap");
}

}  // namespace
}  // namespace teachformer::inference
