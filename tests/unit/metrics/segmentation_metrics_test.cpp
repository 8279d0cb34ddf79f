// Overlap and surface metrics: the reference fixtures (MONAI 1.5.0 values) and hand-computed cases.
#include "teachformer/metrics/segmentation_metrics.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/io/image_io.hpp"
#include "test_support.hpp"

namespace teachformer::metrics {
namespace {

struct ExpectedRow {
  std::string name;
  double dice, hd95, hd, assd;
};

double parse_value(const std::string& s) {
  if (s == "nan") return std::nan("");
  if (s == "inf") return INFINITY;
  return std::stod(s);
}

std::vector<ExpectedRow> read_expected() {
  std::ifstream in(test::fixture("metrics/expected.csv"));
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "case,dice,hd95_mm,hd_mm,assd_mm");
  std::vector<ExpectedRow> rows;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::stringstream ss(line);
    std::string f[5];
    for (auto& x : f) std::getline(ss, x, ',');
    rows.push_back({f[0], parse_value(f[1]), parse_value(f[2]), parse_value(f[3]), parse_value(f[4])});
  }
  return rows;
}

void expect_value(double expected, double actual, double tol, const std::string& what) {
  if (std::isnan(expected)) {
    EXPECT_TRUE(std::isnan(actual)) << what << ": expected nan, got " << actual;
  } else if (std::isinf(expected)) {
    EXPECT_EQ(expected, actual) << what;
  } else {
    EXPECT_NEAR(expected, actual, tol) << what;
  }
}

TEST(SegmentationMetricsFixtures, EveryCaseOfExpectedCsvIsReproduced) {
  const auto rows = read_expected();
  ASSERT_EQ(rows.size(), 8u);
  for (const auto& row : rows) {
    const io::Volume gt = io::read_label(test::fixture("metrics/" + row.name + "_gt.nii.gz"));
    const io::Volume pred = io::read_label(test::fixture("metrics/" + row.name + "_pred.nii.gz"));
    ASSERT_TRUE(gt.grid().approx_equal(pred.grid())) << row.name;
    const BinaryMetrics m = compute_binary_metrics(pred.data, gt.data, gt.geometry.spacing);
    expect_value(row.dice, m.dice, 1e-3, row.name + " Dice");
    expect_value(row.hd95, m.hd95, 1e-3, row.name + " HD95");
    expect_value(row.hd, m.hd, 1e-3, row.name + " HD");
    expect_value(row.assd, m.assd, 1e-3, row.name + " ASSD");
  }
}

}  // namespace
}  // namespace teachformer::metrics
