#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loss_reference.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/losses/dice.hpp"

namespace teachformer::losses {
namespace {

// One sample, 4 voxels, 2 classes; logit difference ln 3 gives p1 = 0.75 or 0.25 exactly.
torch::Tensor quarter_logits() {
  const double l3 = std::log(3.0);
  return torch::tensor({0.0, 0.0, l3, l3, l3, l3, 0.0, 0.0}, torch::kDouble).view({1, 2, 4, 1, 1}).to(torch::kFloat);
}
torch::Tensor quarter_labels() { return torch::tensor({1, 1, 0, 1}, torch::kUInt8).view({1, 1, 4, 1, 1}); }

TEST(DiceLoss, MatchesHandComputedValueWithoutBackground) {
  // foreground: intersection 0.75 + 0.75 + 0.25 = 1.75, sum p = 2, sum y = 3 -> dice = 3.5 / 5 = 0.7.
  const auto loss = dice_loss(quarter_logits(), quarter_labels(), DiceLossOptions().smooth_nr(0).smooth_dr(0));
  EXPECT_NEAR(loss.item<double>(), 0.3, 1e-6);
}

TEST(DiceLoss, IncludeBackgroundAveragesBothClasses) {
  // background: intersection 0.75, sum p = 2, sum y = 1 -> dice 0.5; mean of losses (0.5 + 0.3) / 2.
  const auto loss = dice_loss(quarter_logits(), quarter_labels(),
                              DiceLossOptions().include_background(true).smooth_nr(0).smooth_dr(0));
  EXPECT_NEAR(loss.item<double>(), 0.4, 1e-6);
}

TEST(DiceLoss, SmoothingEntersNumeratorAndDenominator) {
  const auto loss = dice_loss(quarter_logits(), quarter_labels(), DiceLossOptions().smooth_nr(1.0).smooth_dr(2.0));
  EXPECT_NEAR(loss.item<double>(), 1.0 - (3.5 + 1.0) / (5.0 + 2.0), 1e-6);
}

TEST(DiceLoss, MatchesLoopReferenceForEveryOptionCombination) {
  torch::manual_seed(3);
  const auto logits = torch::randn({2, 3, 3, 2, 4}) * 2;
  const auto labels = torch::randint(0, 3, {2, 1, 3, 2, 4}, torch::kLong);
  const test::Plain plain(logits, labels);
  for (bool bg : {false, true})
    for (bool batch : {false, true}) {
      const auto opts = DiceLossOptions().include_background(bg).batch_dice(batch).smooth_nr(1e-3).smooth_dr(2e-3);
      EXPECT_NEAR(dice_loss(logits, labels, opts).item<double>(), test::reference_dice(plain, bg, batch, 1e-3, 2e-3),
                  1e-5)
          << "include_background " << bg << " batch_dice " << batch;
    }
}

TEST(DiceLoss, BatchDiceDiffersFromPerSampleDice) {
  // Sample 0 has no foreground, sample 1 has it everywhere: per-sample Dice punishes the empty sample's
  // small false positives far more than batch Dice does.
  auto logits = torch::zeros({2, 2, 2, 2, 2});
  logits.select(1, 1).fill_(-3.0);
  logits[1].select(0, 1).fill_(3.0);
  auto labels = torch::zeros({2, 1, 2, 2, 2}, torch::kUInt8);
  labels[1].fill_(1);
  const auto per_sample = dice_loss(logits, labels).item<double>();
  const auto batch = dice_loss(logits, labels, DiceLossOptions().batch_dice(true)).item<double>();
  EXPECT_GT(per_sample, 0.45);
  EXPECT_LT(batch, 0.1);
}

TEST(DiceLoss, PerfectPredictionGivesNearZeroLoss) {
  auto labels = torch::zeros({1, 1, 4, 4, 4}, torch::kLong);
  labels.narrow(2, 1, 2).fill_(1);
  labels.narrow(3, 0, 1).fill_(2);
  const auto logits = torch::one_hot(labels.squeeze(1), 3).permute({0, 4, 1, 2, 3}).to(torch::kFloat) * 30.0;
  for (bool bg : {false, true}) {
    const auto loss = dice_loss(logits, labels, DiceLossOptions().include_background(bg));
    EXPECT_LT(loss.item<double>(), 1e-6) << "include_background " << bg;
  }
}

TEST(DiceLoss, AbsentClassPredictedAbsentCountsAsPerfect) {
  // Class 2 is neither present nor predicted: its Dice is smooth_nr / smooth_dr = 1.
  auto labels = torch::zeros({1, 1, 2, 2, 2}, torch::kUInt8);
  labels.view(-1)[0] = 1;
  auto logits = torch::full({1, 3, 2, 2, 2}, -40.0);
  logits.select(1, 0).fill_(40.0);
  logits.view({3, -1})[1][0] = 80.0;
  EXPECT_LT(dice_loss(logits, labels).item<double>(), 1e-6);
}

TEST(DiceLoss, GradientsAreFiniteAndNonZero) {
  torch::manual_seed(1);
  auto logits = torch::randn({2, 3, 4, 4, 4}, torch::requires_grad());
  const auto labels = torch::randint(0, 3, {2, 1, 4, 4, 4}, torch::kUInt8);
  dice_loss(logits, labels, DiceLossOptions().batch_dice(true)).backward();
  ASSERT_TRUE(logits.grad().defined());
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
  EXPECT_GT(logits.grad().abs().sum().item<double>(), 0.0);
}

TEST(DiceLoss, HalfLogitsAreComputedInFloat32) {
  torch::manual_seed(2);
  const auto logits = torch::randn({1, 2, 3, 3, 3});
  const auto labels = torch::randint(0, 2, {1, 1, 3, 3, 3}, torch::kUInt8);
  const auto full = dice_loss(logits, labels);
  const auto half = dice_loss(logits.to(torch::kHalf), labels);
  EXPECT_EQ(half.scalar_type(), torch::kFloat);
  EXPECT_NEAR(full.item<double>(), half.item<double>(), 1e-3);
}

TEST(DiceLoss, ClassAsSegmentationLossReportsDiceTerm) {
  DiceLoss loss(DiceLossOptions().smooth_nr(0).smooth_dr(0));
  const auto out = loss.compute(quarter_logits(), quarter_labels());
  ASSERT_EQ(out.term_names(), std::vector<std::string>{"dice"});
  EXPECT_NEAR(out.total.item<double>(), 0.3, 1e-6);
  EXPECT_NEAR(loss(quarter_logits(), quarter_labels()).item<double>(), 0.3, 1e-6);
  EXPECT_EQ(loss.config()["type"], "dice");
}

TEST(DiceLoss, OptionsRoundTripThroughJsonAndRejectUnknownKeys) {
  const auto opts = DiceLossOptions().include_background(true).batch_dice(true).smooth_nr(0.5).smooth_dr(0.25);
  const nlohmann::json j = opts;
  const auto back = j.get<DiceLossOptions>();
  EXPECT_TRUE(back.include_background());
  EXPECT_TRUE(back.batch_dice());
  EXPECT_EQ(back.smooth_nr(), 0.5);
  EXPECT_EQ(back.smooth_dr(), 0.25);
  try {
    nlohmann::json({{"include_backgroud", true}}).get<DiceLossOptions>();
    FAIL() << "unknown key accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("include_backgroud"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("include_background"), std::string::npos);
  }
  EXPECT_THROW(nlohmann::json({{"smooth_dr", -1.0}}).get<DiceLossOptions>(), ConfigError);
}

}  // namespace
}  // namespace teachformer::losses
