#include "teachformer/distill/kd_terms.hpp"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::distill {
namespace {

TEST(AttentionMap, IsChannelMeanOfPowerOfAbsoluteValues) {
  // two channels, 1x1x2 voxels: values (1, -3) and (2, 1)
  auto f = torch::tensor({1.f, 2.f, -3.f, 1.f}).view({1, 2, 1, 1, 2});
  auto m2 = attention_map(f, 2);
  EXPECT_FLOAT_EQ(m2[0][0][0][0][0].item<float>(), (1 + 9) / 2.f);
  EXPECT_FLOAT_EQ(m2[0][0][0][0][1].item<float>(), (4 + 1) / 2.f);
  auto m1 = attention_map(f, 1);
  EXPECT_FLOAT_EQ(m1[0][0][0][0][0].item<float>(), 2.f);
  EXPECT_EQ(m1.sizes(), (std::vector<int64_t>{1, 1, 1, 1, 2}));
}

TEST(AttentionMap, NormalisationAndDistanceMatchHandComputedValues) {
  auto s = torch::tensor({3.f, 4.f}).view({1, 1, 1, 1, 2});
  auto n2 = normalise_map(s, MapNorm::L2);
  EXPECT_FLOAT_EQ(n2[0][0].item<float>(), 0.6f);
  EXPECT_FLOAT_EQ(n2[0][1].item<float>(), 0.8f);
  auto n1 = normalise_map(s, MapNorm::L1);
  EXPECT_NEAR(n1[0][0].item<float>(), 3.f / 7.f, 1e-6);
  auto a = torch::tensor({1.f, 0.f}).view({1, 1, 1, 1, 2});
  auto b = torch::tensor({0.f, 2.f}).view({1, 1, 1, 1, 2});
  AttentionMapOptions o;
  EXPECT_NEAR(attention_map_loss(a, b, o).item<float>(), 2.0, 1e-6);  // ||(1,-1)||^2
  o.distance = MapDistance::L1;
  EXPECT_NEAR(attention_map_loss(a, b, o).item<float>(), 2.0, 1e-6);
  o.norm = MapNorm::L1;
  auto c = torch::tensor({1.f, 3.f}).view({1, 1, 1, 1, 2});
  EXPECT_NEAR(attention_map_loss(a, c, o).item<float>(), 0.75 + 0.75, 1e-6);  // (1,0) vs (.25,.75)
}

TEST(AttentionMap, LossIgnoresScaleAndResamplesTheTeacher) {
  auto s = torch::rand({2, 1, 4, 4, 4}) + 0.1;
  AttentionMapOptions o;
  EXPECT_NEAR(attention_map_loss(s, s * 7.0, o).item<float>(), 0.0, 1e-6);
  // A teacher map on a 2x coarser grid that is constant is compared after trilinear upsampling.
  auto t = torch::ones({2, 1, 2, 2, 2});
  auto flat = torch::ones({2, 1, 4, 4, 4});
  EXPECT_NEAR(attention_map_loss(flat, t, o).item<float>(), 0.0, 1e-6);
  EXPECT_GT(attention_map_loss(s, t, o).item<float>(), 0.0);
}

TEST(PredictionKd, TemperedProbabilitiesEqualSoftmaxOfScaledLogits) {
  auto z = torch::randn({2, 3, 4, 4, 4});
  auto p = torch::softmax(z, 1);
  EXPECT_TRUE(torch::allclose(temper_probabilities(p, 4.0), torch::softmax(z / 4.0, 1), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(temper_probabilities(p, 1.0), p, 1e-5, 1e-6));
}

TEST(PredictionKd, KlPerVoxelMatchesHandComputedValueAndTemperatureScaling) {
  // One voxel, two classes: student logits (0, 0) -> (0.5, 0.5); teacher (0.8, 0.2).
  auto zs = torch::zeros({1, 2, 1, 1, 1});
  auto pt = torch::tensor({0.8f, 0.2f}).view({1, 2, 1, 1, 1});
  const double expected = 0.8 * std::log(0.8 / 0.5) + 0.2 * std::log(0.2 / 0.5);
  EXPECT_NEAR(kl_per_voxel(zs, pt, 1.0).item<float>(), expected, 1e-6);
  EXPECT_NEAR(kl_per_voxel(zs, pt, 2.0).item<float>(), 4.0 * expected, 1e-5);  // logits 0 stay uniform
  auto same = torch::softmax(torch::randn({1, 3, 2, 2, 2}), 1);
  EXPECT_NEAR(kl_per_voxel(same.log(), same, 1.0).abs().max().item<float>(), 0.0, 1e-6);
}

TEST(PredictionKd, MultiTeacherKdEqualsTheSumOfWeightedKlTermsInValueAndGradient) {
  torch::manual_seed(3);
  for (double temperature : {1.0, 2.5}) {
    const auto z = torch::randn({2, 3, 4, 3, 5});
    std::vector<torch::Tensor> probs, weights;
    for (int i = 0; i < 3; ++i) probs.push_back(temper_probabilities(torch::softmax(torch::randn(z.sizes()), 1),
                                                                     temperature));
    weights.push_back(torch::tensor({0.2f, 0.5f}).view({2, 1, 1, 1, 1}));          // per sample
    weights.push_back(torch::rand({2, 1, 4, 3, 5}));                                // per voxel
    weights.push_back(torch::full({1}, 0.3f));                                       // fixed
    auto z1 = z.clone().requires_grad_(true), z2 = z.clone().requires_grad_(true);
    torch::Tensor reference = torch::zeros({});
    std::vector<double> per;
    for (size_t i = 0; i < probs.size(); ++i) {
      const auto t = (kl_per_voxel(z1, probs[i], temperature) * weights[i]).mean();
      per.push_back(t.item<double>());
      reference = reference + t;
    }
    const auto kd = multi_teacher_kd(z2, probs, weights, temperature);
    EXPECT_NEAR(kd.total.item<double>(), reference.item<double>(), 1e-5) << "T " << temperature;
    ASSERT_EQ(kd.per_teacher.size(), 3u);
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(kd.per_teacher[i].item<double>(), per[i], 1e-5) << i;
    EXPECT_FALSE(kd.per_teacher[0].requires_grad());
    EXPECT_TRUE(torch::allclose(kd.mixture, probs[0] * weights[0] + probs[1] * weights[1] + probs[2] * weights[2],
                                1e-5, 1e-7));
    EXPECT_FALSE(kd.mixture.requires_grad());
    reference.backward();
    kd.total.backward();
    EXPECT_TRUE(torch::allclose(z1.grad(), z2.grad(), 1e-5, 1e-7)) << "T " << temperature;
  }
  EXPECT_THROW(multi_teacher_kd(torch::zeros({1, 2, 2, 2, 2}), {torch::zeros({1, 3, 2, 2, 2})},
                                {torch::ones({1})}, 1.0),
               InvalidArgument);
}

TEST(PredictionKd, SoftDiceMatchesHandComputedValueAndIsLeastWhereTheStudentEqualsTheTarget) {
  // Two voxels, two classes: student foreground (0.5, 0.5), target foreground (0.8, 0.2).
  const auto z = torch::zeros({1, 2, 2, 1, 1});
  const auto q = torch::tensor({0.2f, 0.8f, 0.8f, 0.2f}).view({1, 2, 2, 1, 1});
  const double expected = 1.0 - 2 * (0.5 * 0.8 + 0.5 * 0.2) / (0.5 + 0.8 * 0.8 + 0.2 * 0.2);
  EXPECT_NEAR(soft_dice_kd(z, q, 0.0).item<double>(), expected, 1e-6);
  // At the target the loss is 0 and its gradient vanishes; a student scaled away from it (even towards more
  // foreground where the target is faint everywhere) costs more.
  torch::manual_seed(2);
  const auto logits = torch::randn({2, 3, 4, 4, 4}) - torch::tensor({0.f, 4.f, 4.f}).view({1, 3, 1, 1, 1});
  const auto target = torch::softmax(logits, 1);
  auto at = logits.clone().requires_grad_(true);
  const auto l = soft_dice_kd(at, target);
  EXPECT_NEAR(l.item<double>(), 0.0, 1e-6);
  l.backward();
  EXPECT_LT(at.grad().abs().max().item<double>(), 1e-5);
  const auto inflated = logits + torch::tensor({0.f, 1.f, 1.f}).view({1, 3, 1, 1, 1});
  EXPECT_GT(soft_dice_kd(inflated, target).item<double>(), 0.01);
  EXPECT_THROW(soft_dice_kd(torch::zeros({1, 2, 2, 2, 2}), torch::zeros({1, 3, 2, 2, 2})), InvalidArgument);
}

TEST(TeacherWeights, MeanUsesNormalisedFixedWeights) {
  auto p = torch::softmax(torch::randn({1, 2, 2, 2, 2}), 1);
  auto w = teacher_weights({p, p}, {}, Aggregation::Mean, {1.0, 3.0});
  EXPECT_NEAR(w[0].item<float>(), 0.25, 1e-6);
  EXPECT_NEAR(w[1].item<float>(), 0.75, 1e-6);
}

TEST(TeacherWeights, ConfidencePrefersTheLowEntropyTeacherPerVoxel) {
  auto sure = torch::tensor({0.99f, 0.01f}).view({1, 2, 1, 1, 1});
  auto unsure = torch::tensor({0.5f, 0.5f}).view({1, 2, 1, 1, 1});
  auto w = teacher_weights({sure, unsure}, {}, Aggregation::Confidence, {1.0, 1.0}, 0.25);
  EXPECT_GT(w[0].item<float>(), 0.9);
  EXPECT_NEAR((w[0] + w[1]).item<float>(), 1.0, 1e-6);
}

TEST(TeacherWeights, AgreementFollowsCaMkdFormula) {
  // Label 1 everywhere; teacher A gives p(1) = 0.9, teacher B p(1) = 0.3.
  auto label = torch::ones({1, 1, 1, 1, 2}, torch::kByte);
  auto a = torch::tensor({0.1f, 0.1f, 0.9f, 0.9f}).view({1, 2, 1, 1, 2});
  auto b = torch::tensor({0.7f, 0.7f, 0.3f, 0.3f}).view({1, 2, 1, 1, 2});
  auto w = teacher_weights({a, b}, label, Aggregation::Agreement, {1.0, 1.0});
  const double ce_a = -std::log(0.9), ce_b = -std::log(0.3);
  const double sa = std::exp(ce_a) / (std::exp(ce_a) + std::exp(ce_b));
  EXPECT_NEAR(w[0].item<float>(), (1 - sa) / 1.0, 1e-5);
  EXPECT_NEAR(w[1].item<float>(), sa, 1e-5);
  EXPECT_GT(w[0].item<float>(), w[1].item<float>());
  EXPECT_THROW(teacher_weights({a, b}, {}, Aggregation::Agreement, {1.0, 1.0}), InvalidArgument);
}

TEST(TeacherWeights, BadConfigurationIsRejected) {
  auto p = torch::softmax(torch::randn({1, 2, 1, 1, 1}), 1);
  EXPECT_THROW(teacher_weights({p, p}, {}, Aggregation::Mean, {1.0}), InvalidArgument);
  EXPECT_THROW(teacher_weights({p}, {}, Aggregation::Mean, {-1.0}), InvalidArgument);
  EXPECT_THROW(parse_aggregation("median"), ConfigError);
}

// Per voxel, the teacher that is right about the label dominates the KD target.
TEST(TeacherWeights, VoxelAggregationFollowsTheTeacherThatIsRightAtEachVoxel) {
  // Two voxels, label 1 then 0; teacher a is right at voxel 0, teacher b at voxel 1.
  const auto label = torch::tensor({1, 0}, torch::kLong).view({1, 1, 1, 1, 2});
  // probs [B, K, ...]: class 0 row then class 1 row.
  const auto pa = torch::tensor({{0.1f, 0.1f}, {0.9f, 0.9f}}).view({1, 2, 1, 1, 2});  // says 1 everywhere
  const auto pb = torch::tensor({{0.9f, 0.9f}, {0.1f, 0.1f}}).view({1, 2, 1, 1, 2});  // says 0 everywhere
  const auto w = teacher_weights({pa, pb}, label, Aggregation::Voxel, {1.0, 1.0}, 0.25);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_GT(w[0].flatten()[0].item<double>(), 0.99);  // voxel 0 (label 1): a
  EXPECT_LT(w[0].flatten()[1].item<double>(), 0.01);  // voxel 1 (label 0): b
  EXPECT_TRUE(torch::allclose(w[0] + w[1], torch::ones_like(w[0])));
}

TEST(TeacherWeights, DiceWeightsPreferTheTeacherThatFindsTheLesionInEachSample) {
  // Two samples of 4 voxels; the lesion is voxel 0. Teacher a finds it in sample 0 only, b in sample 1 only.
  auto label = torch::zeros({2, 1, 1, 1, 4}, torch::kLong);
  label.index_put_({torch::indexing::Slice(), 0, 0, 0, 0}, 1);
  auto pa = torch::zeros({2, 2, 1, 1, 4});
  auto pb = torch::zeros({2, 2, 1, 1, 4});
  pa.index_put_({torch::indexing::Slice(), 0}, 1.0);
  pb.index_put_({torch::indexing::Slice(), 0}, 1.0);
  pa.index_put_({0, 1, 0, 0, 0}, 1.0);
  pa.index_put_({0, 0, 0, 0, 0}, 0.0);
  pb.index_put_({1, 1, 0, 0, 0}, 1.0);
  pb.index_put_({1, 0, 0, 0, 0}, 0.0);
  const auto da = sample_dice(pa, label), db = sample_dice(pb, label);
  EXPECT_NEAR(da[0].item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(da[1].item<double>(), 0.0, 1e-6);
  const auto w = dice_weights({pa, pb}, label, {1.0, 1.0}, 0.1);
  EXPECT_GT(w[0][0].item<double>(), 0.99);
  EXPECT_LT(w[0][1].item<double>(), 0.01);
  EXPECT_NEAR((w[0] + w[1]).sum().item<double>(), 2.0, 1e-6);
  EXPECT_THROW(dice_weights({pa}, label, {1.0}, 0.0), InvalidArgument);
}

TEST(AttentionMapOptions, FineTapIsOneOfTheTwoDecoderStages) {
  EXPECT_EQ(attention_map_options_from_json({}).fine_tap, "decoder_fine");
  EXPECT_EQ(attention_map_options_from_json({{"fine_tap", "decoder_last"}}).fine_tap, "decoder_last");
  EXPECT_THROW(attention_map_options_from_json({{"fine_tap", "decoder_first"}}), ConfigError);
  const auto s = torch::rand({3, 1, 2, 2, 2}), t = torch::rand({3, 1, 4, 4, 4});
  const AttentionMapOptions o;
  EXPECT_NEAR(attention_map_loss(s, t, o).item<double>(), attention_map_loss_per_sample(s, t, o).mean().item<double>(),
              1e-7);
}

}  // namespace
}  // namespace teachformer::distill
