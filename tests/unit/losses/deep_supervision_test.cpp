#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/losses/cross_entropy.hpp"
#include "teachformer/losses/deep_supervision.hpp"
#include "teachformer/losses/dice_ce.hpp"

namespace teachformer::losses {
namespace {

TEST(DeepSupervision, DefaultWeightsAreHalvingAndNormalised) {
  const auto w = deep_supervision_weights(DeepSupervisionOptions(), 4);
  ASSERT_EQ(w.size(), 4u);
  const double s = 1 + 0.5 + 0.25 + 0.125;
  EXPECT_DOUBLE_EQ(w[0], 1 / s);
  EXPECT_DOUBLE_EQ(w[1], 0.5 / s);
  EXPECT_DOUBLE_EQ(w[2], 0.25 / s);
  EXPECT_DOUBLE_EQ(w[3], 0.125 / s);
  EXPECT_EQ(deep_supervision_weights(DeepSupervisionOptions().normalize(false), 3),
            (std::vector<double>{1, 0.5, 0.25}));
  EXPECT_EQ(deep_supervision_weights(DeepSupervisionOptions().weights({2, 2}), 2), (std::vector<double>{0.5, 0.5}));
  EXPECT_THROW(deep_supervision_weights(DeepSupervisionOptions().weights({1, 1}), 3), InvalidArgument);
}

TEST(DeepSupervision, DownsampleLabelsPicksNearestByIntegerRule) {
  // 1-D along X: values 0..7; size 8 -> 4 reads indices 0, 2, 4, 6; 8 -> 3 reads floor(j * 8 / 3) = 0, 2, 5.
  const auto t = torch::arange(8, torch::kLong).view({1, 1, 1, 1, 8});
  const auto half = downsample_labels(t, {1, 1, 4});
  EXPECT_TRUE(torch::equal(half.flatten(), torch::tensor({0, 2, 4, 6}, torch::kLong)));
  const auto third = downsample_labels(t, {1, 1, 3});
  EXPECT_TRUE(torch::equal(third.flatten(), torch::tensor({0, 2, 5}, torch::kLong)));
  // uint8 keeps its dtype and a matching size returns the same tensor.
  const auto u = torch::randint(0, 3, {2, 1, 4, 6, 8}, torch::kUInt8);
  const auto d = downsample_labels(u, {2, 3, 4});
  EXPECT_EQ(d.scalar_type(), torch::kUInt8);
  EXPECT_EQ(d.sizes().vec(), (std::vector<int64_t>{2, 1, 2, 3, 4}));
  EXPECT_TRUE(
      torch::equal(d, u.index({torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(0, 4, 2),
                               torch::indexing::Slice(0, 6, 2), torch::indexing::Slice(0, 8, 2)})));
  EXPECT_TRUE(downsample_labels(u, {4, 6, 8}).is_same(u));
  EXPECT_THROW(downsample_labels(u, {8, 6, 8}), InvalidArgument);
}

TEST(DeepSupervision, TotalIsWeightedSumOverLevelsWithDownsampledTargets) {
  torch::manual_seed(11);
  const auto target = torch::randint(0, 3, {2, 1, 8, 8, 8}, torch::kUInt8);
  const std::vector<torch::Tensor> outputs{torch::randn({2, 3, 8, 8, 8}), torch::randn({2, 3, 4, 4, 4}),
                                           torch::randn({2, 3, 2, 2, 2})};
  auto inner = std::make_shared<DiceCELoss>();
  DeepSupervisionLoss ds(inner, DeepSupervisionOptions().normalize(false));
  const auto out = ds.compute(outputs, target);
  using torch::indexing::Slice;
  double expected = 0, expected_ce = 0;
  const double w[] = {1.0, 0.5, 0.25};
  for (int i = 0; i < 3; ++i) {
    const int64_t step = int64_t(1) << i;
    // Nearest downsampling by an integer factor f keeps every f-th voxel starting at 0.
    const auto t = target.index({Slice(), Slice(), Slice(0, 8, step), Slice(0, 8, step), Slice(0, 8, step)});
    const auto level = inner->compute(outputs[i], t);
    expected += w[i] * level.total.item<double>();
    expected_ce += w[i] * level.term("ce").item<double>();
    EXPECT_NEAR(out.term("level" + std::to_string(i)).item<double>(), level.total.item<double>(), 1e-6);
  }
  EXPECT_NEAR(out.total.item<double>(), expected, 1e-5);
  EXPECT_NEAR(out.term("ce").item<double>(), expected_ce, 1e-5);
  EXPECT_EQ(out.term_names(), (std::vector<std::string>{"dice", "ce", "level0", "level1", "level2"}));
}

TEST(DeepSupervision, NormalisedWeightsOfIdenticalLevelsReproduceOneLevel) {
  // Every output predicts the target perfectly-upsampled... use constant logits so each level has the same CE.
  const auto target = torch::zeros({1, 1, 4, 4, 4}, torch::kUInt8);
  const std::vector<torch::Tensor> outputs{torch::zeros({1, 2, 4, 4, 4}), torch::zeros({1, 2, 2, 2, 2})};
  DeepSupervisionLoss ds(std::make_shared<CrossEntropyLoss>());
  EXPECT_NEAR(ds.compute(outputs, target).total.item<double>(), std::log(2.0), 1e-6);
}

TEST(DeepSupervision, GradientsReachEveryWeightedOutput) {
  torch::manual_seed(12);
  const auto target = torch::randint(0, 2, {1, 1, 4, 4, 4}, torch::kUInt8);
  std::vector<torch::Tensor> outputs{torch::randn({1, 2, 4, 4, 4}, torch::requires_grad()),
                                     torch::randn({1, 2, 2, 2, 2}, torch::requires_grad()),
                                     torch::randn({1, 2, 1, 1, 1}, torch::requires_grad())};
  DeepSupervisionLoss ds(std::make_shared<DiceCELoss>(), DeepSupervisionOptions().weights({1, 0.5, 0}));
  const auto out = ds.compute(outputs, target);
  out.total.backward();
  EXPECT_TRUE(torch::isfinite(outputs[0].grad()).all().item<bool>());
  EXPECT_GT(outputs[1].grad().abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(outputs[2].grad().defined());  // weight 0: not part of the graph, still logged
  EXPECT_TRUE(out.has_term("level2"));
}

TEST(DeepSupervision, RejectsMismatchedOutputsAndBadOptions) {
  const auto target = torch::zeros({1, 1, 4, 4, 4}, torch::kUInt8);
  DeepSupervisionLoss ds(std::make_shared<CrossEntropyLoss>());
  EXPECT_THROW(ds.compute({torch::zeros({1, 2, 4, 4})}, target), InvalidArgument);
  EXPECT_THROW(ds.compute({torch::zeros({1, 2, 8, 8, 8})}, target), InvalidArgument);
  EXPECT_THROW(DeepSupervisionLoss(nullptr), InvalidArgument);
  EXPECT_THROW(DeepSupervisionLoss(std::make_shared<CrossEntropyLoss>(), DeepSupervisionOptions().weights({-1})),
               InvalidArgument);
  const nlohmann::json j = DeepSupervisionOptions().weights({1, 0.5}).normalize(false);
  const auto back = j.get<DeepSupervisionOptions>();
  EXPECT_EQ(back.weights(), (std::vector<double>{1, 0.5}));
  EXPECT_FALSE(back.normalize());
  EXPECT_THROW(nlohmann::json({{"weight", {1}}}).get<DeepSupervisionOptions>(), ConfigError);
}

}  // namespace
}  // namespace teachformer::losses
