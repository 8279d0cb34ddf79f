#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "loss_reference.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/losses/cross_entropy.hpp"

namespace teachformer::losses {
namespace {

torch::Tensor quarter_logits() {
  const double l3 = std::log(3.0);
  return torch::tensor({0.0, 0.0, l3, l3, l3, l3, 0.0, 0.0}, torch::kDouble).view({1, 2, 4, 1, 1}).to(torch::kFloat);
}
torch::Tensor quarter_labels() { return torch::tensor({1, 1, 0, 1}, torch::kUInt8).view({1, 1, 4, 1, 1}); }

TEST(CrossEntropyLoss, MatchesHandComputedValue) {
  // p_true = 0.75, 0.75, 0.75, 0.25 -> (3 ln(4/3) + ln 4) / 4.
  const double expected = (3 * std::log(4.0 / 3.0) + std::log(4.0)) / 4.0;
  EXPECT_NEAR(softmax_cross_entropy(quarter_logits(), quarter_labels()).item<double>(), expected, 1e-6);
}

TEST(CrossEntropyLoss, ClassWeightsGiveWeightedMean) {
  // labels 1, 1, 0, 1 with weights w = (2, 1) -> voxel weights 1, 1, 2, 1; -log p_true = ln(4/3) x3, ln 4.
  const double expected = (std::log(4.0 / 3.0) * (1 + 1 + 2) + std::log(4.0) * 1) / (1 + 1 + 2 + 1);
  const auto loss =
      softmax_cross_entropy(quarter_logits(), quarter_labels(), CrossEntropyLossOptions().class_weights({2.0, 1.0}));
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6);
}

TEST(CrossEntropyLoss, MatchesLoopReferenceOnRandomInput) {
  torch::manual_seed(4);
  const auto logits = torch::randn({2, 4, 3, 3, 2}) * 3;
  const auto labels = torch::randint(0, 4, {2, 1, 3, 3, 2}, torch::kLong);
  const test::Plain plain(logits, labels);
  EXPECT_NEAR(softmax_cross_entropy(logits, labels).item<double>(), test::reference_ce(plain, {}), 1e-5);
  const std::vector<double> w{0.1, 1.0, 3.0, 0.0};
  EXPECT_NEAR(softmax_cross_entropy(logits, labels, CrossEntropyLossOptions().class_weights(w)).item<double>(),
              test::reference_ce(plain, w), 1e-5);
}

TEST(CrossEntropyLoss, EveryLabelCountsWithoutIgnoreIndex) {
  // No ignore index: a map of only background still has a loss.
  const auto logits = torch::zeros({1, 2, 2, 2, 2});
  const auto labels = torch::zeros({1, 1, 2, 2, 2}, torch::kUInt8);
  EXPECT_NEAR(softmax_cross_entropy(logits, labels).item<double>(), std::log(2.0), 1e-6);
}

TEST(CrossEntropyLoss, GradientsAreFinite) {
  torch::manual_seed(5);
  auto logits = torch::randn({1, 3, 3, 3, 3}, torch::requires_grad());
  const auto labels = torch::randint(0, 3, {1, 1, 3, 3, 3}, torch::kUInt8);
  softmax_cross_entropy(logits, labels, CrossEntropyLossOptions().class_weights({1, 2, 3})).backward();
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
  EXPECT_GT(logits.grad().abs().sum().item<double>(), 0.0);
}

TEST(CrossEntropyLoss, RejectsBadWeightsAndShapes) {
  const auto logits = quarter_logits();
  const auto labels = quarter_labels();
  try {
    softmax_cross_entropy(logits, labels, CrossEntropyLossOptions().class_weights({1, 1, 1}));
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("class_weights has 3 values but the logits have C = 2"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(CrossEntropyLoss(CrossEntropyLossOptions().class_weights({-1, 1})), InvalidArgument);
  EXPECT_THROW(CrossEntropyLoss(CrossEntropyLossOptions().class_weights({0, 0})), InvalidArgument);
  EXPECT_THROW(nlohmann::json({{"class_weights", {1, -2}}}).get<CrossEntropyLossOptions>(), ConfigError);
  EXPECT_THROW(nlohmann::json({{"ignore_index", 0}}).get<CrossEntropyLossOptions>(), ConfigError);
}

TEST(CrossEntropyLoss, OptionsRoundTripThroughJson) {
  const nlohmann::json j = CrossEntropyLossOptions().class_weights({0.5, 2.0});
  EXPECT_EQ(j.get<CrossEntropyLossOptions>().class_weights(), (std::vector<double>{0.5, 2.0}));
  const CrossEntropyLoss loss(j.get<CrossEntropyLossOptions>());
  EXPECT_EQ(loss.config()["type"], "ce");
  EXPECT_EQ(loss.compute(quarter_logits(), quarter_labels()).term_names(), std::vector<std::string>{"ce"});
}

}  // namespace
}  // namespace teachformer::losses
