#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loss_reference.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/losses/focal.hpp"

namespace teachformer::losses {
namespace {

torch::Tensor quarter_logits() {
  const double l3 = std::log(3.0);
  return torch::tensor({0.0, 0.0, l3, l3, l3, l3, 0.0, 0.0}, torch::kDouble).view({1, 2, 4, 1, 1}).to(torch::kFloat);
}
torch::Tensor quarter_labels() { return torch::tensor({1, 1, 0, 1}, torch::kUInt8).view({1, 1, 4, 1, 1}); }

TEST(FocalLoss, HDenseFormerVariantMatchesHandComputedSum) {
  // p_true = 0.75 (x3), 0.25: sum of -log(p)(1-p)^2 = 3 ln(4/3) / 16 + ln 4 * 9 / 16.
  const double expected = 3 * std::log(4.0 / 3.0) * 0.0625 + std::log(4.0) * 0.5625;
  const auto loss = focal_loss(quarter_logits(), quarter_labels(), FocalLossOptions().reduction(Reduction::Sum));
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6);
  const auto mean = focal_loss(quarter_logits(), quarter_labels());
  EXPECT_NEAR(mean.item<double>(), expected / 4.0, 1e-6);
}

TEST(FocalLoss, AlphaWeightsTheTrueClass) {
  // alpha (0.25, 0.75): voxels of class 1 weigh 0.75, the class-0 voxel 0.25.
  const double expected =
      0.75 * 2 * std::log(4.0 / 3.0) * 0.0625 + 0.25 * std::log(4.0 / 3.0) * 0.0625 + 0.75 * std::log(4.0) * 0.5625;
  const auto loss =
      focal_loss(quarter_logits(), quarter_labels(), FocalLossOptions().alpha({0.25, 0.75}).reduction(Reduction::Sum));
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6);
}

TEST(FocalLoss, MatchesLoopReferenceForSeveralGammas) {
  torch::manual_seed(6);
  const auto logits = torch::randn({2, 3, 2, 3, 4}) * 2;
  const auto labels = torch::randint(0, 3, {2, 1, 2, 3, 4}, torch::kUInt8);
  const test::Plain plain(logits, labels);
  for (double gamma : {0.0, 0.5, 2.0, 3.0})
    for (bool sum : {false, true}) {
      const std::vector<double> alpha{0.2, 1.0, 2.0};
      const auto opts = FocalLossOptions().gamma(gamma).alpha(alpha).reduction(sum ? Reduction::Sum : Reduction::Mean);
      EXPECT_NEAR(focal_loss(logits, labels, opts).item<double>(), test::reference_focal(plain, gamma, alpha, sum),
                  1e-4 * (sum ? 10 : 1))
          << "gamma " << gamma << " sum " << sum;
    }
}

TEST(FocalLoss, GammaZeroEqualsCrossEntropyMean) {
  torch::manual_seed(7);
  const auto logits = torch::randn({1, 2, 3, 3, 3});
  const auto labels = torch::randint(0, 2, {1, 1, 3, 3, 3}, torch::kUInt8);
  const test::Plain plain(logits, labels);
  EXPECT_NEAR(focal_loss(logits, labels, FocalLossOptions().gamma(0)).item<double>(), test::reference_ce(plain, {}),
              1e-5);
}

TEST(FocalLoss, PerfectPredictionGivesZeroAndGradientsStayFinite) {
  auto labels = torch::zeros({1, 1, 2, 2, 2}, torch::kLong);
  labels.view(-1)[3] = 1;
  auto logits =
      (torch::one_hot(labels.squeeze(1), 2).permute({0, 4, 1, 2, 3}).to(torch::kFloat) * 40.0).set_requires_grad(true);
  const auto loss = focal_loss(logits, labels, FocalLossOptions().reduction(Reduction::Sum));
  EXPECT_LT(loss.item<double>(), 1e-12);
  loss.backward();
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
}

TEST(FocalLoss, ExtremeLogitsStayFinite) {
  // Wrong with enormous confidence: log_softmax keeps the loss finite (no log(0)).
  auto logits = torch::tensor({200.0f, -200.0f}).view({1, 2, 1, 1, 1}).set_requires_grad(true);
  const auto labels = torch::ones({1, 1, 1, 1, 1}, torch::kUInt8);
  const auto loss = focal_loss(logits, labels);
  EXPECT_NEAR(loss.item<double>(), 400.0, 1e-2);
  loss.backward();
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
}

TEST(FocalLoss, OptionsJsonRoundTripAndChecks) {
  const nlohmann::json j = FocalLossOptions().gamma(1.5).alpha({0.25, 0.75}).reduction(Reduction::Sum);
  EXPECT_EQ(j["reduction"], "sum");
  const auto back = j.get<FocalLossOptions>();
  EXPECT_EQ(back.gamma(), 1.5);
  EXPECT_EQ(back.alpha(), (std::vector<double>{0.25, 0.75}));
  EXPECT_EQ(back.reduction(), Reduction::Sum);
  try {
    nlohmann::json({{"reduction", "avg"}}).get<FocalLossOptions>();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("\"avg\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(nlohmann::json({{"gamma", -1}}).get<FocalLossOptions>(), ConfigError);
  EXPECT_THROW(FocalLoss(FocalLossOptions().gamma(-0.5)), InvalidArgument);
  EXPECT_THROW(focal_loss(quarter_logits(), quarter_labels(), FocalLossOptions().alpha({1, 1, 1})), InvalidArgument);
}

}  // namespace
}  // namespace teachformer::losses
