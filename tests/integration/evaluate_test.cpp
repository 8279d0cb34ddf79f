// `teachformer evaluate` end to end on volumes written at test time: outputs, printed table, error lines.
#include <gtest/gtest.h>

#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/io/image_io.hpp"
#include "test_support.hpp"

namespace teachformer {
namespace {

using torch::indexing::Slice;

void write_cube(const fs::path& p, int64_t x0, Vec3 origin = {0, 0, 0}) {
  torch::Tensor t = torch::zeros({1, 6, 8, 10}, torch::kUInt8);
  t.index_put_({0, Slice(1, 4), Slice(2, 6), Slice(x0, x0 + 4)}, 1);
  Geometry g;
  g.spacing = {0.8, 0.8, 2.5};
  g.origin = origin;
  io::write_label(p, io::Volume{t, g});
}

int count_lines_starting(const std::string& text, const std::string& prefix) {
  int n = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (text.compare(pos, prefix.size(), prefix) == 0) ++n;
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return n;
}

TEST(EvaluateCli, GenericProtocolWritesSummaryCsvAndPrintsTable) {
  test::TempDir dir;
  write_cube(dir / "ref" / "case1.nii.gz", 2);
  write_cube(dir / "pred" / "case1.nii.gz", 3);
  write_cube(dir / "ref" / "case2.nii.gz", 2);  // missing prediction
  const auto r = test::run_cli("evaluate --ref '" + (dir / "ref").string() + "' --pred '" + (dir / "pred").string() +
                               "' -o '" + (dir / "out").string() + "' --threads 2 -q");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("protocol generic: 2 cases (1 missing), labels 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("HD95"), std::string::npos);
  const Json s = read_json(dir / "out" / "summary.json");
  ASSERT_EQ(s["metric_per_case"].size(), 2u);
  EXPECT_DOUBLE_EQ(s["metric_per_case"][0]["metrics"]["1"]["Dice"].get<double>(), 0.75);
  EXPECT_NEAR(s["metric_per_case"][0]["metrics"]["1"]["HD95"].get<double>(), 0.8, 1e-6);  // float32 header spacing
  EXPECT_EQ(s["empty_cases"]["1"]["missing"], 1);
  EXPECT_TRUE(fs::exists(dir / "out" / "cases.csv"));
  // Default output: summary.json inside the prediction folder.
  const auto d = test::run_cli("evaluate --ref '" + (dir / "ref").string() + "' --pred '" + (dir / "pred").string() +
                               "' -q");
  ASSERT_EQ(d.exit_code, 0) << d.output;
  EXPECT_TRUE(fs::exists(dir / "pred" / "summary.json"));
}

TEST(EvaluateCli, BadInputsGiveOneErrorLine) {
  test::TempDir dir;
  write_cube(dir / "ref" / "case1.nii.gz", 2);
  fs::create_directories(dir / "empty");
  const std::string ref = "'" + (dir / "ref").string() + "'";
  // Missing reference folder.
  auto r = test::run_cli("evaluate --ref '" + (dir / "nope").string() + "' --pred " + ref + " -q");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(count_lines_starting(r.output, "error: "), 1) << r.output;
  EXPECT_NE(r.output.find("reference folder '" + (dir / "nope").string() + "' does not exist"), std::string::npos);
  // Empty prediction folder.
  r = test::run_cli("evaluate --ref " + ref + " --pred '" + (dir / "empty").string() + "' -q");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(count_lines_starting(r.output, "error: "), 1) << r.output;
  EXPECT_NE(r.output.find("holds no image files"), std::string::npos) << r.output;
  // Geometry mismatch names both files and the numbers.
  write_cube(dir / "pred" / "case1.nii.gz", 2, {0, 0, 1.0});
  r = test::run_cli("evaluate --ref " + ref + " --pred '" + (dir / "pred").string() + "' -q");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(count_lines_starting(r.output, "error: "), 1) << r.output;
  EXPECT_NE(r.output.find("geometry mismatch between prediction '" + (dir / "pred" / "case1.nii.gz").string() +
                          "' and reference '" + (dir / "ref" / "case1.nii.gz").string() + "': origin [0, 0, 1] vs [0, 0, 0]"),
            std::string::npos)
      << r.output;
  // Options of another protocol and unknown protocols are usage errors.
  r = test::run_cli("evaluate --ref " + ref + " --pred " + ref + " --min-overlap 0.2 -q");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("usage error: --min-overlap is only used by --protocol picai"), std::string::npos);
  r = test::run_cli("evaluate --ref " + ref + " --pred " + ref + " --protocol hecktor");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = test::run_cli("evaluate --ref " + ref + " --pred " + ref + " --labels 1,300");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST(EvaluateCli, HelpGroupsOptionsAndPrintsDefaults) {
  const auto r = test::run_cli("evaluate --help");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* s : {"Input and output", "Protocol", "Surface distances", "HECKTOR 2021", "PI-CAI", "--nsd-tolerance",
                        "=generic", "=dynamic", "=0.1", "=95"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
}

}  // namespace
}  // namespace teachformer
