#include "teachformer/distill/strategy.hpp"

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"

namespace teachformer::distill {
namespace {

TEST(Strategy, TeachFormerStagesSplitTheRunAndRampTheAttentionDown) {
  const Strategy s = strategy_preset("teachformer");
  EXPECT_EQ(s.boundaries(10), (std::vector<int64_t>{0, 2, 7, 10}));
  const int64_t spe = 4;
  auto w = s.weights_at(0, 10, spe);  // align stage: the labels keep their full weight
  EXPECT_DOUBLE_EQ(w[kTermGt], 1.0);
  EXPECT_DOUBLE_EQ(w[kTermKd], 0.0);
  EXPECT_DOUBLE_EQ(w[kTermAttnCoarse], 1.0);
  w = s.weights_at(5 * spe, 10, spe);  // joint
  EXPECT_DOUBLE_EQ(w[kTermGt], 1.0);
  EXPECT_DOUBLE_EQ(w[kTermKd], 1.0);
  // finetune: epochs 7..9 = steps 28..39; attention 1 -> 0 linearly
  EXPECT_DOUBLE_EQ(s.weights_at(28, 10, spe)[kTermAttnFine], 1.0);
  EXPECT_DOUBLE_EQ(s.weights_at(39, 10, spe)[kTermAttnFine], 0.0);
  EXPECT_NEAR(s.weights_at(28 + 11 / 2.0, 10, spe)[kTermAttnFine], 1.0 - 5.0 / 11.0, 1e-12);
  EXPECT_DOUBLE_EQ(s.weights_at(39, 10, spe)[kTermKd], 1.0);
  EXPECT_TRUE(s.needs_teachers());
}

TEST(Strategy, BaselinesUseOnlyTheirTerms) {
  EXPECT_FALSE(strategy_preset("student_alone").needs_teachers());
  EXPECT_TRUE(strategy_preset("hinton").uses(kTermKd));
  EXPECT_FALSE(strategy_preset("hinton").uses(kTermAttnCoarse));
  EXPECT_TRUE(strategy_preset("at").uses(kTermAttnFine));
  EXPECT_FALSE(strategy_preset("at").uses(kTermKd));
  const auto m = strategy_preset("multi_no_staging");
  EXPECT_EQ(m.stages.size(), 1u);
  EXPECT_DOUBLE_EQ(m.weights_at(99, 10, 10)[kTermAttnCoarse], 1.0);
  EXPECT_THROW(strategy_preset("best"), ConfigError);
}

TEST(Strategy, CustomJsonWithEpochsFractionsAndRampsRoundTrips) {
  const nlohmann::json j = {{"name", "mine"},
                            {"stages",
                             {{{"name", "warm"}, {"epochs", 1}, {"weights", {{"attn_coarse", 2.0}}}},
                              {{"name", "rest"}, {"fraction", 1.0}, {"weights", {{"gt", {{"from", 0.5}, {"to", 1.0}}}}}}}}};
  const Strategy s = strategy_from_json(j);
  EXPECT_EQ(s.boundaries(5), (std::vector<int64_t>{0, 1, 5}));
  EXPECT_DOUBLE_EQ(s.weights_at(0, 5, 2)[kTermAttnCoarse], 2.0);
  EXPECT_DOUBLE_EQ(s.weights_at(2, 5, 2)[kTermGt], 0.5);
  EXPECT_DOUBLE_EQ(s.weights_at(9, 5, 2)[kTermGt], 1.0);
  const Strategy back = strategy_from_json(to_json(s));
  EXPECT_EQ(back.boundaries(5), s.boundaries(5));
  EXPECT_DOUBLE_EQ(back.weights_at(5, 5, 2)[kTermGt], s.weights_at(5, 5, 2)[kTermGt]);
}

TEST(Strategy, InvalidJsonIsRejectedWithTheReason) {
  EXPECT_THROW(strategy_from_json({{"stages", nlohmann::json::array()}}), ConfigError);
  EXPECT_THROW(strategy_from_json({{"stages", {{{"weights", {{"attn_middle", 1}}}}}}}), ConfigError);
  EXPECT_THROW(strategy_from_json({{"stages", {{{"weights", {{"gt", -1}}}}}}}), ConfigError);
  EXPECT_THROW(strategy_from_json({{"stages", {{{"weights", {{"gt", 1}}}, {"length", 3}}}}}), ConfigError);
  // Out-of-range lengths and weights would overflow the stage arithmetic or the loss.
  EXPECT_THROW(strategy_from_json({{"stages", {{{"weights", {{"gt", 1}}}, {"epochs", 9223372036854775807LL}}}}}),
               ConfigError);
  EXPECT_THROW(strategy_from_json({{"stages", {{{"weights", {{"gt", 1}}}, {"epochs", -2}}}}}), ConfigError);
  EXPECT_THROW(strategy_from_json({{"stages", {{{"weights", {{"gt", 1}}}, {"fraction", 1e300}}}}}), ConfigError);
  EXPECT_THROW(strategy_from_json({{"stages", {{{"weights", {{"kd", {{"from", 1}, {"to", 1e9}}}}}}}}}), ConfigError);
}

}  // namespace
}  // namespace teachformer::distill
