// PI-CAI detection: candidate extraction, lesion matching, AUROC/AP/FROC on tiny cases with known answers.
#include "teachformer/metrics/picai.hpp"

#include <cmath>

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"

namespace teachformer::metrics::picai {
namespace {

using torch::indexing::Slice;

void fill(torch::Tensor& t, std::array<int64_t, 3> lo, std::array<int64_t, 3> hi, float v) {
  t.index_put_({Slice(lo[0], hi[0]), Slice(lo[1], hi[1]), Slice(lo[2], hi[2])}, v);
}

/// A probability map with constant-valued blocks: A (64 voxels, 0.9), B (27 voxels, 0.5), a tiny block of 8 voxels
/// at 0.95 (below min_voxels), and C (32 voxels, 0.3) touching A.
torch::Tensor blocks() {
  torch::Tensor p = torch::zeros({12, 20, 20}, torch::kFloat32);
  fill(p, {1, 1, 1}, {5, 5, 5}, 0.9f);       // A
  fill(p, {1, 1, 5}, {5, 5, 7}, 0.3f);       // C, face-adjacent to A
  fill(p, {7, 10, 10}, {10, 13, 13}, 0.5f);  // B
  fill(p, {8, 2, 15}, {10, 4, 17}, 0.95f);   // tiny
  return p;
}

TEST(LesionCandidates, DynamicThresholdExtractsPeaksAndSkipsSmallAndAdjacentBlobs) {
  const LesionCandidates c = extract_lesion_candidates(blocks());
  ASSERT_EQ(c.candidates.size(), 2u);
  EXPECT_FLOAT_EQ(c.candidates[0].confidence, 0.9f);
  EXPECT_EQ(c.candidates[0].voxels, 64);
  EXPECT_EQ(c.candidates[0].index, 1);
  EXPECT_FLOAT_EQ(c.candidates[1].confidence, 0.5f);
  EXPECT_EQ(c.candidates[1].voxels, 27);
  EXPECT_EQ(c.indexed.gt(0).sum().item<int64_t>(), 91);
  EXPECT_FLOAT_EQ(c.detection_map[2][2][2].item<float>(), 0.9f);
  EXPECT_FLOAT_EQ(c.detection_map[8][11][11].item<float>(), 0.5f);
  EXPECT_EQ(c.detection_map[8][2][15].item<float>(), 0.0f);  // tiny block dropped
  EXPECT_EQ(c.detection_map[2][2][5].item<float>(), 0.0f);   // C touches A: skipped
  EXPECT_EQ(c.indexed[8][11][11].item<int32_t>(), 2);
  // Without the adjacency rule C becomes a third candidate.
  CandidateOptions o;
  o.remove_adjacent_candidates = false;
  const LesionCandidates all = extract_lesion_candidates(blocks(), o);
  ASSERT_EQ(all.candidates.size(), 3u);
  EXPECT_FLOAT_EQ(all.candidates[2].confidence, 0.3f);
  EXPECT_EQ(all.candidates[2].voxels, 32);
  // The number of candidates is capped.
  o.num_lesions_to_extract = 1;
  EXPECT_EQ(extract_lesion_candidates(blocks(), o).candidates.size(), 1u);
}

TEST(LesionCandidates, MinVoxelsDropsBlobsOfAtMostThatSize) {
  torch::Tensor p = torch::zeros({4, 4, 12}, torch::kFloat32);
  fill(p, {1, 1, 0}, {2, 2, 11}, 0.8f);  // 11 voxels: kept with min_voxels 10
  EXPECT_EQ(extract_lesion_candidates(p).candidates.size(), 1u);
  fill(p, {1, 1, 10}, {2, 2, 11}, 0.0f);  // 10 voxels: dropped
  EXPECT_EQ(extract_lesion_candidates(p).candidates.size(), 0u);
}

TEST(LesionCandidates, FastAndStaticThresholds) {
  CandidateOptions o;
  parse_threshold("dynamic-fast", o);  // one threshold at 0.95 / 2.5 = 0.38: A and B (tiny dropped)
  const LesionCandidates fast = extract_lesion_candidates(blocks(), o);
  ASSERT_EQ(fast.candidates.size(), 2u);
  EXPECT_FLOAT_EQ(fast.candidates[0].confidence, 0.9f);
  parse_threshold("0.2", o);  // A and C merge into one blob of 96 voxels with confidence 0.9
  const LesionCandidates fixed = extract_lesion_candidates(blocks(), o);
  ASSERT_EQ(fixed.candidates.size(), 2u);
  EXPECT_EQ(fixed.candidates[0].voxels, 96);
  EXPECT_FLOAT_EQ(fixed.detection_map[2][2][5].item<float>(), 0.9f);
  EXPECT_THROW(parse_threshold("dynamic-slow", o), InvalidArgument);
  EXPECT_THROW(parse_threshold("1.5", o), InvalidArgument);
  EXPECT_THROW(extract_lesion_candidates(-blocks()), InvalidArgument);
}

TEST(DetectionCase, HitsMissesAndFalsePositivesFollowPicaiRules) {
  torch::Tensor ref = torch::zeros({6, 10, 30}, torch::kUInt8);
  ref.index_put_({Slice(1, 3), Slice(1, 3), Slice(1, 3)}, 1);    // lesion 1: 8 voxels
  ref.index_put_({Slice(1, 3), Slice(1, 3), Slice(10, 12)}, 2);  // lesion 2 (any value >= 1 is lesion)
  torch::Tensor det = torch::zeros({6, 10, 30}, torch::kFloat32);
  det.index_put_({Slice(1, 3), Slice(1, 3), Slice(1, 3)}, 0.7f);  // exact hit of lesion 1: IoU 1
  det.index_put_({Slice(4, 5), Slice(6, 8), Slice(20, 22)}, 0.4f);  // far away: FP
  const CaseDetection c = evaluate_detection_case(det, ref);
  EXPECT_EQ(c.num_lesions, 2);
  EXPECT_EQ(c.num_candidates, 2);
  EXPECT_EQ(c.case_target, 1);
  EXPECT_FLOAT_EQ(float(c.case_confidence), 0.7f);
  ASSERT_EQ(c.lesions.size(), 3u);
  EXPECT_EQ(c.lesions[0].is_lesion, 1);
  EXPECT_FLOAT_EQ(float(c.lesions[0].confidence), 0.7f);
  EXPECT_NEAR(c.lesions[0].overlap, 1.0, 1e-9);
  EXPECT_EQ(c.lesions[1].is_lesion, 1);  // lesion 2 missed
  EXPECT_EQ(c.lesions[1].confidence, 0.0);
  EXPECT_EQ(c.lesions[2].is_lesion, 0);  // the far candidate
  EXPECT_FLOAT_EQ(float(c.lesions[2].confidence), 0.4f);
  // Benign case: every candidate is a false positive.
  const CaseDetection b = evaluate_detection_case(det, torch::zeros_like(ref));
  EXPECT_EQ(b.case_target, 0);
  ASSERT_EQ(b.lesions.size(), 2u);
  EXPECT_EQ(b.lesions[0].is_lesion + b.lesions[1].is_lesion, 0);
}

TEST(DetectionCase, OverlapThresholdAndSecondCandidatesOnOneLesion) {
  torch::Tensor ref = torch::zeros({4, 4, 40}, torch::kUInt8);
  ref.index_put_({Slice(0, 1), Slice(0, 1), Slice(0, 20)}, 1);  // a 20-voxel line
  torch::Tensor det = torch::zeros({4, 4, 40}, torch::kFloat32);
  det.index_put_({Slice(0, 1), Slice(0, 1), Slice(0, 2)}, 0.6f);  // IoU 2/20 = 0.1: a hit (>= 0.1)
  det.index_put_({Slice(0, 1), Slice(0, 1), Slice(3, 6)}, 0.8f);  // IoU 3/20 = 0.15: the better hit
  const CaseDetection c = evaluate_detection_case(det, ref);
  ASSERT_EQ(c.lesions.size(), 1u);  // the unselected candidate still overlaps enough: not a false positive
  EXPECT_FLOAT_EQ(float(c.lesions[0].confidence), 0.8f);
  EXPECT_NEAR(c.lesions[0].overlap, 0.15, 1e-6);
  MatchOptions strict;
  strict.allow_unmatched_candidates_with_minimal_overlap = false;
  const CaseDetection s = evaluate_detection_case(det, ref, strict);
  ASSERT_EQ(s.lesions.size(), 2u);
  EXPECT_EQ(s.lesions[1].is_lesion, 0);
  EXPECT_FLOAT_EQ(float(s.lesions[1].confidence), 0.6f);
  // Below the overlap threshold: a miss and a false positive.
  strict.min_overlap = 0.2;
  const CaseDetection low = evaluate_detection_case(det, ref, strict);
  ASSERT_EQ(low.lesions.size(), 3u);
  EXPECT_EQ(low.lesions[0].is_lesion, 1);
  EXPECT_EQ(low.lesions[0].confidence, 0.0);
}

TEST(DetectionCase, DetectionMapsAndSoftmaxMapsAreTold) {
  torch::Tensor det = torch::zeros({3, 3, 9}, torch::kFloat32);
  det.index_put_({Slice(0, 1), Slice(0, 1), Slice(0, 2)}, 0.6f);
  det.index_put_({Slice(2, 3), Slice(2, 3), Slice(6, 9)}, 0.6f);
  EXPECT_TRUE(is_detection_map(det));
  det[0][0][1] = 0.5f;  // two values in one blob: a softmax map
  EXPECT_FALSE(is_detection_map(det));
}

TEST(Assignment, MaximisesTheTotalValueOnRectangularMatrices) {
  // rows x cols = 2 x 3
  const std::vector<int> a = maximum_assignment({1, 5, 0,  //
                                                 4, 6, 0},
                                                2, 3);
  EXPECT_EQ(a, (std::vector<int>{1, 0}));  // 5 + 4 beats 6 + 1
  // 3 x 2: one row stays unassigned.
  const std::vector<int> b = maximum_assignment({1, 0, 0, 2, 3, 0}, 3, 2);
  EXPECT_EQ(b, (std::vector<int>{-1, 1, 0}));
  EXPECT_THROW(maximum_assignment({1, 2}, 2, 2), InvalidArgument);
}

CaseDetection make_case(int target, double confidence, std::vector<LesionResult> lesions) {
  CaseDetection c;
  c.case_target = target;
  c.case_confidence = confidence;
  c.lesions = std::move(lesions);
  return c;
}

TEST(DetectionMetrics, HandComputedAurocApAndFroc) {
  // A: lesion found at 0.9; B: benign with a 0.2 false positive; C: lesion missed; D: benign, empty.
  std::map<std::string, CaseDetection> cases{{"A", make_case(1, 0.9, {{1, 0.9, 0.5}})},
                                             {"B", make_case(0, 0.2, {{0, 0.2, 0}})},
                                             {"C", make_case(1, 0.0, {{1, 0.0, 0}})},
                                             {"D", make_case(0, 0.0, {})}};
  const DetectionMetrics m = compute_detection_metrics(cases);
  // Case pairs (positive, negative): A>B, A>D, C<B, C=D (counts half): 2.5 / 4.
  EXPECT_DOUBLE_EQ(m.auroc, 0.625);
  // Thresholds 0.9, 0.2, 0: precision 1, 1/2, (0 at 0); recall 1/2, 1/2, 1.
  EXPECT_DOUBLE_EQ(m.ap, 0.5);
  EXPECT_DOUBLE_EQ(m.score, 0.5625);
  EXPECT_EQ(m.num_cases, 4);
  EXPECT_EQ(m.num_lesions, 2);
  EXPECT_EQ(m.thresholds, (std::vector<double>{0.9, 0.2, 0.0}));
  EXPECT_EQ(m.sensitivity, (std::vector<double>{0.5, 0.5, 0.5}));
  ASSERT_EQ(m.fp_per_case.size(), 3u);
  EXPECT_DOUBLE_EQ(m.fp_per_case[0], 0.0);
  EXPECT_DOUBLE_EQ(m.fp_per_case[1], 0.25);
  EXPECT_TRUE(std::isinf(m.fp_per_case[2]));
  EXPECT_DOUBLE_EQ(sensitivity_at(m, 0.1), 0.5);
}

TEST(DetectionMetrics, ReproducesPicaiEvalsOwnExpectedOutput) {
  // picai_eval's test suite (tests/output-expected/metrics-full-expected.json): ten cases' lesion results give
  // AUROC 0.75, AP 0.2777..., precision [0, 5/9, 0, 1], recall [1, 0.5, 0, 0], lesion TPR [0, 0.5, 0.5] and
  // FPR [0.1, 0.4, inf] at thresholds [2, 1, 0].
  std::map<std::string, CaseDetection> c{
      {"case-0", make_case(0, 0.0, {})},
      {"case-1", make_case(1, 0.0, {{1, 0.0, 0.0}})},
      {"case-2", make_case(0, 1.0, {{0, 1.0, 0.0}})},
      {"case-3", make_case(1, 1.0, {{1, 0.0, 0.0}, {0, 1.0, 0.0}})},
      {"case-4", make_case(1, 1.0, {{1, 1.0, 0.33}})},
      {"case-5", make_case(1, 2.0, {{1, 1.0, 0.22}, {0, 2.0, 0.0}})},
      {"case-6", make_case(1, 2.0, {{1, 1.0, 0.33}})},
      {"case-7", make_case(1, 1.0, {{1, 1.0, 0.33}, {1, 0.0, 0.0}})},
      {"case-8", make_case(1, 1.0, {{1, 1.0, 0.45}, {1, 0.0, 0.0}})},
      {"case-9", make_case(1, 1.0, {{1, 0.0, 0.0}, {0, 1.0, 0.0}})}};
  const DetectionMetrics m = compute_detection_metrics(c);
  EXPECT_DOUBLE_EQ(m.auroc, 0.75);
  EXPECT_NEAR(m.ap, 0.2777777777777778, 1e-12);
  EXPECT_EQ(m.num_lesions, 10);
  ASSERT_EQ(m.precision.size(), 4u);
  EXPECT_DOUBLE_EQ(m.precision[0], 0.0);
  EXPECT_NEAR(m.precision[1], 5.0 / 9, 1e-12);
  EXPECT_DOUBLE_EQ(m.precision[2], 0.0);
  EXPECT_DOUBLE_EQ(m.precision[3], 1.0);
  EXPECT_EQ(m.recall, (std::vector<double>{1.0, 0.5, 0.0, 0.0}));
  EXPECT_EQ(m.thresholds, (std::vector<double>{2.0, 1.0, 0.0}));
  EXPECT_EQ(m.sensitivity, (std::vector<double>{0.0, 0.5, 0.5}));
  EXPECT_DOUBLE_EQ(m.fp_per_case[0], 0.1);
  EXPECT_DOUBLE_EQ(m.fp_per_case[1], 0.4);
  EXPECT_TRUE(std::isinf(m.fp_per_case[2]));
  const Json j = to_picai_json(m, c);
  for (const char* key : {"auroc", "AP", "num_cases", "num_lesions", "picai_eval_version", "lesion_results",
                          "lesion_weight", "case_pred", "case_target", "case_weight", "precision", "recall",
                          "lesion_TPR", "lesion_FPR", "thresholds", "fpr", "tpr", "sensitivity", "fp_per_case"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["lesion_results"]["case-5"][1], Json::array({0, 2.0, 0.0}));
  EXPECT_TRUE(j["lesion_FPR"][2].is_null());  // +inf
  EXPECT_EQ(j["case_target"]["case-2"], 0);
}

}  // namespace
}  // namespace teachformer::metrics::picai
