// teachformer verify, end to end: one line per problem, exit status 1 on errors, 0 on warnings only.
#include <gtest/gtest.h>

#include "test_support.hpp"

namespace teachformer::test {
namespace {

TEST(VerifyCli, CleanDatasetExitsZeroAndDefectsExitOneWithOneLineEach) {
  TempDir dir;
  const std::string root = (dir / "d").string();
  ASSERT_EQ(run_cli("-q synth -o '" + root + "' --kind petct --layout nnunet --cases 2 --size 56,56,20 --bbox-mm 48").exit_code, 0);
  auto r = run_cli("verify '" + root + "'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("2 labelled and 0 unlabelled case(s) checked, 0 error(s), 0 warning(s)"), std::string::npos) << r.output;

  std::filesystem::remove(dir / "d" / "imagesTr" / "CHMR001_0001.nii.gz");
  std::filesystem::rename(dir / "d" / "imagesTr" / "CHGJ001_0000.nii.gz", dir / "d" / "imagesTr" / "CHGJ001.0000.nii.gz");
  r = run_cli("verify '" + root + "' --workers 2");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("error: imagesTr/CHMR001_0001.nii.gz: missing channel file 'CHMR001_0001.nii.gz'"),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("error: imagesTr/CHGJ001.0000.nii.gz: wrong channel suffix '.0000'"), std::string::npos)
      << r.output;
}

TEST(VerifyCli, WarningsAloneExitZero) {
  TempDir dir;
  const std::string root = (dir / "p").string();
  ASSERT_EQ(run_cli("-q synth -o '" + root + "' --kind mri --cases 2 --unlabelled 1 --size 64,64,8").exit_code, 0);
  const auto r = run_cli("verify '" + root + "'");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("warning: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("have no human-expert label"), std::string::npos) << r.output;
}

TEST(VerifyCli, UnknownLayoutAndBadFormatAreReported) {
  TempDir dir;
  auto r = run_cli("verify '" + dir.path().string() + "'");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.rfind("error: cannot detect the layout", 0), 0u) << r.output;
  r = run_cli("verify '" + dir.path().string() + "' --format nnunet3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

}  // namespace
}  // namespace teachformer::test
