#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/losses/loss_breakdown.hpp"
#include "teachformer/losses/loss_factory.hpp"
#include "teachformer/losses/segmentation_loss.hpp"

namespace teachformer::losses {
namespace {

TEST(LossBreakdown, KeepsTermsInOrderAndRejectsDuplicates) {
  LossBreakdown b;
  b.total = torch::tensor(1.5);
  b.add_term("dice", torch::tensor(0.5));
  b.add_term("ce", torch::tensor(1.0));
  EXPECT_EQ(b.term_names(), (std::vector<std::string>{"dice", "ce"}));
  EXPECT_THROW(b.add_term("dice", torch::tensor(0.1)), InvalidArgument);
  EXPECT_THROW(b.add_term("vector", torch::ones({2})), InvalidArgument);
  try {
    b.term("kd");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("[dice, ce]"), std::string::npos) << e.what();
  }
  const auto v = b.values();
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].first, "total");
  EXPECT_DOUBLE_EQ(v[0].second, 1.5);
  EXPECT_EQ(b.summary(), "total 1.5 dice 0.5 ce 1");
  LossBreakdown outer;
  outer.append_terms(b, "seg.");
  EXPECT_EQ(outer.term_names(), (std::vector<std::string>{"seg.dice", "seg.ce"}));
}

TEST(ClassIndices, ChecksShapesTypesAndLabelRange) {
  const auto logits = torch::zeros({2, 3, 4, 4, 4});
  EXPECT_EQ(class_indices(logits, torch::zeros({2, 1, 4, 4, 4}, torch::kUInt8), "t").sizes().vec(),
            (std::vector<int64_t>{2, 4, 4, 4}));
  EXPECT_EQ(class_indices(logits, torch::zeros({2, 4, 4, 4}, torch::kLong), "t").scalar_type(), torch::kLong);
  auto expect_message = [&](const torch::Tensor& z, const torch::Tensor& y, const std::string& part) {
    try {
      class_indices(z, y, "Dice loss");
      ADD_FAILURE() << "no error for " << part;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("Dice loss: ", 0), 0u) << e.what();
    }
  };
  auto bad = torch::zeros({2, 1, 4, 4, 4}, torch::kUInt8);
  bad.view(-1)[5] = 7;
  expect_message(logits, bad, "got 7");
  expect_message(logits, torch::zeros({2, 1, 4, 4, 3}, torch::kUInt8), "does not match logits");
  expect_message(logits, torch::zeros({2, 3, 4, 4, 4}, torch::kFloat), "integer label map");
  expect_message(logits, torch::zeros({2, 3, 4, 4, 4}, torch::kUInt8), "one-hot targets are not accepted");
  expect_message(torch::zeros({2, 1, 4, 4, 4}), torch::zeros({2, 1, 4, 4, 4}, torch::kUInt8), "C >= 2");
  expect_message(torch::zeros({2, 3, 4, 4, 4}, torch::kLong), torch::zeros({2, 1, 4, 4, 4}, torch::kUInt8),
                 "floating point");
  expect_message(logits, -torch::ones({2, 1, 4, 4, 4}, torch::kLong), "got -1");
}

TEST(LossFactory, BuildsEveryTypeAndRoundTripsConfig) {
  for (const auto& type : loss_types()) {
    const auto loss = make_loss({{"type", type}});
    ASSERT_NE(loss, nullptr);
    EXPECT_EQ(loss->name(), type);
    const auto again = make_loss(loss->config());
    EXPECT_EQ(again->config(), loss->config());
  }
  const auto focal = make_loss({{"type", "focal"}, {"gamma", 3}, {"reduction", "sum"}});
  EXPECT_EQ(focal->config()["gamma"], 3.0);
  EXPECT_EQ(focal->config()["reduction"], "sum");
}

TEST(LossFactory, UnknownTypeOrKeyIsConfigError) {
  try {
    make_loss({{"type", "dicece"}});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("dice_ce"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_loss({{"gamma", 2}}), ConfigError);
  EXPECT_THROW(make_loss({{"type", "focal"}, {"gama", 2}}), ConfigError);
  EXPECT_THROW(make_loss({{"type", "dice_ce"}, {"lambda_ce", -1}}), ConfigError);
  EXPECT_THROW(make_loss(nlohmann::json::array()), ConfigError);
}

}  // namespace
}  // namespace teachformer::losses
