#include "teachformer/pipeline/experiment.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "teachformer/core/error.hpp"

namespace teachformer::pipeline {
namespace {

TEST(TeacherWeights, SoftmaxOfValidationDiceScaledToMeanOne) {
  const auto w = teacher_weights_from_validation({0.80, 0.75, 0.80}, 0.02);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_NEAR(w[0] + w[1] + w[2], 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(w[0], w[2]);
  // 0.05 Dice worse at tau 0.02: exp(-2.5) times the weight of the best.
  EXPECT_NEAR(w[1] / w[0], std::exp(-2.5), 1e-12);
  // Teachers 0.005 apart count nearly the same.
  const auto close = teacher_weights_from_validation({0.889, 0.894}, 0.02);
  EXPECT_NEAR(close[1] / close[0], std::exp(0.25), 1e-9);
}

TEST(TeacherWeights, EqualWithoutATemperatureOrADice) {
  EXPECT_EQ(teacher_weights_from_validation({0.9, 0.5}, 0.0), (std::vector<double>{1.0, 1.0}));
  EXPECT_EQ(teacher_weights_from_validation({0.9}, 0.02), (std::vector<double>{1.0}));
  EXPECT_EQ(teacher_weights_from_validation({0.9, -1.0}, 0.02), (std::vector<double>{1.0, 1.0}));
  EXPECT_EQ(teacher_weights_from_validation({0.9, std::numeric_limits<double>::quiet_NaN()}, 0.02),
            (std::vector<double>{1.0, 1.0}));
  EXPECT_THROW(teacher_weights_from_validation({0.9, 0.8}, -0.1), InvalidArgument);
}

}  // namespace
}  // namespace teachformer::pipeline
