#include "teachformer/pipeline/teacher_cache_builder.hpp"

#include "teachformer/distill/distill_loss.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/models/registry.hpp"

namespace teachformer::pipeline {
namespace {

using namespace distill;

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

TEST(TeacherCacheBuilder, CachedTeacherEqualsLiveTeacherOnTheSamePatch) {
  torch::manual_seed(1);
  auto student = tiny_student();
  torch::manual_seed(2);
  auto teacher_model = tiny_student();
  auto teacher = std::make_shared<Teacher>("t1", teacher_model, std::vector<int64_t>{0, 1}, 1.0, "test");
  const int64_t size = 32;
  KnowledgeGrid grid = probe_grid(*student, size);
  Case c;
  c.image = torch::randn({2, size, size, size});
  c.label = (torch::rand({1, size, size, size}) > 0.7).to(torch::kByte);
  CacheSettings s;
  s.coarse_factor = size / grid.coarse[0];
  s.fine_factor = size / grid.fine[0];
  s.roi = {size, size, size};
  const CachedCase cc = compute_cached_case(c.image, *teacher, s);
  c.cached[cache_extra_name("t1", "probs")] = cc.probs;
  c.cached[cache_extra_name("t1", "coarse")] = cc.coarse;
  c.cached[cache_extra_name("t1", "fine")] = cc.fine;
  const DistillBatch batch = batch_of(c);

  DistillOptions o;
  o.strategy = strategy_preset("multi_no_staging");
  DistillLoss live({teacher}, o, grid, false), cached({teacher}, o, grid, true);
  const auto out = student->forward(batch.image, live.taps());
  const auto a = live.compute(out, batch);
  const auto b = cached.compute(out, batch);
  for (const auto& name : {"gt", "attn_coarse", "attn_fine", "attn_coarse.t1", "attn_fine.t1"})
    EXPECT_NEAR(a.term(name).item<double>(), b.term(name).item<double>(), 1e-5) << name;
  // probabilities are cached as float16
  EXPECT_NEAR(a.term("kd").item<double>(), b.term("kd").item<double>(), 2e-3 * (1 + a.term("kd").item<double>()));
  EXPECT_NEAR(a.total.item<double>(), b.total.item<double>(), 5e-3);
  EXPECT_GT(a.term("attn_coarse").item<double>(), 0.0);
  EXPECT_GT(a.term("kd").item<double>(), 0.0);
}

// A PET-only teacher: its cache reads PET out of the dataset's channels (index 1 of CT, PET), and matches it
// live whether the student sees CT and PET or PET alone.
TEST(TeacherCacheBuilder, ChannelSubsetTeacherEqualsLiveForFullAndSubsetStudents) {
  torch::manual_seed(11);
  auto pet_model = tiny_student(1);
  const int64_t size = 32;
  const auto image = torch::randn({2, size, size, size});  // the dataset's CT, PET
  const Teacher for_cache("pet", pet_model, {1}, 1.0, "test", {"PET"});
  CacheSettings s;
  s.coarse_factor = 16;
  s.fine_factor = 2;
  s.roi = {size, size, size};
  const CachedCase cc = compute_cached_case(image, for_cache, s);
  KnowledgeGrid grid{{size / 16, size / 16, size / 16}, {size / 2, size / 2, size / 2}, 2};
  // A student on CT and PET: the teacher reads channel 1 of its input.
  const Teacher live_full("pet", pet_model, {1}, 1.0, "test", {"PET"});
  const auto full = live_full.run(image.unsqueeze(0), grid, true, false);
  // A PET-only student: channel 0 of its input.
  const Teacher live_pet("pet", pet_model, {0}, 1.0, "test", {"PET"});
  const auto pet = live_pet.run(image.narrow(0, 1, 1).unsqueeze(0), grid, true, false);
  for (const auto* k : {&full, &pet}) {
    EXPECT_TRUE(torch::allclose(k->probs.squeeze(0), cc.probs.to(torch::kFloat), 2e-3, 2e-3));
    EXPECT_TRUE(torch::allclose(k->coarse.squeeze(0), cc.coarse, 1e-4, 1e-5));
    EXPECT_TRUE(torch::allclose(k->fine.squeeze(0), cc.fine, 1e-4, 1e-5));
  }
  // Reading CT instead (the mistake of indexing the dataset with the student's channel positions) differs.
  const Teacher wrong("pet", pet_model, {0}, 1.0, "test", {"PET"});
  EXPECT_FALSE(torch::allclose(compute_cached_case(image, wrong, s).probs.to(torch::kFloat), cc.probs.to(torch::kFloat),
                               2e-3, 2e-3));
}

}  // namespace
}  // namespace teachformer::pipeline
