// train -> distill -> predict -> evaluate, end to end through the CLI at the tiny preset.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

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

  // Unlabelled scans join each batch after its labelled samples (here the raw cases, whose labels are not read).
  r = run_cli("-q distill -d " + q(d / "pre") + " --teacher " + q(d / "unetr") + " --preset tiny --unlabelled " +
              q(d / "raw") + " --unlabelled-per-batch 1 -o " + q(d / "student_u"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto ucfg = read_json(d / "student_u" / "config.json");
  EXPECT_EQ(ucfg.at("unlabelled").at("cases"), 6);
  EXPECT_EQ(ucfg.at("unlabelled").at("per_batch"), 1);
  r = run_cli("-q distill -d " + q(d / "pre") + " --teacher " + q(d / "unetr") +
              " --preset tiny --unlabelled-per-batch 1 -o " + q(d / "student_v"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--unlabelled-per-batch needs --unlabelled DIR"), std::string::npos) << r.output;

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

TEST_F(Pipeline, QuantizeWritesAnInt8FolderThatPredictUses) {
  const auto& d = *dir_;
  auto r = run_cli("-q train -d " + q(d / "pre") + " -m teachformer_s -f 0 --folds 3 --preset tiny -o " +
                   q(d / "student_q"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // predict --precision int8 on a float32 folder says what to do.
  r = run_cli("-q predict -i " + q(d / "raw") + " -o " + q(d / "pred_bad") + " -m " + q(d / "student_q") +
              " --precision int8");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("teachformer quantize"), std::string::npos) << r.output;
  // The guard's thresholds are loose: a model trained for a few steps is not what it checks here.
  r = run_cli("-q quantize " + q(d / "student_q") + " --calibration 4 --max-dice-drop 1 --min-agreement 0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path out = d.path().string() + "/student_q_int8";
  EXPECT_NE(r.output.find("quantize: fold 0: 4 patches"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("foreground agreement"), std::string::npos) << r.output;
  const auto qj = read_json(out / "quantization.json");
  EXPECT_EQ(qj.at("precision"), "int8");
  EXPECT_EQ(qj.at("calibration").at("patches"), 4);
  const auto& fold = qj.at("folds").at("fold_0");
  EXPECT_GE(fold.at("layers").size(), 1u);
  EXPECT_EQ(fold.at("guard").at("cases").size(), 2u);  // 6 cases, 3 folds: fold 0 validates on 2
  for (const char* k : {"dice_fp32", "dice_int8", "foreground_agreement"})
    EXPECT_TRUE(fold.at("guard").at(k).is_number()) << k;
  for (const char* f : {"config.json", "plan.json", "dataset.json", "fold_0/checkpoint_best.safetensors"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  EXPECT_FALSE(fs::exists(out / "fold_0" / "checkpoint_latest.safetensors"));
  // No temporaries are left beside it; a second run refuses to overwrite, and a quantized folder is not re-quantized.
  for (const auto& e : fs::directory_iterator(d.path()))
    EXPECT_EQ(e.path().filename().string().rfind(".tmp-", 0), std::string::npos) << e.path();
  r = run_cli("-q quantize " + q(d / "student_q") + " --calibration 4");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
  r = run_cli("-q quantize " + q(out) + " -o " + q(d / "twice"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("already quantized"), std::string::npos) << r.output;
  // predict uses int8 by default on the quantized folder, fp32 when asked; both write every case.
  r = run_cli("predict -i " + q(d / "raw") + " -o " + q(d / "pred_int8") + " -m " + q(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("folds 1, int8"), std::string::npos) << r.output;
  r = run_cli("predict -i " + q(d / "raw") + " -o " + q(d / "pred_fp32") + " -m " + q(out) + " --precision fp32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("folds 1, fp32"), std::string::npos) << r.output;
  int64_t files = 0;
  for (const auto& e : fs::directory_iterator(d / "pred_int8")) files += e.path().extension() == ".gz";
  EXPECT_EQ(files, 6);
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

// The first step records of a model's log, by step: the digests of its batches.
std::vector<nlohmann::json> first_batches(const fs::path& log) {
  std::vector<nlohmann::json> out;
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("type") == "step" && j.contains("batch")) out.push_back(j.at("batch"));
  }
  return out;
}

TEST(Experiment, TinyPresetPrintsTheComparisonTableAndReusesOnlyWhatMatches) {
  TempDir dir;
  const std::string args = " --teachers unetr --students teachformer,student_alone --cases 5 --test-cases 2";
  const auto r = run_cli("-q experiment --preset tiny -o " + q(dir / "exp") + args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* name : {"| unetr |", "| student:teachformer |", "| student:student_alone |", "Dice", "HD95",
                           "Scored on 2 held-out cases", "vs alone"})
    EXPECT_NE(r.output.find(name), std::string::npos) << name << "\n" << r.output;
  for (const char* f : {"results.md", "results.csv", "results.json", "seed_0/models/unetr/stage.json",
                        "seed_0/predictions/student_teachformer/summary.json"})
    EXPECT_TRUE(fs::exists(dir / "exp" / f)) << f;
  const auto results = read_json(dir / "exp" / "results.json");
  EXPECT_EQ(results.at("experiment").at("scored_cases").size(), 2u);
  bool compared = false;
  for (const auto& row : results.at("rows"))
    if (row.at("name") == "student:teachformer") {
      for (const char* k : {"diff", "ci_low", "ci_high", "wilcoxon_p", "cases"})
        EXPECT_TRUE(row.at("vs_student_alone").contains(k)) << k;
      EXPECT_EQ(row.at("seeds"), nlohmann::json({0}));
      compared = true;
    }
  EXPECT_TRUE(compared);
  // Every student sees the same batches, with teachers (cached) or without.
  const auto a = first_batches(dir / "exp" / "seed_0" / "models" / "student_student_alone" / "fold_0" / "log.jsonl");
  const auto b = first_batches(dir / "exp" / "seed_0" / "models" / "student_teachformer" / "fold_0" / "log.jsonl");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  // Re-running resumes: nothing is retrained.
  auto again = run_cli("experiment --preset tiny -o " + q(dir / "exp") + args);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output.find("train unetr"), std::string::npos) << again.output;
  // A moved folder, named another way, is reused as it is: its records keep paths relative to the folder.
  fs::rename(dir / "exp", dir / "moved");
  again = run_cli("experiment --preset tiny -o " + q(dir / "." / "moved") + args);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output.find("train unetr"), std::string::npos) << again.output;
  EXPECT_EQ(again.output.find("distill teachformer_s"), std::string::npos) << again.output;
  fs::rename(dir / "moved", dir / "exp");
  // A student of one's own joins the same experiment: trained on the same batches, compared like the ladder's, and
  // nothing else is retrained.
  const auto student_stage = dir / "exp" / "seed_0" / "models" / "student_teachformer" / "stage.json";
  const auto stage_time = fs::last_write_time(student_stage);
  again = run_cli("-q experiment --preset tiny -o " + q(dir / "exp") + args +
                  R"( --student 'kd2={"strategy": "hinton", "temperature": 2}')");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("| student:kd2 | student | gt+kd, T=2 (teachers: unetr) |"), std::string::npos) << again.output;
  EXPECT_EQ(fs::last_write_time(student_stage), stage_time);
  const auto kd2 = read_json(dir / "exp" / "seed_0" / "models" / "student_kd2" / "config.json");
  EXPECT_EQ(kd2.at("distill").at("temperature"), 2.0);
  EXPECT_EQ(kd2.at("distill").at("strategy").at("name"), "hinton");
  EXPECT_EQ(first_batches(dir / "exp" / "seed_0" / "models" / "student_kd2" / "fold_0" / "log.jsonl"), a);
  bool listed = false;
  const auto with_kd2 = read_json(dir / "exp" / "results.json");
  for (const auto& row : with_kd2.at("rows"))
    if (row.at("name") == "student:kd2") listed = row.contains("vs_student_alone");
  EXPECT_TRUE(listed);
  // The form of prediction KD is recorded where the config leaves it to the default (KL + Dice): a folder made under
  // another default, whose record has no kd_dice, is refused, naming it.
  EXPECT_EQ(read_json(dir / "exp" / "seed_0" / "models" / "student_teachformer" / "config.json")
                .at("distill").at("kd_dice"), 1.0);
  auto record = read_json(student_stage);
  auto& recorded = record.at("settings").at("job").at("config").at("distill");
  ASSERT_TRUE(recorded.contains("kd_dice")) << record.dump();
  recorded.erase("kd_dice");
  write_json(student_stage, record);
  again = run_cli("-q experiment --preset tiny -o " + q(dir / "exp") + args);
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("/job/config/distill/kd_dice: 1.0 now, absent before"), std::string::npos)
      << again.output;
  // A changed setting is refused, naming it; --force redoes that stage and what depends on it.
  again = run_cli("-q experiment --preset tiny -o " + q(dir / "exp") + args + " --student-epochs 3");
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("/job/epochs: 3 now"), std::string::npos) << again.output;
  EXPECT_NE(again.output.find("--force"), std::string::npos) << again.output;
  again = run_cli("-q experiment --preset tiny -o " + q(dir / "exp") + args + " --student-epochs 3 --force");
  ASSERT_EQ(again.exit_code, 0) << again.output;
}

TEST(Experiment, MriPhantomsAreScoredWithThePicaiProtocol) {
  TempDir dir;
  const auto r = run_cli("-q experiment --preset tiny --kind mri -o " + q(dir / "exp") +
                         " --teachers unetr --students student_alone --cases 10 --test-cases 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* name : {"AUROC", "| AP |", "PI-CAI score", "| student:student_alone |"})
    EXPECT_NE(r.output.find(name), std::string::npos) << name << "\n" << r.output;
  // picai_eval's layout beside the detection maps of every held-out case.
  const fs::path pred = dir / "exp" / "seed_0" / "predictions" / "student_student_alone";
  const auto metrics = read_json(pred / "metrics.json");
  for (const char* key : {"auroc", "AP", "score"}) EXPECT_TRUE(metrics.contains(key)) << key << ": " << metrics.dump();
  int maps = 0;
  for (const auto& e : fs::directory_iterator(pred / "detection")) maps += e.path().string().find(".nii.gz") != std::string::npos;
  EXPECT_EQ(maps, 3);
  EXPECT_EQ(read_json(dir / "exp" / "results.json").at("experiment").at("protocol"), "picai");
}

TEST(Experiment, PaperPresetsRefuseDataOfTheOtherKind) {
  TempDir dir;
  auto r = run_cli("-q synth --kind mri -o " + q(dir / "mri") + " --cases 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cli("-q experiment --preset paper-hecktor --data " + q(dir / "mri") + " -o " + q(dir / "exp"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("paper-hecktor needs PET/CT data"), std::string::npos) << r.output;
}

// The --student help names every key a student of one's own takes besides the distill options.
TEST(Experiment, HelpListsTheKeysOfAStudentOfOnesOwn) {
  const auto r = run_cli("experiment --help");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("keys of its own: learns_from, single_teacher, teacher_val_tau, unlabelled"),
            std::string::npos)
      << r.output;
}

// Numbers out of range are usage errors on one short line that names the option, the bound and the value; the help
// keeps its type names.
TEST(Experiment, NumbersOutOfRangeAreOneLineUsageErrors) {
  TempDir dir;
  const std::string out = " -o " + q(dir / "exp");
  for (const auto& [args, text] : std::vector<std::pair<std::string, std::string>>{
           {"--teacher-epochs -5", "--teacher-epochs: must be > 0, got -5"},
           {"--student-epochs 0", "--student-epochs: must be > 0, got 0"},
           {"--teacher-epochs abc", "--teacher-epochs: must be a number > 0, got 'abc'"},
           {"--teacher-val-tau -0.5", "--teacher-val-tau: must be >= 0, got -0.5"}}) {
    const auto r = run_cli("-q experiment " + args + out);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.output;
    EXPECT_NE(r.output.find("usage error: " + text + " (see"), std::string::npos) << args << ": " << r.output;
    EXPECT_EQ(r.output.find("179769"), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir / "exp")) << args;
  }
  // The help still names the types.
  const auto help = run_cli("experiment --help");
  EXPECT_NE(help.output.find("--teacher-epochs INT:POSITIVE"), std::string::npos) << help.output;
  EXPECT_NE(help.output.find("--teacher-val-tau FLOAT:NONNEGATIVE"), std::string::npos) << help.output;
}

}  // namespace
}  // namespace teachformer::test
