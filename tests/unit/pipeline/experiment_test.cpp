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

TEST(StudentVariants, TeachformerKlIsTheStagedStrategyWithKlAloneTheOthersTheDefaultKd) {
  bool found = false;
  for (const auto& v : student_variants()) {
    if (v.name == "teachformer_kl") {
      found = true;
      EXPECT_EQ(v.strategy, "teachformer");
      EXPECT_EQ(v.distill_config, nlohmann::json({{"kd_dice", 0.0}}));
      EXPECT_NE(v.terms.find("KL only"), std::string::npos) << v.terms;
    } else {
      EXPECT_FALSE(v.distill_config.contains("kd_dice")) << v.name;
    }
  }
  EXPECT_TRUE(found);
}

TEST(CustomStudent, ParsesNameAndDistillConfig) {
  const auto v = custom_student_variant(R"(kd4={"strategy": "hinton", "temperature": 4})");
  EXPECT_EQ(v.name, "kd4");
  EXPECT_TRUE(v.strategy.empty());  // the strategy travels in the config
  EXPECT_EQ(v.distill_config.at("strategy"), "hinton");
  EXPECT_EQ(v.distill_config.at("temperature"), 4);
  EXPECT_EQ(v.terms, "gt+kd, T=4");
  EXPECT_FALSE(v.single_teacher);

  const auto staged = custom_student_variant(
      R"(two_stage={"strategy": {"stages": [{"name": "a", "fraction": 1, "weights": {"gt": 1, "attn_fine": 1}},
         {"name": "b", "fraction": 1, "weights": {"gt": 1, "kd": 2}}]}, "single_teacher": true})");
  EXPECT_TRUE(staged.single_teacher);
  EXPECT_FALSE(staged.distill_config.contains("single_teacher"));
  EXPECT_EQ(staged.terms, "gt+kd+fine, staged, best teacher only");

  const auto sharp = custom_student_variant(R"(sharp={"teacher_val_tau": 0.005})");
  ASSERT_TRUE(sharp.teacher_val_tau.has_value());
  EXPECT_DOUBLE_EQ(*sharp.teacher_val_tau, 0.005);
  EXPECT_FALSE(sharp.distill_config.contains("teacher_val_tau"));
  EXPECT_EQ(sharp.terms, "gt+kd+coarse+fine, staged, teacher tau 0.005");
  EXPECT_FALSE(custom_student_variant(R"(plain={})").teacher_val_tau.has_value());

  const auto more = custom_student_variant(R"(u_kd={"strategy": "hinton", "unlabelled": true})");
  EXPECT_TRUE(more.unlabelled);
  EXPECT_FALSE(more.distill_config.contains("unlabelled"));
  EXPECT_EQ(more.terms, "gt+kd, + unlabelled cases");
  EXPECT_FALSE(custom_student_variant(R"(plain={})").unlabelled);

  // The form of prediction KD is named where it is not the default (KL + Dice x1).
  EXPECT_EQ(custom_student_variant(R"(kl={"strategy": "hinton", "kd_dice": 0})").terms, "gt+kd (kd KL only)");
  EXPECT_EQ(custom_student_variant(R"(d2={"strategy": "hinton", "kd_dice": 2})").terms, "gt+kd (kd with Dice x2)");
  EXPECT_EQ(custom_student_variant(R"(d1={"strategy": "hinton", "kd_dice": 1})").terms, "gt+kd");
  EXPECT_EQ(custom_student_variant(R"(a0={"strategy": "at", "kd_dice": 0})").terms, "gt+coarse+fine");

  const auto named = custom_student_variant(R"(x-1={"learns_from": "my words"})");
  EXPECT_EQ(named.terms, "my words");
  EXPECT_EQ(named.distill_config.at("strategy"), "teachformer");  // the default strategy
  EXPECT_FALSE(named.distill_config.contains("learns_from"));
}

TEST(CustomStudent, RefusesWhatCannotBeTrainedWithOneLineNamingTheStudent) {
  auto message = [](const std::string& spec) {
    try {
      custom_student_variant(spec);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("kd4").find("expected NAME=JSON"), std::string::npos);
  EXPECT_NE(message("=" "{}").find("expected NAME=JSON"), std::string::npos);
  EXPECT_NE(message("a b={}").find("letters, digits"), std::string::npos);
  EXPECT_NE(message("hinton={}").find("built-in student"), std::string::npos);
  EXPECT_NE(message("s={not json").find("'s'"), std::string::npos);
  EXPECT_NE(message("s=[1]").find("JSON object"), std::string::npos);
  EXPECT_NE(message(R"(s={"temprature": 2})").find("temprature"), std::string::npos);
  EXPECT_NE(message(R"(s={"single_teachr": true})").find("single_teacher, teacher_val_tau, unlabelled"),
            std::string::npos);
  EXPECT_NE(message(R"(s={"unlabelled": "yes"})").find("unlabelled must be"), std::string::npos);
  EXPECT_NE(message(R"(s={"strategy": "student_alone"})").find("no teacher term"), std::string::npos);
  EXPECT_NE(message(R"(s={"single_teacher": 1})").find("single_teacher must be"), std::string::npos);
  EXPECT_NE(message(R"(s={"teacher_val_tau": -1})").find("teacher_val_tau must be"), std::string::npos);
  EXPECT_NE(message("s=/nonexistent/student.json").find("/nonexistent/student.json"), std::string::npos);
  for (const char* spec : {"kd4", "hinton={}", R"(s={"temprature": 2})"})
    EXPECT_EQ(message(spec).find('\n'), std::string::npos) << spec;
}

}  // namespace
}  // namespace teachformer::pipeline
