// teachformer synth, end to end.
#include <gtest/gtest.h>

#include "test_support.hpp"

namespace teachformer::test {
namespace {

TEST(SynthCli, WritesTheHecktorLayoutWithBboxCsv) {
  TempDir dir;
  const auto r = run_cli("synth -o '" + (dir / "d").string() + "' --kind petct --cases 2 --size 56,56,20 --bbox-mm 48 --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("synth: wrote 2 petct case(s) (2 labelled"), std::string::npos) << r.output;
  for (const char* f : {"hecktor_nii/CHGJ001_ct.nii.gz", "hecktor_nii/CHGJ001_pt.nii.gz", "hecktor_nii/CHGJ001_gtvt.nii.gz",
                        "hecktor_nii/CHMR001_ct.nii.gz", "hecktor2021_bbox_training.csv"})
    EXPECT_TRUE(std::filesystem::exists(dir / "d" / f)) << f;
}

TEST(SynthCli, WritesPicaiWithUnlabelledCases) {
  TempDir dir;
  const auto r = run_cli("synth -o '" + (dir / "p").string() + "' --kind mri --cases 3 --unlabelled 1 --size 64,64,8");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "p" / "picai_labels" / "csPCa_lesion_delineations" / "human_expert" / "resampled"));
  EXPECT_NE(r.output.find("(2 labelled"), std::string::npos) << r.output;
}

TEST(SynthCli, BadValuesAreUsageOrRuntimeErrorsOnOneLine) {
  TempDir dir;
  auto r = run_cli("synth -o '" + dir.path().string() + "' --kind xray");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_cli("synth -o '" + dir.path().string() + "' --size 56,56,20 --bbox-mm 144");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.rfind("error: --bbox-mm 144 does not fit", 0), 0u) << r.output;
  r = run_cli("synth -o '" + dir.path().string() + "' --kind mri --layout hecktor2021");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  r = run_cli("synth -o '" + dir.path().string() + "' --size 56x56x20");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--size: expected three positive integers"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace teachformer::test
