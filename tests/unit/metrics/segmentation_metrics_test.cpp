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


torch::Tensor box_mask(std::array<int64_t, 3> shape, std::array<int64_t, 3> lo, std::array<int64_t, 3> hi,
                       uint8_t value = 1) {
  torch::Tensor m = torch::zeros({shape[0], shape[1], shape[2]}, torch::kUInt8);
  using torch::indexing::Slice;
  m.index_put_({Slice(lo[0], hi[0]), Slice(lo[1], hi[1]), Slice(lo[2], hi[2])}, value);
  return m;
}

TEST(BinaryMetrics, CubesOffsetByOneVoxelHaveHandComputedOverlapAndDistances) {
  const Vec3 spacing{0.5, 1.0, 3.0};  // x, y, z
  const torch::Tensor ref = box_mask({8, 8, 10}, {2, 2, 2}, {6, 6, 6});   // 4^3 = 64 voxels
  const torch::Tensor pred = box_mask({8, 8, 10}, {2, 2, 3}, {6, 6, 7});  // shifted by 1 along x
  const BinaryMetrics m = compute_binary_metrics(pred, ref, spacing);
  EXPECT_EQ(m.counts.tp, 48);
  EXPECT_EQ(m.counts.fp, 16);
  EXPECT_EQ(m.counts.fn, 16);
  EXPECT_EQ(m.counts.tn, 8 * 8 * 10 - 80);
  EXPECT_EQ(m.empty, EmptyCase::None);
  EXPECT_DOUBLE_EQ(m.dice, 0.75);
  EXPECT_DOUBLE_EQ(m.iou, 0.6);
  EXPECT_DOUBLE_EQ(m.precision, 0.75);
  EXPECT_DOUBLE_EQ(m.recall, 0.75);
  EXPECT_DOUBLE_EQ(m.voxel_volume_mm3, 1.5);
  EXPECT_DOUBLE_EQ(m.volume_pred_mm3, 96.0);
  EXPECT_DOUBLE_EQ(m.volume_ref_mm3, 96.0);
  EXPECT_DOUBLE_EQ(m.hd, 0.5);    // one voxel along x
  EXPECT_DOUBLE_EQ(m.hd95, 0.5);
  // Shift along z instead: distances scale with the z spacing.
  const torch::Tensor pz = box_mask({8, 8, 10}, {3, 2, 2}, {7, 6, 6});
  const BinaryMetrics mz = compute_binary_metrics(pz, ref, spacing);
  EXPECT_DOUBLE_EQ(mz.dice, 0.75);
  EXPECT_DOUBLE_EQ(mz.hd, 3.0);
  EXPECT_DOUBLE_EQ(mz.hd95, 3.0);
  // Surfels (DeepMind): same Hausdorff distance for a shift along a single axis.
  MetricOptions o;
  o.method = SurfaceMethod::Surfels;
  const BinaryMetrics s = compute_binary_metrics(pz, ref, spacing, o);
  EXPECT_DOUBLE_EQ(s.hd, 3.0);
  EXPECT_DOUBLE_EQ(s.dice, 0.75);
}

TEST(BinaryMetrics, AssdPoolsBothSurfacesAndMasdAveragesDirections) {
  // Reference: one voxel; prediction: the 3^3 cube around it (isotropic 1 mm). Prediction surface: 26 voxels at
  // 1 (6), sqrt 2 (12) and sqrt 3 (8) mm from the reference voxel; the reference voxel is 1 mm from the
  // prediction surface.
  const torch::Tensor ref = box_mask({5, 5, 5}, {2, 2, 2}, {3, 3, 3});
  const torch::Tensor pred = box_mask({5, 5, 5}, {1, 1, 1}, {4, 4, 4});
  const BinaryMetrics m = compute_binary_metrics(pred, ref, {1, 1, 1});
  const double sum_pred = 6 + 12 * std::sqrt(2.0) + 8 * std::sqrt(3.0);
  EXPECT_NEAR(m.assd, (sum_pred + 1) / 27, 1e-12);
  EXPECT_NEAR(m.masd, 0.5 * (sum_pred / 26 + 1), 1e-12);
  EXPECT_NEAR(m.hd, std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(m.hd95, std::sqrt(3.0), 1e-12);  // h = 25 * 0.95 = 23.75 falls among the sqrt(3) distances
  EXPECT_DOUBLE_EQ(m.dice, 2.0 / 28);
  // NSD: 6 prediction voxels and the reference voxel within 1 mm; all but the 8 corners within 1.5 mm.
  MetricOptions o;
  o.nsd_tolerance_mm = 1.0;
  EXPECT_NEAR(compute_binary_metrics(pred, ref, {1, 1, 1}, o).nsd, 7.0 / 27, 1e-12);
  o.nsd_tolerance_mm = 1.5;
  EXPECT_NEAR(compute_binary_metrics(pred, ref, {1, 1, 1}, o).nsd, 19.0 / 27, 1e-12);
}

TEST(BinaryMetrics, EmptyMasksFollowTheDocumentedPolicy) {
  const torch::Tensor empty = torch::zeros({4, 4, 4}, torch::kUInt8);
  const torch::Tensor some = box_mask({4, 4, 4}, {1, 1, 1}, {3, 3, 3});
  const BinaryMetrics pe = compute_binary_metrics(empty, some, {1, 1, 1});
  EXPECT_EQ(pe.empty, EmptyCase::PredictionEmpty);
  EXPECT_EQ(pe.dice, 0.0);
  EXPECT_EQ(pe.iou, 0.0);
  EXPECT_EQ(pe.recall, 0.0);
  EXPECT_TRUE(std::isnan(pe.precision));
  EXPECT_TRUE(std::isnan(pe.hd95));
  EXPECT_TRUE(std::isinf(pe.hd));
  EXPECT_TRUE(std::isinf(pe.assd));
  EXPECT_EQ(pe.nsd, 0.0);
  const BinaryMetrics re = compute_binary_metrics(some, empty, {1, 1, 1});
  EXPECT_EQ(re.empty, EmptyCase::ReferenceEmpty);
  EXPECT_TRUE(std::isnan(re.dice));
  EXPECT_EQ(re.precision, 0.0);
  EXPECT_TRUE(std::isnan(re.recall));
  EXPECT_TRUE(std::isnan(re.hd95));
  EXPECT_TRUE(std::isinf(re.hd));
  EXPECT_TRUE(std::isnan(re.nsd));
  const BinaryMetrics be = compute_binary_metrics(empty, empty, {1, 1, 1});
  EXPECT_EQ(be.empty, EmptyCase::BothEmpty);
  for (double v : {be.dice, be.iou, be.precision, be.recall, be.hd95, be.hd, be.assd, be.nsd})
    EXPECT_TRUE(std::isnan(v));
  EXPECT_EQ(be.counts.tn, 64);
  EXPECT_EQ(to_string(EmptyCase::PredictionEmpty), "pred_empty");
}

TEST(LabelMetrics, MultiClassMapsAreEvaluatedPerLabelAndAbsentLabelsAreBothEmpty) {
  torch::Tensor ref = box_mask({6, 6, 6}, {0, 0, 0}, {2, 2, 2}, 1);                        // label 1: 8 voxels
  ref.index_put_({torch::indexing::Slice(3, 5), torch::indexing::Slice(3, 5), torch::indexing::Slice(3, 5)}, 2);
  torch::Tensor pred = ref.clone();
  pred[0][0][0] = 2;  // one label-1 voxel predicted as 2
  const auto m = compute_label_metrics(pred.unsqueeze(0), ref.unsqueeze(0), {1, 1, 1}, {1, 2, 3});
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m.at(1).counts.tp, 7);
  EXPECT_EQ(m.at(1).counts.fn, 1);
  EXPECT_EQ(m.at(1).counts.fp, 0);
  EXPECT_DOUBLE_EQ(m.at(1).dice, 14.0 / 15);
  EXPECT_EQ(m.at(2).counts.tp, 8);
  EXPECT_EQ(m.at(2).counts.fp, 1);
  EXPECT_DOUBLE_EQ(m.at(2).dice, 16.0 / 17);
  EXPECT_EQ(m.at(3).empty, EmptyCase::BothEmpty);
  EXPECT_EQ(present_labels(ref), (std::vector<int>{1, 2}));
}

TEST(LabelMetrics, BadInputsAreRejectedNamingTheRule) {
  const torch::Tensor a = torch::zeros({4, 4, 4}, torch::kUInt8);
  try {
    compute_label_metrics(a, torch::zeros({4, 4, 5}, torch::kUInt8), {1, 1, 1}, {1});
    FAIL() << "no throw";
  } catch (const InvalidArgument& e) {
    EXPECT_STREQ(e.what(), "compute_label_metrics: prediction shape [4, 4, 4] differs from reference shape [4, 4, 5]");
  }
  EXPECT_THROW(compute_label_metrics(torch::zeros({4, 4, 4}), a, {1, 1, 1}, {1}), InvalidArgument);  // float map
  EXPECT_THROW(compute_label_metrics(a, a, {1, 1, 1}, {0}), InvalidArgument);
  EXPECT_THROW(compute_label_metrics(a, a, {1, -1, 1}, {1}), InvalidArgument);
  MetricOptions o;
  o.percentile = 120;
  EXPECT_THROW(compute_label_metrics(a, a, {1, 1, 1}, {1}, o), InvalidArgument);
  EXPECT_THROW(compute_binary_metrics(torch::zeros({2, 4, 4, 4}), a, {1, 1, 1}), InvalidArgument);
}

}  // namespace
}  // namespace teachformer::metrics
