// train -> distill -> predict -> evaluate, end to end through the CLI at the tiny preset.
#include <fstream>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "teachformer/core/json.hpp"
#include "teachformer/io/image_io.hpp"
#include "test_support.hpp"

namespace teachformer::test {
namespace {

namespace fs = std::filesystem;

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

class Pipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const auto raw = *dir_ / "raw";
    auto r = run_cli("-q synth -o " + q(raw) + " --cases 6 --size 56,56,20 --bbox-mm 48 --seed 3");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_cli("-q preprocess " + q(raw) + " -o " + q(*dir_ / "pre") + " --target-spacing 1.5,1.5,1.5");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
};
TempDir* Pipeline::dir_ = nullptr;

TEST_F(Pipeline, TrainDistillPredictEvaluate) {
  const auto& d = *dir_;
  // A multimodal teacher and a PET-only teacher.
  auto r = run_cli("-q train -d " + q(d / "pre") + " -m unetr -f 0 --folds 3 --preset tiny -o " + q(d / "unetr"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("train: unetr"), std::string::npos) << r.output;
  r = run_cli("-q train -d " + q(d / "pre") + " -m hdenseformer -f 0 --folds 3 --preset tiny --channels PET -o " +
              q(d / "hdf_pet"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"config.json", "plan.json", "dataset.json", "splits_final.json", "fold_0/checkpoint_best.safetensors",
                        "fold_0/checkpoint_final.safetensors", "fold_0/log.jsonl"})
    EXPECT_TRUE(fs::exists(d / "unetr" / f)) << f;
  const auto cfg = read_json(d / "hdf_pet" / "config.json");
  EXPECT_EQ(cfg.at("channels"), nlohmann::json({"PET"}));
  EXPECT_EQ(cfg.at("options").at("in_channels"), 1);

  // Teach-Former student from both teachers through the cache.
  r = run_cli("-q distill -d " + q(d / "pre") + " --teacher " + q(d / "unetr") + " --teacher " + q(d / "hdf_pet") +
              " --teacher-weights 1,2 --preset tiny -o " + q(d / "student"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("teacher cache:"), std::string::npos) << r.output;
  const auto scfg = read_json(d / "student" / "config.json");
  EXPECT_EQ(scfg.at("teachers").size(), 2u);
  EXPECT_EQ(scfg.at("distill").at("strategy").at("name"), "teachformer");
  EXPECT_TRUE(fs::exists(d / "pre" / "teacher_cache"));
  // Every step logs its terms and weights.
  {
    std::ifstream in(d / "student" / "fold_0" / "log.jsonl");
    std::string line;
    bool seen = false;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line);
      if (j.at("type") != "step") continue;
      seen = true;
      for (const char* k : {"gt", "kd", "attn_coarse", "attn_fine", "weight.gt", "weight.attn_coarse"})
        EXPECT_TRUE(j.at("loss").contains(k)) << k << " in " << line;
    }
    EXPECT_TRUE(seen);
  }

  // Predict the raw cases: outputs on each case's CT grid, with its geometry.
  r = run_cli("-q predict -i " + q(d / "raw") + " -o " + q(d / "pred") + " -m " + q(d / "student"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const auto& e : fs::directory_iterator(d / "raw" / "hecktor_nii")) {
    const std::string name = e.path().filename().string();
    if (name.size() < 10 || name.substr(name.size() - 10) != "_ct.nii.gz") continue;
    const std::string id = name.substr(0, name.size() - 10);
    const auto ct = io::read_image_info(e.path());
    const auto pred = io::read_image_info(d / "pred" / (id + ".nii.gz"));
    EXPECT_EQ(pred.size, ct.size) << id;
    EXPECT_TRUE(pred.geometry.approx_equal(ct.geometry, 1e-4, 1e-6)) << id << ": " << pred.geometry.to_string()
                                                                      << " vs " << ct.geometry.to_string();
    EXPECT_EQ(pred.pixel_type, io::PixelType::UInt8);
  }
  // --continue skips finished cases.
  r = run_cli("predict -i " + q(d / "raw") + " -o " + q(d / "pred") + " -m " + q(d / "student") + " --continue");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("6 skipped"), std::string::npos) << r.output;
}

TEST_F(Pipeline, BadArgumentsGiveOneClearLine) {
  const auto& d = *dir_;
  auto r = run_cli("-q train -d " + q(d / "pre") + " -m unetr --preset tiny --channels MRI -o " + q(d / "x"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("channel 'MRI' is not in dataset"), std::string::npos) << r.output;
  r = run_cli("-q train -d " + q(d / "pre") + " -m unetrr --preset tiny -o " + q(d / "x"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("did you mean 'unetr'"), std::string::npos) << r.output;
  r = run_cli("-q distill -d " + q(d / "pre") + " --teacher " + q(d / "nope") + " --preset tiny -o " + q(d / "y"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;
  r = run_cli("-q distill -d " + q(d / "pre") + " --preset tiny -o " + q(d / "y"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("needs at least one --teacher"), std::string::npos) << r.output;
  r = run_cli("-q train -d " + q(d / "pre") + " -f seven -o " + q(d / "x"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("-f/--fold"), std::string::npos) << r.output;
  r = run_cli("-q train -d " + q(d / "pre") + " -c '{\"trainer\": {\"epochz\": 3}}' -o " + q(d / "x"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("epochz"), std::string::npos) << r.output;
}

TEST(Experiment, TinyPresetPrintsTheComparisonTable) {
  TempDir dir;
  const auto r = run_cli("-q experiment --preset tiny -o " + q(dir / "exp") +
                         " --teachers unetr --students teachformer,student_alone --cases 5 --test-cases 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* name : {"| unetr |", "| student:teachformer |", "| student:student_alone |", "Dice", "HD95"})
    EXPECT_NE(r.output.find(name), std::string::npos) << name << "\n" << r.output;
  EXPECT_TRUE(fs::exists(dir / "exp" / "results.md"));
  EXPECT_TRUE(fs::exists(dir / "exp" / "results.csv"));
  // Re-running resumes: nothing is retrained.
  const auto again = run_cli("experiment --preset tiny -o " + q(dir / "exp") +
                             " --teachers unetr --students teachformer,student_alone --cases 5 --test-cases 2");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output.find("train unetr"), std::string::npos) << again.output;
}

TEST(Experiment, MriPhantomsAreScoredWithThePicaiProtocol) {
  TempDir dir;
  const auto r = run_cli("-q experiment --preset tiny --kind mri -o " + q(dir / "exp") +
                         " --teachers unetr --students student_alone --cases 10 --test-cases 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* name : {"AUROC", "| AP |", "PI-CAI score", "| student:student_alone |"})
    EXPECT_NE(r.output.find(name), std::string::npos) << name << "\n" << r.output;
  // picai_eval's layout beside the detection maps of every held-out case.
  const auto metrics = read_json(dir / "exp" / "predictions" / "student_student_alone" / "metrics.json");
  for (const char* key : {"auroc", "AP", "score"}) EXPECT_TRUE(metrics.contains(key)) << key << ": " << metrics.dump();
  int maps = 0;
  for (const auto& e : fs::directory_iterator(dir / "exp" / "predictions" / "student_student_alone" / "detection"))
    maps += e.path().string().find(".nii.gz") != std::string::npos;
  EXPECT_EQ(maps, 3);
}

}  // namespace
}  // namespace teachformer::test
