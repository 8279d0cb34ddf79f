// teachformer preprocess, end to end.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "teachformer/core/json.hpp"
#include "test_support.hpp"

namespace teachformer::test {
namespace {

TEST(PreprocessCli, WritesCasesOnceAndSkipsThemOnReRun) {
  TempDir dir;
  const std::string raw = (dir / "raw").string(), out = (dir / "pre").string();
  ASSERT_EQ(run_cli("-q synth -o '" + raw + "' --cases 3 --unlabelled 1 --size 56,56,20 --bbox-mm 48").exit_code, 0);
  auto r = run_cli("-q preprocess '" + raw + "' -o '" + out + "' --workers 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("wrote 3 case(s), skipped 0 finished"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("CT     window [-1024, 1024] -> [-1, 1] (fixed)"), std::string::npos) << r.output;
  const auto ds = read_json(dir / "pre" / "dataset.json");
  EXPECT_EQ(ds.at("num_cases"), 3);
  EXPECT_EQ(ds.at("num_labelled"), 2);
  EXPECT_EQ(ds.at("plan").at("bbox").at("crop"), true);
  for (const char* f : {"plan.json", "fingerprint.json", "cases/CHGJ001.safetensors", "cases/CHUM001.safetensors"})
    EXPECT_TRUE(std::filesystem::exists(dir / "pre" / f)) << f;
  r = run_cli("-q preprocess '" + raw + "' -o '" + out + "'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("wrote 0 case(s), skipped 3 finished"), std::string::npos) << r.output;
  // Another plan into the same folder is refused.
  r = run_cli("-q preprocess '" + raw + "' -o '" + out + "' --target-spacing 2,2,2");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("different plan"), std::string::npos) << r.output;
}

TEST(PreprocessCli, FingerprintWindowAndNamedSchemes) {
  TempDir dir;
  const std::string raw = (dir / "raw").string();
  ASSERT_EQ(run_cli("-q synth -o '" + raw + "' --layout nnunet --cases 2 --size 56,56,20 --bbox-mm 48").exit_code, 0);
  auto r = run_cli("-q preprocess '" + raw + "' -o '" + (dir / "a").string() + "' --ct-window fingerprint --norm PET=none");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto plan = read_json(dir / "a" / "plan.json");
  EXPECT_EQ(plan.at("channels")[0].at("normalization").at("source"), "fingerprint");
  EXPECT_EQ(plan.at("channels")[1].at("normalization").at("scheme"), "none");
  r = run_cli("-q preprocess '" + raw + "' -o '" + (dir / "b").string() + "' --norm PET=minmax");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("error: --norm PET=minmax: unknown scheme"), std::string::npos) << r.output;
  r = run_cli("-q preprocess '" + raw + "' -o '" + (dir / "c").string() + "' --target-spacing 1,1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  r = run_cli("-q preprocess '" + raw + "' -o '" + (dir / "c").string() + "' --ct-window auto");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST(PreprocessCli, DatasetWithErrorsIsRefusedWithAHint) {
  TempDir dir;
  const std::string raw = (dir / "raw").string();
  ASSERT_EQ(run_cli("-q synth -o '" + raw + "' --cases 2 --size 56,56,20 --bbox-mm 48").exit_code, 0);
  std::filesystem::remove(dir / "raw" / "hecktor_nii" / "CHMR001_ct.nii.gz");
  const auto r = run_cli("-q preprocess '" + raw + "' -o '" + (dir / "o").string() + "'");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("run teachformer verify"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace teachformer::test
