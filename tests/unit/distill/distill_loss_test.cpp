#include "teachformer/distill/distill_loss.hpp"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/models/registry.hpp"

namespace teachformer::distill {
namespace {

models::SegmentationModel tiny_student(int64_t in_channels = 2) {
  return models::create_model("teachformer_s", {{"preset", "tiny"}, {"in_channels", in_channels}, {"out_channels", 2}});
}

// The student's tap grids for a patch, found by one forward pass.
KnowledgeGrid probe_grid(models::SegmentationModelImpl& m, int64_t size) {
  torch::NoGradGuard g;
  const auto out = m.forward(torch::zeros({1, m.spec().in_channels, size, size, size}), {true, false, false});
  KnowledgeGrid grid;
  grid.coarse = out.taps.at(models::kEncoderCoarse).sizes().slice(2).vec();
  grid.fine = out.taps.at(models::kDecoderFine).sizes().slice(2).vec();
  return grid;
}

struct Case {
  torch::Tensor image, label;
  std::map<std::string, torch::Tensor> cached;
};

DistillBatch batch_of(const Case& c, int64_t step = 0, int64_t epochs = 1, int64_t steps_per_epoch = 1) {
  DistillBatch b;
  b.image = c.image.unsqueeze(0);
  b.label = c.label.unsqueeze(0);
  for (const auto& [name, t] : c.cached) b.cached[name] = t.unsqueeze(0);
  b.step = step;
  b.epochs = epochs;
  b.steps_per_epoch = steps_per_epoch;
  return b;
}

TEST(DistillLoss, GradientsReachTheStudentFromEveryTerm) {
  torch::manual_seed(3);
  auto student = tiny_student();
  auto teacher = std::make_shared<Teacher>("t", tiny_student(), std::vector<int64_t>{0, 1}, 1.0, "test");
  KnowledgeGrid grid = probe_grid(*student, 32);
  Case c;
  c.image = torch::randn({2, 32, 32, 32});
  c.label = (torch::rand({1, 32, 32, 32}) > 0.5).to(torch::kByte);
  const auto batch = batch_of(c);
  for (const std::string term : {"kd", "attn_coarse", "attn_fine"}) {
    DistillOptions o;
    o.strategy = strategy_from_json({{"stages", {{{"weights", {{term, 1.0}}}}}}});
    DistillLoss obj({teacher}, o, grid, false);
    student->zero_grad();
    const auto out = student->forward(batch.image, obj.taps());
    obj.compute(out, batch).total.backward();
    double norm = 0;
    for (const auto& p : student->parameters())
      if (p.grad().defined()) norm += p.grad().norm().item<double>();
    EXPECT_GT(norm, 0.0) << term;
    for (const auto& p : teacher->model()->parameters()) EXPECT_FALSE(p.grad().defined()) << term;
  }
}

TEST(DistillLoss, TeacherOnFewerChannelsReceivesJustItsChannels) {
  torch::manual_seed(4);
  auto pet_only = tiny_student(1);
  Teacher t("pet", pet_only, {1}, 1.0, "test");
  const auto x = torch::randn({1, 2, 32, 32, 32});
  EXPECT_TRUE(torch::equal(t.select_channels(x), x.narrow(1, 1, 1)));
  KnowledgeGrid grid{{2, 2, 2}, {16, 16, 16}, 2};
  const auto k = t.run(x, grid, true, false);
  torch::NoGradGuard g;
  const auto direct = torch::softmax(pet_only->forward(x.narrow(1, 1, 1), {false, false, false}).logits, 1);
  EXPECT_TRUE(torch::allclose(k.probs, direct, 1e-5, 1e-6));
  EXPECT_EQ(k.coarse.sizes().slice(2).vec(), grid.coarse);
  EXPECT_THROW(Teacher("bad", pet_only, {0, 1}, 1.0, "test"), InvalidArgument);
}

TEST(DistillLoss, KnowledgeDistillationWithoutTeachersIsRejected) {
  DistillOptions o;
  o.strategy = strategy_preset("teachformer");
  EXPECT_THROW(DistillLoss({}, o, KnowledgeGrid{}, false), InvalidArgument);
  o.strategy = strategy_preset("student_alone");
  EXPECT_NO_THROW(DistillLoss({}, o, KnowledgeGrid{}, false));
}

// A tiny student, teachers "a" (weight 1) and "b" (weight 3) of the same kind, its tap grids at 32^3 and one
// random labelled case whose foreground covers about 1 - `background` of the voxels.
struct TwoTeachers {
  models::SegmentationModel student = tiny_student();
  std::shared_ptr<Teacher> a = std::make_shared<Teacher>("a", tiny_student(), std::vector<int64_t>{0, 1}, 1.0, "test");
  std::shared_ptr<Teacher> b = std::make_shared<Teacher>("b", tiny_student(), std::vector<int64_t>{0, 1}, 3.0, "test");
  KnowledgeGrid grid = probe_grid(*student, 32);
  Case c;
  explicit TwoTeachers(double background) {
    c.image = torch::randn({2, 32, 32, 32});
    c.label = (torch::rand({1, 32, 32, 32}) > background).to(torch::kByte);
  }
};

TEST(DistillLoss, LogsEveryTermWeightAndTeacherWeight) {
  torch::manual_seed(5);
  TwoTeachers t(0.5);
  DistillOptions o;
  o.aggregation = Aggregation::Mean;
  o.strategy = strategy_preset("teachformer");
  DistillLoss obj({t.a, t.b}, o, t.grid, false);
  const auto out = t.student->forward(batch_of(t.c).image, obj.taps());
  const auto l = obj.compute(out, batch_of(t.c, 50, 10, 10));  // joint stage
  for (const auto& name : {"gt", "kd", "kd.a", "kd.b", "attn_coarse.a", "attn_fine.b", "weight.gt", "weight.kd",
                           "weight.attn_coarse", "teacher_weight.a", "teacher_weight.b"})
    EXPECT_TRUE(l.has_term(name)) << name;
  EXPECT_NEAR(l.term("teacher_weight.b").item<double>(), 0.75, 1e-6);
}

TEST(DistillLoss, KdDiceAddsTheSoftDiceAgainstTheTeachersMixtureToThePredictionTerm) {
  torch::manual_seed(8);
  TwoTeachers t(0.7);
  const auto& [student, t1, t2, grid, c] = t;
  DistillOptions o;
  o.aggregation = Aggregation::Mean;
  o.strategy = strategy_from_json({{"stages", {{{"weights", {{"gt", 1.0}, {"kd", 1.0}}}}}}});
  o.kd_dice = 0;  // KL only
  DistillLoss plain({t1, t2}, o, grid, false);
  o.kd_dice = 0.5;
  DistillLoss with_dice({t1, t2}, o, grid, false);
  torch::NoGradGuard g;
  const auto out = student->forward(batch_of(c).image, plain.taps());
  const auto a = plain.compute(out, batch_of(c));
  const auto b = with_dice.compute(out, batch_of(c));
  EXPECT_FALSE(a.has_term("kd_dice"));
  ASSERT_TRUE(b.has_term("kd_dice"));
  // The mixture with the Mean weights 1/4, 3/4 of the teachers' probabilities.
  const auto x = batch_of(c).image;
  const auto pa = torch::softmax(t1->model()->forward(x, {false, false, false}).logits, 1);
  const auto pb = torch::softmax(t2->model()->forward(x, {false, false, false}).logits, 1);
  const double dice = soft_dice_kd(out.logits, 0.25 * pa + 0.75 * pb).item<double>();
  EXPECT_NEAR(b.term("kd_dice").item<double>(), dice, 1e-5);
  EXPECT_NEAR(b.term("kd").item<double>(), a.term("kd").item<double>() + 0.5 * dice, 1e-5);
  EXPECT_NEAR(b.total.item<double>(), a.total.item<double>() + 0.5 * dice, 1e-5);
  // The option reads and writes as JSON, 1 by default (KL + Dice), and refuses a negative weight.
  EXPECT_EQ(distill_options_from_json({{"kd_dice", 0.5}}).kd_dice, 0.5);
  EXPECT_EQ(distill_options_from_json({{"kd_dice", 0}}).kd_dice, 0.0);
  EXPECT_EQ(to_json(o).at("kd_dice").get<double>(), 0.5);
  EXPECT_EQ(distill_options_from_json(nlohmann::json::object()).kd_dice, 1.0);
  EXPECT_EQ(to_json(DistillOptions{}).at("kd_dice").get<double>(), 1.0);
  EXPECT_THROW(distill_options_from_json({{"kd_dice", -1}}), ConfigError);
}

// Unlabelled samples train only from the teachers: their ground-truth term is left out.
TEST(DistillLoss, UnlabelledSamplesHaveNoGroundTruthTerm) {
  torch::manual_seed(6);
  auto student = tiny_student();
  auto teacher = std::make_shared<Teacher>("t", tiny_student(), std::vector<int64_t>{0, 1}, 1.0, "test");
  KnowledgeGrid grid = probe_grid(*student, 32);
  Case c;
  c.image = torch::randn({2, 32, 32, 32});
  c.label = (torch::rand({1, 32, 32, 32}) > 0.6).to(torch::kByte);
  DistillBatch two;
  two.image = torch::stack({c.image, c.image});
  two.label = torch::stack({c.label, torch::zeros_like(c.label)});
  two.labelled = {true, false};
  DistillOptions o;
  o.strategy = strategy_preset("hinton");
  DistillLoss loss({teacher}, o, grid, false);
  const auto out = student->forward(two.image, loss.taps());
  const auto l = loss.compute(out, two);
  // gt of the labelled sample alone, scaled by its share of the batch.
  DistillBatch one = batch_of(c);
  const auto out1 = student->forward(one.image, loss.taps());
  const auto l1 = loss.compute(out1, one);
  EXPECT_NEAR(l.term("gt").item<double>(), 0.5 * l1.term("gt").item<double>(), 1e-4);
  EXPECT_GT(l.term("kd").item<double>(), 0.0);
  two.labelled = {false, false};
  EXPECT_EQ(loss.compute(out, two).term("gt").item<double>(), 0.0);
}

// A batch drawn only from unlabelled cases carries no label tensor at all (the loader leaves it undefined): the
// label-based teacher weights fall back to the teachers' confidence for every term.
TEST(DistillLoss, ABatchOfUnlabelledSamplesOnlyNeedsNoLabel) {
  torch::manual_seed(8);
  auto student = tiny_student();
  auto t1 = std::make_shared<Teacher>("a", tiny_student(), std::vector<int64_t>{0, 1}, 1.0, "test");
  auto t2 = std::make_shared<Teacher>("b", tiny_student(), std::vector<int64_t>{0, 1}, 1.0, "test");
  KnowledgeGrid grid = probe_grid(*student, 32);
  DistillBatch batch;
  batch.image = torch::randn({2, 2, 32, 32, 32});
  batch.labelled = {false, false};
  batch.step = 50, batch.epochs = 10, batch.steps_per_epoch = 10;  // the joint stage: kd and both maps
  for (const auto aggregation : {Aggregation::Voxel, Aggregation::Agreement, Aggregation::Confidence}) {
    DistillOptions o;
    o.aggregation = aggregation;
    o.strategy = strategy_preset("teachformer");
    DistillLoss loss({t1, t2}, o, grid, false);
    const auto out = student->forward(batch.image, loss.taps());
    losses::LossBreakdown l;
    ASSERT_NO_THROW(l = loss.compute(out, batch)) << to_string(aggregation);
    EXPECT_EQ(l.term("gt").item<double>(), 0.0);
    EXPECT_GT(l.term("kd").item<double>(), 0.0) << to_string(aggregation);
    EXPECT_GT(l.term("attn_fine").item<double>(), 0.0) << to_string(aggregation);
    l.total.backward();
  }
}

TEST(DistillLoss, TermsThatCannotBeComputedAreErrorsAtTheStart) {
  torch::manual_seed(7);
  auto student = tiny_student();
  auto teacher = std::make_shared<Teacher>("t", tiny_student(), std::vector<int64_t>{0, 1}, 1.0, "test");
  KnowledgeGrid grid = probe_grid(*student, 32);
  DistillOptions o;
  o.strategy = strategy_from_json({{"stages", {{{"weights", {{"gt", 1.0}, {"attn_probs", 1.0}}}}}}});
  try {
    DistillLoss cached({teacher}, o, grid, true);
    FAIL() << "attention probabilities cannot come from the cache";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("attn_probs"), std::string::npos) << e.what();
  }
  // Live: the probabilities of teacher and student have the same token count here (same model).
  DistillLoss live({teacher}, o, grid, false);
  const auto probe = student->forward(torch::zeros({1, 2, 32, 32, 32}), {true, true, false, false});
  EXPECT_NO_THROW(live.check_terms(probe, {32, 32, 32}));
  // The fine map of a teacher tap that does not exist.
  DistillOptions last;
  last.strategy = strategy_preset("at");
  last.attention.fine_tap = "decoder_last";
  DistillLoss missing({teacher}, last, grid, false);
  try {
    missing.check_terms(probe, {32, 32, 32});
    FAIL() << "the student model has no decoder_last tap";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("decoder_last"), std::string::npos) << e.what();
  }
}

TEST(DistillLoss, DescribeListsTheActiveTermsOfEachStage) {
  DistillOptions o;
  o.strategy = strategy_preset("teachformer");
  auto teacher = std::make_shared<Teacher>("t", tiny_student(), std::vector<int64_t>{0, 1}, 1.0, "test");
  DistillLoss loss({teacher}, o, KnowledgeGrid{{2, 2, 2}, {16, 16, 16}, 2}, true);
  const auto d = loss.describe();
  ASSERT_EQ(d.at("stages").size(), 3u);
  EXPECT_FALSE(d.at("stages")[0].at("active_terms").contains("kd"));
  EXPECT_TRUE(d.at("stages")[1].at("active_terms").contains("kd"));
  EXPECT_EQ(d.at("stages")[2].at("active_terms").at("attn_fine").at("to"), 0.0);
}

// With balancing on, each KD term's scale brings its gradient to the ground truth's at the tensor it acts on.
TEST(DistillLoss, BalancingScalesTheTermsAndSurvivesAResume) {
  torch::manual_seed(8);
  auto student = tiny_student();
  auto teacher = std::make_shared<Teacher>("t", tiny_student(), std::vector<int64_t>{0, 1}, 1.0, "test");
  KnowledgeGrid grid = probe_grid(*student, 32);
  Case c;
  c.image = torch::randn({2, 32, 32, 32});
  c.label = (torch::rand({1, 32, 32, 32}) > 0.6).to(torch::kByte);
  DistillOptions o;
  o.strategy = strategy_preset("multi_no_staging");
  o.balance.enabled = true;
  o.balance.every = 1;
  DistillLoss loss({teacher}, o, grid, false);
  const auto out = student->forward(batch_of(c).image, loss.taps());
  const auto l = loss.compute(out, batch_of(c));
  for (const char* term : {"scale.kd", "scale.attn_coarse", "scale.attn_fine"}) {
    const double s = l.term(term).item<double>();
    EXPECT_TRUE(std::isfinite(s) && s > 0) << term;
    EXPECT_NE(s, 1.0) << term;
  }
  const auto state = loss.state();
  DistillLoss resumed({teacher}, o, grid, false);
  resumed.load_state(state);
  EXPECT_EQ(resumed.state(), state);
}

}  // namespace
}  // namespace teachformer::distill
