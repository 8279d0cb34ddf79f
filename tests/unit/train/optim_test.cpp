// Optimisers and schedules: warm-up, poly and cosine values at given steps, the two weight-decay groups, the
// learning rate set on every group, JSON options, and the optimiser state as named tensors.
#include "teachformer/train/optim.hpp"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::train {
namespace {

NamedParameters named(torch::nn::Module& m) {
  NamedParameters params;
  for (const auto& p : m.named_parameters()) params.emplace_back(p.key(), p.value());
  return params;
}

TEST(Optim, ScheduleWarmsUpThenDecays) {
  ScheduleOptions s;
  s.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 1.0, 0, 100), 0.25);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 1.0, 3, 100), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 1.0, 4, 100), 1.0);
  EXPECT_NEAR(scheduled_lr(s, 1.0, 52, 100), std::pow(0.5, 0.9), 1e-12);
  s.name = "cosine";
  EXPECT_NEAR(scheduled_lr(s, 1.0, 52, 100), 0.5, 1e-12);
  EXPECT_THROW(schedule_options_from_json({{"name", "step"}}), ConfigError);
}

TEST(Optim, WarmUpIsLinearFromZeroToThePeak) {
  ScheduleOptions s;
  s.warmup_steps = 10;
  for (int64_t step = 0; step < 10; ++step)
    EXPECT_NEAR(scheduled_lr(s, 2e-3, step, 1000), 2e-3 * double(step + 1) / 10.0, 1e-15) << step;
}

TEST(Optim, PolyDecaysWithItsExponentToMinLr) {
  ScheduleOptions s;  // poly 0.9, no warm-up
  s.min_lr = 1e-5;
  const double peak = 1e-2;
  EXPECT_DOUBLE_EQ(scheduled_lr(s, peak, 0, 200), peak);
  EXPECT_NEAR(scheduled_lr(s, peak, 50, 200), 1e-5 + (peak - 1e-5) * std::pow(0.75, 0.9), 1e-15);
  EXPECT_NEAR(scheduled_lr(s, peak, 150, 200), 1e-5 + (peak - 1e-5) * std::pow(0.25, 0.9), 1e-15);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, peak, 200, 200), 1e-5);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, peak, 500, 200), 1e-5);  // past the end it stays at min_lr
  s.exponent = 1.0;
  s.min_lr = 0.0;
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 1.0, 30, 40), 0.25);
}

TEST(Optim, CosineFollowsHalfACosineAfterTheWarmUp) {
  ScheduleOptions s;
  s.name = "cosine";
  s.warmup_steps = 20;
  // Decay over 100 - 20 = 80 steps: a quarter of the way is (1 + cos(pi / 4)) / 2.
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 1.0, 20, 100), 1.0);
  EXPECT_NEAR(scheduled_lr(s, 1.0, 40, 100), 0.5 * (1.0 + std::cos(M_PI / 4.0)), 1e-12);
  EXPECT_NEAR(scheduled_lr(s, 1.0, 60, 100), 0.5, 1e-12);
  EXPECT_NEAR(scheduled_lr(s, 1.0, 100, 100), 0.0, 1e-12);
  s.name = "constant";
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.3, 99, 100), 0.3);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.3, 9, 100), 0.3 * 10.0 / 20.0);  // constant still warms up
}

TEST(Optim, WeightDecaySkipsBiasesAndNormsAndTheLrReachesEveryGroup) {
  torch::nn::Linear linear(3, 2);
  OptimizerOptions o;
  o.weight_decay = 0.05;
  auto opt = make_optimizer(named(*linear), o);
  ASSERT_EQ(opt->param_groups().size(), 2u);
  const auto& decay = static_cast<const torch::optim::AdamWOptions&>(opt->param_groups()[0].options());
  const auto& none = static_cast<const torch::optim::AdamWOptions&>(opt->param_groups()[1].options());
  EXPECT_EQ(opt->param_groups()[0].params().size(), 1u);  // the weight
  EXPECT_EQ(opt->param_groups()[1].params().size(), 1u);  // the bias
  EXPECT_DOUBLE_EQ(decay.weight_decay(), 0.05);
  EXPECT_DOUBLE_EQ(none.weight_decay(), 0.0);
  set_learning_rate(*opt, 0.123);
  for (auto& g : opt->param_groups()) EXPECT_DOUBLE_EQ(g.options().get_lr(), 0.123);
}

TEST(Optim, SgdUsesNesterovMomentum) {
  torch::nn::Linear linear(3, 2);
  OptimizerOptions o;
  o.name = "sgd";
  auto opt = make_optimizer(named(*linear), o);
  const auto& g = static_cast<const torch::optim::SGDOptions&>(opt->param_groups()[0].options());
  EXPECT_DOUBLE_EQ(g.momentum(), 0.99);
  EXPECT_TRUE(g.nesterov());
}

TEST(Optim, OptionsRoundTripThroughJsonAndRejectBadValues) {
  OptimizerOptions o;
  o.name = "sgd";
  o.lr = 0.01;
  const OptimizerOptions back = optimizer_options_from_json(to_json(o));
  EXPECT_EQ(back.name, "sgd");
  EXPECT_DOUBLE_EQ(back.lr, 0.01);
  ScheduleOptions s;
  s.name = "cosine";
  s.warmup_steps = 7;
  EXPECT_EQ(to_json(schedule_options_from_json(to_json(s))), to_json(s));
  EXPECT_THROW(optimizer_options_from_json({{"name", "adam"}}), ConfigError);
  EXPECT_THROW(optimizer_options_from_json({{"lr", 0.0}}), ConfigError);
  EXPECT_THROW(optimizer_options_from_json({{"learning_rate", 0.1}}), ConfigError);  // unknown key
  EXPECT_THROW(schedule_options_from_json({{"warmup_steps", -1}}), ConfigError);
}

TEST(Optim, StateRoundTripsThroughNamedTensors) {
  for (const std::string name : {"adamw", "sgd"}) {
    torch::manual_seed(0);
    torch::nn::Sequential m(torch::nn::Linear(4, 3), torch::nn::LayerNorm(torch::nn::LayerNormOptions({3})));
    const NamedParameters params = named(*m);
    OptimizerOptions o;
    o.name = name;
    auto opt = make_optimizer(params, o);
    m->forward(torch::randn({5, 4})).pow(2).mean().backward();
    opt->step();
    const auto state = optimizer_state(*opt, params);
    EXPECT_FALSE(state.empty()) << name;
    auto opt2 = make_optimizer(params, o);
    load_optimizer_state(*opt2, params, state);
    const auto again = optimizer_state(*opt2, params);
    ASSERT_EQ(again.size(), state.size());
    for (const auto& [k, v] : state) EXPECT_TRUE(torch::equal(v, again.at(k))) << name << " " << k;
  }
}

TEST(Optim, StateOfAnotherShapeIsRejectedNamingTheParameter) {
  torch::nn::Linear a(4, 3), b(5, 3);
  OptimizerOptions o;
  auto opt_a = make_optimizer(named(*a), o);
  a->forward(torch::randn({2, 4})).sum().backward();
  opt_a->step();
  const auto state = optimizer_state(*opt_a, named(*a));
  auto opt_b = make_optimizer(named(*b), o);
  try {
    load_optimizer_state(*opt_b, named(*b), state);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer state for 'weight'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace teachformer::train
