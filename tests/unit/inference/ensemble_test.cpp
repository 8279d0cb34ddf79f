#include <limits>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/inference/ensemble.hpp"

namespace teachformer::inference {
namespace {

SlidingWindowResult result_of(torch::Tensor a, torch::Tensor b) {
  SlidingWindowResult r;
  r.outputs.emplace_back("logits", std::move(a));
  r.outputs.emplace_back("tap", std::move(b));
  r.windows = 4;
  r.function_calls = 4;
  return r;
}

TEST(RunningMean, AveragesEveryOutput) {
  RunningMean mean;
  const auto a1 = torch::rand({2, 3, 4, 5});
  const auto a2 = torch::rand({2, 3, 4, 5});
  const auto a3 = torch::rand({2, 3, 4, 5});
  const auto b = torch::rand({8, 1, 2, 2});
  mean.add(result_of(a1.clone(), b.clone()));
  mean.add(result_of(a2.clone(), b.clone()));
  mean.add(result_of(a3.to(torch::kHalf), b.clone()));
  EXPECT_EQ(mean.count(), 3);
  const auto r = mean.finish();
  EXPECT_TRUE(torch::allclose(r.at("logits"), (a1 + a2 + a3.to(torch::kHalf).to(torch::kFloat)) / 3, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(r.at("tap"), b));
  EXPECT_EQ(r.function_calls, 12);
  EXPECT_EQ(mean.count(), 0);
  EXPECT_THROW(mean.finish(), InvalidArgument);
}

TEST(RunningMean, NeverWritesIntoTensorsTheCallerStillHolds) {
  RunningMean mean;
  const auto kept = torch::ones({1, 2, 2, 2});
  const auto kept_copy = kept.clone();
  mean.add(result_of(kept, kept.narrow(0, 0, 1)));
  mean.add(result_of(torch::ones({1, 2, 2, 2}) * 3, torch::ones({1, 2, 2, 2})));
  const auto r = mean.finish(torch::kHalf);
  EXPECT_TRUE(torch::equal(kept, kept_copy));
  EXPECT_EQ(r.at("logits").scalar_type(), torch::kHalf);
  EXPECT_TRUE(torch::allclose(r.at("logits").to(torch::kFloat), torch::full({1, 2, 2, 2}, 2.0)));
}

TEST(RunningMean, RejectsMismatchedResults) {
  RunningMean mean;
  mean.add(result_of(torch::zeros({2, 4, 4, 4}), torch::zeros({1, 2, 2, 2})));
  EXPECT_THROW(mean.add(result_of(torch::zeros({2, 4, 4, 5}), torch::zeros({1, 2, 2, 2}))), InvalidArgument);
  SlidingWindowResult one;
  one.outputs.emplace_back("logits", torch::zeros({2, 4, 4, 4}));
  EXPECT_THROW(mean.add(std::move(one)), InvalidArgument);
  SlidingWindowResult renamed = result_of(torch::zeros({2, 4, 4, 4}), torch::zeros({1, 2, 2, 2}));
  renamed.outputs[1].first = "other";
  EXPECT_THROW(mean.add(std::move(renamed)), InvalidArgument);
}

TEST(ArgmaxLabels, PicksTheLargestScoreAsUint8) {
  auto scores = torch::zeros({3, 2, 2, 2});
  scores[1][0][0][0] = 1.0;
  scores[2][1][1][1] = 5.0;
  scores[0][0][1][0] = 0.5;
  const auto labels = argmax_labels(scores);
  EXPECT_EQ(labels.scalar_type(), torch::kUInt8);
  EXPECT_EQ(labels.sizes().vec(), (std::vector<int64_t>{1, 2, 2, 2}));
  EXPECT_EQ(labels[0][0][0][0].item<int>(), 1);
  EXPECT_EQ(labels[0][1][1][1].item<int>(), 2);
  EXPECT_EQ(labels[0][0][1][0].item<int>(), 0);
  EXPECT_EQ(labels[0][1][0][0].item<int>(), 0);  // all tied at 0: the first class
}

TEST(ArgmaxLabels, MatchesTorchArgmaxForLargeHalfAndBatchedScores) {
  torch::manual_seed(3);
  // Large enough for several slabs (slab = 4M / (C * Y * X) slices).
  const auto scores = torch::randn({4, 24, 256, 256});
  const auto expected = scores.argmax(0, true).to(torch::kUInt8);
  EXPECT_TRUE(torch::equal(argmax_labels(scores), expected));
  const auto half = torch::randn({3, 5, 6, 7}).to(torch::kHalf);
  EXPECT_TRUE(torch::equal(argmax_labels(half), half.to(torch::kFloat).argmax(0, true).to(torch::kUInt8)));
  const auto batched = torch::randn({2, 3, 5, 6, 7});
  EXPECT_TRUE(torch::equal(argmax_labels(batched), batched.argmax(1, true).to(torch::kUInt8)));
}

TEST(ArgmaxLabels, TiesNanAndStridedScoresAsTorchArgmax) {
  torch::manual_seed(5);
  // Rounded scores tie often; NaN counts as the largest (the first NaN wins), as in torch::argmax.
  auto scores = (torch::randn({5, 9, 10, 11}) * 2).round();
  scores.index_put_({2, 3}, std::numeric_limits<float>::quiet_NaN());
  scores.index_put_({4, 3, 4}, std::numeric_limits<float>::quiet_NaN());
  scores.index_put_({0, 5, 5}, std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(torch::equal(argmax_labels(scores), scores.argmax(0, true).to(torch::kUInt8)));
  EXPECT_EQ(argmax_labels(scores)[0][3][4][0].item<int>(), 2);
  EXPECT_EQ(argmax_labels(scores)[0][5][5][0].item<int>(), 0);
  // A channel-last view (not contiguous) and more voxels than one block of the kernel.
  const auto strided = torch::randn({70, 40, 30, 3}).permute({3, 0, 1, 2});
  ASSERT_FALSE(strided.is_contiguous());
  EXPECT_TRUE(torch::equal(argmax_labels(strided), strided.argmax(0, true).to(torch::kUInt8)));
  // One class: every voxel is 0.
  EXPECT_EQ(argmax_labels(torch::randn({1, 3, 4, 5})).sum().item<int>(), 0);
}

TEST(ArgmaxLabels, RejectsBadInput) {
  EXPECT_THROW(argmax_labels(torch::zeros({257, 1, 1, 1})), InvalidArgument);
  EXPECT_THROW(argmax_labels(torch::zeros({2, 3, 3})), InvalidArgument);
  EXPECT_THROW(argmax_labels(torch::zeros({2, 3, 3, 3}, torch::kLong)), InvalidArgument);
}

}  // namespace
}  // namespace teachformer::inference
