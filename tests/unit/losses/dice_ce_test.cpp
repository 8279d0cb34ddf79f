#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loss_reference.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/losses/dice_ce.hpp"

namespace teachformer::losses {
namespace {

TEST(DiceCELoss, TotalIsWeightedSumAndTermsAreUnweighted) {
  torch::manual_seed(8);
  const auto logits = torch::randn({2, 3, 3, 3, 3});
  const auto labels = torch::randint(0, 3, {2, 1, 3, 3, 3}, torch::kUInt8);
  const test::Plain plain(logits, labels);
  const double dice = test::reference_dice(plain, false, false, 1e-5, 1e-5);
  const double ce = test::reference_ce(plain, {});
  DiceCELoss loss(DiceCELossOptions().lambda_dice(0.7).lambda_ce(2.0));
  const auto out = loss.compute(logits, labels);
  ASSERT_EQ(out.term_names(), (std::vector<std::string>{"dice", "ce"}));
  EXPECT_NEAR(out.term("dice").item<double>(), dice, 1e-5);
  EXPECT_NEAR(out.term("ce").item<double>(), ce, 1e-5);
  EXPECT_NEAR(out.total.item<double>(), 0.7 * dice + 2.0 * ce, 1e-5);
}

TEST(DiceCELoss, NestedOptionsReachTheirLosses) {
  torch::manual_seed(9);
  const auto logits = torch::randn({2, 2, 2, 3, 3});
  const auto labels = torch::randint(0, 2, {2, 1, 2, 3, 3}, torch::kLong);
  const test::Plain plain(logits, labels);
  const auto j = nlohmann::json::parse(R"({"dice": {"batch_dice": true, "include_background": true},
                                           "ce": {"class_weights": [1, 4]}, "lambda_dice": 0.5})");
  DiceCELoss loss(j.get<DiceCELossOptions>());
  const auto out = loss.compute(logits, labels);
  EXPECT_NEAR(out.term("dice").item<double>(), test::reference_dice(plain, true, true, 1e-5, 1e-5), 1e-5);
  EXPECT_NEAR(out.term("ce").item<double>(), test::reference_ce(plain, {1, 4}), 1e-5);
  const auto round = loss.config();
  EXPECT_EQ(round["type"], "dice_ce");
  EXPECT_EQ(round["lambda_dice"], 0.5);
  EXPECT_EQ(round["dice"]["batch_dice"], true);
}

TEST(DiceCELoss, GradientsAreFinite) {
  torch::manual_seed(10);
  auto logits = torch::randn({1, 3, 4, 4, 4}, torch::requires_grad());
  const auto labels = torch::randint(0, 3, {1, 1, 4, 4, 4}, torch::kUInt8);
  DiceCELoss()(logits, labels).backward();
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
}

TEST(DiceCELoss, RejectsInvalidLambdas) {
  EXPECT_THROW(DiceCELoss(DiceCELossOptions().lambda_ce(-1)), InvalidArgument);
  EXPECT_THROW(DiceCELoss(DiceCELossOptions().lambda_ce(0).lambda_dice(0)), InvalidArgument);
  EXPECT_THROW(DiceCELoss(DiceCELossOptions().dice(DiceLossOptions().smooth_dr(-1))), InvalidArgument);
  EXPECT_THROW(nlohmann::json({{"lambda_dice", -2}}).get<DiceCELossOptions>(), ConfigError);
  EXPECT_THROW(nlohmann::json({{"dice", {{"smoth_nr", 1}}}}).get<DiceCELossOptions>(), ConfigError);
}

}  // namespace
}  // namespace teachformer::losses
