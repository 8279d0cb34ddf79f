#include "teachformer/metrics/summary.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace teachformer::metrics {
namespace {

// One label's row and status from voxel counts, as the evaluators build them.
void add_label(CaseEvaluation& c, int label, int64_t tp, int64_t fp, int64_t fn) {
  OverlapCounts counts;
  counts.tp = tp, counts.fp = fp, counts.fn = fn, counts.tn = 1000;
  const BinaryMetrics m = metrics_from_counts(counts, 1.0);
  c.metrics[label] = generic_row(m, false);
  c.status[label] = m.empty;
}

TEST(CaseDice, IsTheMeanOverLabelsOfTheirDice) {
  CaseEvaluation c;
  add_label(c, 1, 8, 2, 2);  // 16 / 20
  add_label(c, 2, 3, 0, 1);  // 6 / 7
  EXPECT_NEAR(case_dice(c), 0.5 * (0.8 + 6.0 / 7.0), 1e-12);
}

TEST(CaseDice, LeavesOutALabelWithNeitherReferenceNorPrediction) {
  CaseEvaluation c;
  add_label(c, 1, 8, 2, 2);
  add_label(c, 2, 0, 0, 0);
  EXPECT_NEAR(case_dice(c), 0.8, 1e-12);
}

TEST(CaseDice, IsUndefinedForALesionFreeCasePredictedLesionFree) {
  CaseEvaluation c;
  add_label(c, 1, 0, 0, 0);
  EXPECT_TRUE(std::isnan(case_dice(c)));
}

TEST(CaseDice, CountsAFalsePositiveOnAnEmptyReferenceAndAMissAsZero) {
  CaseEvaluation fp;
  add_label(fp, 1, 0, 5, 0);
  EXPECT_EQ(case_dice(fp), 0.0);
  CaseEvaluation miss;
  add_label(miss, 1, 0, 0, 5);
  EXPECT_EQ(case_dice(miss), 0.0);
}

TEST(CaseDice, CountsAMissingPredictionAsZeroEvenWhereTheReferenceIsEmpty) {
  CaseEvaluation c;
  add_label(c, 1, 0, 0, 0);
  c.missing = true;
  EXPECT_EQ(case_dice(c), 0.0);
}

TEST(CaseDice, ReadsTheHecktorNameOfTheMetric) {
  CaseEvaluation c;
  c.metrics[1] = {{"DSC", 0.75}, {"HD95", 2.0}};
  c.status[1] = EmptyCase::None;
  EXPECT_EQ(case_dice(c), 0.75);
}

}  // namespace
}  // namespace teachformer::metrics
