#include "teachformer/report/report_data.hpp"

#include <fstream>

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/distill/strategy.hpp"
#include "test_support.hpp"

namespace teachformer::report {
namespace {

namespace fs = std::filesystem;

ExperimentFolder two_model_experiment() {
  ExperimentFolder f;
  f.kind = SourceKind::Experiment;
  f.seeds = {""};
  f.csv_header = {"model", "role", "dice", "hd95", "auroc", "hd95_undefined"};
  f.csv_rows = {{"unetr", "teacher", "0.851234", "3", "0", "0"}, {"student:x", "student", "0.86", "2.5", "0", "1"}};
  return f;
}

TEST(ReportTable, KeepsTheCsvTextAndHidesAllZeroOptionalColumns) {
  const Json t = table_json(two_model_experiment());
  std::vector<std::string> keys;
  for (const auto& c : t["columns"]) keys.push_back(c["key"]);
  EXPECT_EQ(keys, (std::vector<std::string>{"model", "role", "dice", "hd95", "hd95_undefined"}));
  EXPECT_EQ(t["rows"][0]["cells"]["dice"]["value"], "0.851234");
  EXPECT_EQ(t["columns"][2]["label"], "Dice (mean)");
  EXPECT_EQ(t["columns"][2]["digits"], 3);
}

TEST(ReportTable, SeedsAddTheSpreadAndThePairedDifference) {
  auto f = two_model_experiment();
  f.result_rows = Json::array({{{"name", "student:x"}, {"dice_sd", 0.012},
                                {"vs_student_alone", {{"diff", 0.01}, {"ci_low", -0.002}, {"ci_high", 0.03}, {"wilcoxon_p", 0.04}}}}});
  const Json t = table_json(f);
  EXPECT_EQ(t["columns"].back()["key"], "vs_student_alone");
  EXPECT_EQ(t["columns"].back()["source"], "extra");
  EXPECT_EQ(t["rows"][1]["cells"]["dice"]["spread"], "0.012");
  EXPECT_TRUE(t["rows"][0]["cells"]["dice"]["spread"].is_null());
  EXPECT_DOUBLE_EQ(t["rows"][1]["cells"]["vs_student_alone"]["p"].get<double>(), 0.04);
}

TEST(ReportTable, ExperimentWithoutResultsSaysHowToFinishIt) {
  ExperimentFolder f;
  f.root = "/tmp/somewhere";
  EXPECT_THROW(table_json(f), IoError);
}

TEST(PairedSummary, IsReproducibleAndBracketsTheMean) {
  const std::vector<double> d{0.01, 0.03, -0.02, 0.05, 0.02, 0.0, 0.04};
  const auto a = paired_summary(d), b = paired_summary(d);
  EXPECT_DOUBLE_EQ(a.ci_low, b.ci_low);
  EXPECT_DOUBLE_EQ(a.ci_high, b.ci_high);
  EXPECT_NEAR(a.mean, 0.13 / 7, 1e-12);
  EXPECT_LT(a.ci_low, a.mean);
  EXPECT_GT(a.ci_high, a.mean);
  EXPECT_EQ(a.n, 7);
  const auto same = paired_summary({0.02, 0.02, 0.02});
  EXPECT_DOUBLE_EQ(same.ci_low, 0.02);
  EXPECT_DOUBLE_EQ(same.ci_high, 0.02);
}

TEST(PairedDifferences, AreTakenCaseByCaseAgainstTheStudentAlone) {
  ExperimentFolder f;
  const Json per_case = Json::array({
      {{"model", "student:student_alone"}, {"role", "student"}, {"case", "A"}, {"seed", ""}, {"dice", 0.5}},
      {{"model", "student:student_alone"}, {"role", "student"}, {"case", "B"}, {"seed", ""}, {"dice", 0.7}},
      {{"model", "student:kd"}, {"role", "student"}, {"case", "A"}, {"seed", ""}, {"dice", 0.6}},
      {{"model", "student:kd"}, {"role", "student"}, {"case", "B"}, {"seed", ""}, {"dice", 0.6}},
      {{"model", "unetr"}, {"role", "teacher"}, {"case", "A"}, {"seed", ""}, {"dice", 0.9}},
  });
  const Json p = paired_json(f, per_case);
  ASSERT_EQ(p["rows"].size(), 2u);  // teachers are not compared
  EXPECT_NEAR(p["rows"][0]["diff"].get<double>(), 0.1, 1e-12);
  EXPECT_NEAR(p["rows"][1]["diff"].get<double>(), -0.1, 1e-12);
  EXPECT_NEAR(p["summary"][0]["mean"].get<double>(), 0.0, 1e-12);
  EXPECT_TRUE(paired_json(f, Json::array()).is_null());
}

TEST(TrainingCurves, StagesFromTheStrategyAndTheLastRecordOfAResumedStep) {
  test::TempDir d;
  const fs::path model = d / "student";
  fs::create_directories(model / "fold_0");
  write_json(model / "config.json", {{"kind", "distill"}, {"trainer", {{"epochs", 10}, {"steps_per_epoch", 2}}},
                                     {"distill", {{"strategy", distill::to_json(distill::strategy_preset("teachformer"))}}}});
  std::ofstream log(model / "fold_0" / "log.jsonl");
  log << R"({"type":"step","step":0,"epoch":0,"lr":0.01,"loss":{"gt":1.0,"kd":0.0,"kd.unetr":0.0,"weight.gt":0.1}})" << "\n"
      << R"({"type":"step","step":1,"epoch":0,"lr":0.01,"loss":{"gt":0.9,"kd":0.0,"weight.gt":0.1}})" << "\n"
      << R"({"type":"resume","step":1,"epoch":0})" << "\n"
      << R"({"type":"step","step":1,"epoch":0,"lr":0.01,"loss":{"gt":0.7,"kd":0.0,"weight.gt":0.1}})" << "\n"
      << R"({"type":"validation","step":2,"epoch":0,"mean_dice":0.4})" << "\n"
      << R"({"type":"st)" << "\n";  // a line cut by a kill
  log.close();
  ExperimentFolder f;
  f.seeds = {""};
  f.models.push_back({"student:teachformer", "student", "student_teachformer", {model}, {fs::path()}});
  const Json c = curves_json(f);
  std::map<std::string, std::vector<double>> series;
  for (const auto& p : c["points"]) series[p["panel"].get<std::string>() + "/" + p["series"].get<std::string>()].push_back(p["y"]);
  EXPECT_EQ(series["loss/gt"], (std::vector<double>{1.0, 0.7}));
  EXPECT_FALSE(series.count("loss/kd"));      // zero all along
  EXPECT_FALSE(series.count("loss/kd.unetr"));  // per-teacher parts stay in the log
  EXPECT_EQ(series["weight/gt"].size(), 2u);
  EXPECT_EQ(series["validation Dice/mean Dice"], (std::vector<double>{0.4}));
  ASSERT_EQ(c["stages"].size(), 3u);
  EXPECT_EQ(c["stages"][0]["stage"], "align");
  EXPECT_DOUBLE_EQ(c["stages"][0]["x0"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(c["stages"][2]["x1"].get<double>(), 10.0);
}

}  // namespace
}  // namespace teachformer::report
