#include "teachformer/report/experiment_folder.hpp"

#include <fstream>

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "test_support.hpp"

namespace teachformer::report {
namespace {

namespace fs = std::filesystem;

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A predictions folder with a summary.json in nnU-Net's layout.
void write_summary(const fs::path& dir, const std::map<std::string, double>& dice) {
  Json cases = Json::array();
  for (const auto& [id, d] : dice)
    cases.push_back({{"case_id", id}, {"metrics", {{"1", {{"Dice", d}, {"HD95", 2.0}}}, {"2", {{"Dice", d / 2}, {"HD95", 4.0}}}}}});
  fs::create_directories(dir);
  write_json(dir / "summary.json", {{"metric_per_case", cases}});
}

TEST(ExperimentFolder, TodaysLayoutTakesModelsFromResultsCsv) {
  test::TempDir d;
  const fs::path root = d / "exp";
  write_text(root / "results.csv", "model,role,dice\nunetr,teacher,0.8\nstudent:teachformer,student,0.85\n");
  write_text(root / "eval" / "labels" / "B.nii.gz", "");
  write_text(root / "eval" / "labels" / "A.nii.gz", "");
  const auto f = read_experiment_folder(root);
  EXPECT_EQ(f.kind, SourceKind::Experiment);
  ASSERT_EQ(f.seeds, std::vector<std::string>{""});
  ASSERT_EQ(f.models.size(), 2u);
  EXPECT_EQ(f.models[1].name, "student:teachformer");
  EXPECT_EQ(f.models[1].role, "student");
  EXPECT_EQ(f.models[1].model_dirs[0], fs::canonical(root) / "models" / "student_teachformer");
  EXPECT_EQ(f.models[1].prediction_dirs[0], fs::canonical(root) / "predictions" / "student_teachformer");
  ASSERT_EQ(f.cases.size(), 2u);
  EXPECT_EQ(f.cases[0].id, "A");
  EXPECT_TRUE(f.cases[0].label.has_value());
  EXPECT_TRUE(f.cases[0].channel_files.empty());  // no scan found: the viewer shows what exists
}

TEST(ExperimentFolder, SeedLayoutTakesModelsFromResultsJson) {
  test::TempDir d;
  const fs::path root = d / "exp";
  fs::create_directories(root / "seed_10" / "models");
  fs::create_directories(root / "seed_2" / "models");
  write_json(root / "results.json",
             {{"experiment", {{"preset", "demo"}, {"seeds", {2, 10}}, {"fold", 1}}},
              {"rows", {{{"name", "hdenseformer"}, {"role", "teacher"}, {"dice_mean", 0.8}},
                        {{"name", "student:at"}, {"role", "student"}, {"dice_mean", 0.7}}}}});
  const auto f = read_experiment_folder(root);
  EXPECT_EQ(f.seeds, (std::vector<std::string>{"2", "10"}));  // numeric order
  EXPECT_EQ(f.fold, 1);
  ASSERT_EQ(f.models.size(), 2u);
  EXPECT_EQ(f.models[1].folder, "student_at");
  EXPECT_EQ(f.models[1].model_dirs[1], fs::canonical(root) / "seed_10" / "models" / "student_at");
  EXPECT_EQ(f.models[0].prediction_dirs[0], fs::canonical(root) / "seed_2" / "predictions" / "hdenseformer");
}

TEST(ExperimentFolder, PredictionsFolderNeedsMatchingReferences) {
  test::TempDir d;
  write_text(d / "preds" / "A.nii.gz", "");
  write_text(d / "preds" / "B.nii.gz", "");
  write_text(d / "ref" / "A.nii.gz", "");
  const auto f = read_experiment_folder(d / "preds", d / "ref");
  EXPECT_EQ(f.kind, SourceKind::Predictions);
  ASSERT_EQ(f.cases.size(), 1u);
  EXPECT_EQ(f.cases[0].id, "A");
  try {
    read_experiment_folder(d / "preds", d / "preds" / "missing");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
}

TEST(ExperimentFolder, AnythingElseIsAnErrorNamingTheFolder) {
  test::TempDir d;
  try {
    read_experiment_folder(d.path());
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(d.path().string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--ref"), std::string::npos) << e.what();
  }
}

TEST(ExperimentFolder, CsvRowsMustMatchTheHeader) {
  test::TempDir d;
  write_text(d / "r.csv", "a,b\n1,2\n3\n");
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  try {
    read_csv(d / "r.csv", header, rows);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
  }
  write_text(d / "ok.csv", "a,b,c\n1,,3\n");
  read_csv(d / "ok.csv", header, rows);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"1", "", "3"}));
}

TEST(ExperimentFolder, PerCaseMetricsAverageTheLabels) {
  test::TempDir d;
  write_summary(d / "p", {{"A", 0.8}, {"B", 0.4}});
  const auto m = per_case_metrics(d / "p");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_DOUBLE_EQ(m.at("A").at("Dice"), 0.6);
  EXPECT_DOUBLE_EQ(m.at("B").at("HD95"), 3.0);
  EXPECT_TRUE(per_case_metrics(d / "none").empty());
}

}  // namespace
}  // namespace teachformer::report
