#include "teachformer/pipeline/stage_record.hpp"

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "test_support.hpp"

namespace teachformer::pipeline {
namespace {

TEST(StageRecord, RunResumeReuseAndRefuse) {
  test::TempDir dir;
  const nlohmann::json settings = {{"trainer", {{"epochs", 36}, {"lr", 0.001}}}, {"model", "unetr"}};
  StageRecord r(dir / "stage", "teacher unetr", settings);
  EXPECT_EQ(r.decide(false), StageAction::Run);
  r.start();
  write_file_atomic(dir / "stage" / "weights.bin", "w");
  EXPECT_EQ(r.decide(false), StageAction::Resume);  // started, not finished
  r.finish({{"val_dice", 0.8}});
  EXPECT_EQ(r.decide(false), StageAction::Reuse);
  EXPECT_EQ(r.result().at("val_dice"), 0.8);

  // Another setting: refused, naming it, unless forced (then the folder starts empty).
  auto changed = settings;
  changed["trainer"]["epochs"] = 12;
  StageRecord other(dir / "stage", "teacher unetr", changed);
  try {
    other.decide(false);
    FAIL() << "a changed setting must be refused";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("teacher unetr"), std::string::npos) << m;
    EXPECT_NE(m.find("/trainer/epochs: 12 now, 36 before"), std::string::npos) << m;
    EXPECT_NE(m.find("--force"), std::string::npos) << m;
  }
  EXPECT_EQ(other.decide(true), StageAction::Run);
  EXPECT_FALSE(fs::exists(dir / "stage" / "weights.bin"));
  EXPECT_NE(other.digest(), r.digest());
}

TEST(StageRecord, FilesWithoutARecordAreNeverReusedSilently) {
  test::TempDir dir;
  write_file_atomic(dir / "out" / "x.nii.gz", "x");
  StageRecord r(dir / "out", "phantoms train", {{"cases", 3}}, dir / "stages" / "data-train.json");
  EXPECT_THROW(r.decide(false), ConfigError);
  EXPECT_EQ(r.decide(true), StageAction::Run);
  r.start();
  r.finish({});
  EXPECT_TRUE(fs::exists(dir / "stages" / "data-train.json"));
  EXPECT_FALSE(fs::exists(dir / "out" / "stage.json"));  // the record lives outside the dataset folder
}

TEST(StageRecord, FirstDifferenceNamesKeysArraysAndMissingKeys) {
  EXPECT_EQ(first_difference({{"a", 1}}, {{"a", 1}}), "");
  EXPECT_EQ(first_difference({{"a", {1, 2}}}, {{"a", {1, 3}}}), "/a/1: 2 now, 3 before");
  EXPECT_EQ(first_difference({{"a", 1}, {"b", 2}}, {{"a", 1}}), "/b: 2 now, absent before");
  EXPECT_EQ(first_difference({{"a", 1}}, {{"a", 1}, {"c", "x"}}), "/c: absent now, \"x\" before");
}

}  // namespace
}  // namespace teachformer::pipeline
