#include "teachformer/train/trainer.hpp"

#include <csignal>
#include <fstream>
#include <optional>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/folder_lock.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/interrupt.hpp"
#include "teachformer/io/safetensors.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/models/state_dict.hpp"
#include "test_support.hpp"

namespace teachformer::train {
namespace {

// Bright cubes on noise: learnable in a few steps.
std::shared_ptr<std::vector<data::TrainingCase>> blob_cases(int n, uint64_t seed, int64_t size = 32) {
  auto cases = std::make_shared<std::vector<data::TrainingCase>>();
  auto gen = at::detail::createCPUGenerator(seed);
  for (int i = 0; i < n; ++i) {
    data::TrainingCase c;
    c.id = "case" + std::to_string(i);
    c.label = torch::zeros({1, size, size, size}, torch::kByte);
    const int64_t a = 4 + 3 * i % 12;
    using torch::indexing::Slice;
    c.label.index_put_({0, Slice(a, a + 10), Slice(a, a + 12), Slice(8, 20)}, 1);
    c.image = torch::randn({2, size, size, size}, gen) * 0.3 + c.label.to(torch::kFloat) * torch::tensor({1.5f, -1.0f}).view({2, 1, 1, 1});
    data::index_foreground(c);
    cases->push_back(std::move(c));
  }
  return cases;
}

models::SegmentationModel tiny_model() {
  return models::create_model("teachformer_s", {{"preset", "tiny"}, {"in_channels", 2}, {"out_channels", 2}});
}

models::WeightsMetadata channels_ct_pet() {
  models::WeightsMetadata m;
  m.channel_names = {"CT", "PET"};
  return m;
}

TrainerOptions tiny_options(int64_t epochs) {
  TrainerOptions o;
  o.epochs = epochs;
  o.steps_per_epoch = 3;
  o.batch_size = 2;
  o.patch_size = {32, 32, 32};
  o.val_every = 1;
  o.optimizer.lr = 3e-3;
  o.schedule.warmup_steps = 2;
  o.deterministic = true;
  o.workers = 1;
  o.seed = 7;
  return o;
}

models::StateDict snapshot(models::SegmentationModelImpl& m) {
  models::StateDict s;
  for (const auto& [k, v] : models::state_dict(m)) s[k] = v.detach().clone();
  return s;
}

std::vector<nlohmann::json> read_log(const fs::path& p) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

TEST(Trainer, LearnsWritesCheckpointsAndLogsEveryStep) {
  test::TempDir dir;
  torch::manual_seed(0);
  auto model = tiny_model();
  auto options = tiny_options(4);
  options.steps_per_epoch = 6;
  Trainer t(model, std::make_shared<SupervisedObjective>(), blob_cases(3, 1), blob_cases(1, 9), options,
            {dir.path()}, channels_ct_pet());
  const TrainSummary s = t.fit();
  EXPECT_EQ(s.steps_run, 24);
  EXPECT_GT(s.best_dice, 0.3);
  for (const auto* f : {"checkpoint_best.safetensors", "checkpoint_final.safetensors", "checkpoint_latest.safetensors",
                        "log.jsonl"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  const auto log = read_log(dir / "log.jsonl");
  int steps = 0, validations = 0;
  double first = 0, last = 0;
  for (const auto& l : log) {
    if (l["type"] == "step") {
      if (steps == 0) first = l["loss"]["total"];
      last = l["loss"]["total"];
      EXPECT_TRUE(l.contains("lr"));
      EXPECT_TRUE(l["loss"].contains("dice"));
      ++steps;
    }
    validations += l["type"] == "validation";
  }
  EXPECT_EQ(steps, 24);
  EXPECT_EQ(validations, 4);
  EXPECT_LT(last, first);
  const auto st = io::read_safetensors(dir / "checkpoint_best.safetensors");
  const auto meta = nlohmann::json::parse(st.metadata.at("teachformer"));
  EXPECT_EQ(meta["model"], "teachformer_s");
  EXPECT_EQ(meta["channel_names"], nlohmann::json({"CT", "PET"}));
  EXPECT_EQ(meta["patch_size"], nlohmann::json({32, 32, 32}));
  EXPECT_TRUE(meta["training"].contains("val_dice"));
}

// A callback that simulates a kill after an epoch's checkpoint was written.
struct KillAfterEpoch : Callback {
  int64_t epoch;
  explicit KillAfterEpoch(int64_t e) : epoch(e) {}
  void on_epoch_end(Trainer&, int64_t e) override {
    if (e == epoch) throw std::runtime_error("killed");
  }
};

TEST(Trainer, KilledAndResumedRunEndsWithTheSameWeightsAsAnUninterruptedRun) {
  test::TempDir a, b;
  auto cases = blob_cases(3, 2);
  auto val = blob_cases(1, 5);
  torch::manual_seed(0);
  auto m1 = tiny_model();
  const auto init = snapshot(*m1);
  Trainer full(m1, std::make_shared<SupervisedObjective>(), cases, val, tiny_options(4), {a.path()}, {});
  full.fit();

  torch::manual_seed(0);
  auto m2 = tiny_model();
  models::load_state_dict(*m2, init);
  {
    Trainer first(m2, std::make_shared<SupervisedObjective>(), cases, val, tiny_options(4), {b.path()}, {});
    first.add_callback(std::make_shared<KillAfterEpoch>(1));
    EXPECT_THROW(first.fit(), std::runtime_error);
  }
  // A fresh process would rebuild the model from scratch: start from other weights to prove they are restored.
  torch::manual_seed(123);
  auto m3 = tiny_model();
  Trainer resumed(m3, std::make_shared<SupervisedObjective>(), cases, val, tiny_options(4), {b.path()}, {});
  const auto s = resumed.fit(/*resume=*/true);
  EXPECT_EQ(s.steps_run, 12);
  const auto wa = snapshot(*m1), wb = snapshot(*m3);
  for (const auto& [k, v] : wa) EXPECT_TRUE(torch::equal(v, wb.at(k))) << k;
  // The log holds each step once.
  int steps = 0;
  for (const auto& l : read_log(b / "log.jsonl")) steps += l["type"] == "step";
  EXPECT_EQ(steps, 12);
}

const std::shared_ptr<const std::vector<data::TrainingCase>> kNoValidation;

// A callback that requests a stop (as SIGTERM would) after a given step.
struct StopAfterStep : Callback {
  int64_t step;
  explicit StopAfterStep(int64_t s) : step(s) {}
  void on_step_end(Trainer&, const StepRecord& r) override {
    if (r.step == step) request_stop(SIGTERM);
  }
};

TEST(Trainer, StopRequestInsideAnEpochSavesAndTheResumedRunMatchesAnUninterruptedOne) {
  test::TempDir a, b;
  auto cases = blob_cases(3, 2);
  auto val = blob_cases(1, 5);
  torch::manual_seed(0);
  auto m1 = tiny_model();
  const auto init = snapshot(*m1);
  Trainer full(m1, std::make_shared<SupervisedObjective>(), cases, val, tiny_options(3), {a.path()}, {});
  full.fit();

  torch::manual_seed(0);
  auto m2 = tiny_model();
  models::load_state_dict(*m2, init);
  {
    Trainer first(m2, std::make_shared<SupervisedObjective>(), cases, val, tiny_options(3), {b.path()}, {});
    first.add_callback(std::make_shared<StopAfterStep>(4));  // the second step of the second epoch
    try {
      first.fit();
      ADD_FAILURE() << "the stop request was ignored";
    } catch (const Interrupted& e) {
      EXPECT_EQ(e.exit_status(), 143);
      EXPECT_NE(std::string(e.what()).find("step 5"), std::string::npos) << e.what();
    }
  }
  clear_stop_request();
  const auto state = io::read_safetensors_header(b / "checkpoint_latest.safetensors");
  const auto saved = nlohmann::json::parse(state.metadata.at("teachformer_training_state"));
  EXPECT_EQ(saved["step"], 5);
  EXPECT_EQ(saved["epochs_done"], 1);
  torch::manual_seed(123);
  auto m3 = tiny_model();
  Trainer resumed(m3, std::make_shared<SupervisedObjective>(), cases, val, tiny_options(3), {b.path()}, {});
  const auto s = resumed.fit(/*resume=*/true);
  EXPECT_EQ(s.steps_run, 9);
  const auto wa = snapshot(*m1), wb = snapshot(*m3);
  for (const auto& [k, v] : wa) EXPECT_TRUE(torch::equal(v, wb.at(k))) << k;
  int steps = 0;
  for (const auto& l : read_log(b / "log.jsonl")) steps += l["type"] == "step";
  EXPECT_EQ(steps, 9);
}

TEST(Trainer, ResumeWithOtherSettingsIsRefusedNamingTheFirstDifference) {
  test::TempDir dir;
  auto cases = blob_cases(2, 2);
  auto val = blob_cases(1, 5);
  torch::manual_seed(0);
  {
    Trainer t(tiny_model(), std::make_shared<SupervisedObjective>(), cases, val, tiny_options(1), {dir.path()}, {});
    t.fit();
  }
  auto other_lr = tiny_options(1);
  other_lr.optimizer.lr = 1e-2;
  try {
    Trainer t(tiny_model(), std::make_shared<SupervisedObjective>(), cases, val, other_lr, {dir.path()}, {});
    t.fit(true);
    ADD_FAILURE() << "a resume with another learning rate was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/trainer/optimizer/lr"), std::string::npos) << e.what();
  }
  try {
    Trainer t(tiny_model(), std::make_shared<SupervisedObjective>(), blob_cases(3, 2), val, tiny_options(1),
              {dir.path()}, {});
    t.fit(true);
    ADD_FAILURE() << "a resume on other cases was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/data/train_cases"), std::string::npos) << e.what();
  }
  try {
    Trainer t(tiny_model(), std::make_shared<SupervisedObjective>(), cases, val, tiny_options(2), {dir.path()}, {});
    t.fit(true);
    ADD_FAILURE() << "more epochs were accepted without being allowed";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/trainer/epochs: 2 now, 1 before"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--allow-changed-settings"), std::string::npos) << e.what();
  }
  Trainer more(tiny_model(), std::make_shared<SupervisedObjective>(), cases, val, tiny_options(2), {dir.path()}, {});
  more.allow_changed_settings(true);
  EXPECT_EQ(more.fit(true).steps_run, 6);
}

// A supervised objective that describes itself as a distillation with the given options.
class DescribedAsDistill : public SupervisedObjective {
 public:
  explicit DescribedAsDistill(nlohmann::json options) : options_(std::move(options)) {}
  nlohmann::json describe() const override { return {{"type", "distill"}, {"options", options_}}; }

 private:
  nlohmann::json options_;
};

TEST(Trainer, ADistillationCheckpointWithoutKdDiceResumesAsKdDiceZero) {
  test::TempDir dir;
  auto cases = blob_cases(2, 2);
  torch::manual_seed(0);
  {
    // Written before the option existed: prediction KD was the KL alone.
    Trainer t(tiny_model(), std::make_shared<DescribedAsDistill>(nlohmann::json{{"temperature", 1.0}}), cases,
              kNoValidation, tiny_options(1), {dir.path()}, {});
    t.fit();
  }
  try {
    const nlohmann::json options{{"temperature", 1.0}, {"kd_dice", 1.0}};
    Trainer t(tiny_model(), std::make_shared<DescribedAsDistill>(options), cases, kNoValidation, tiny_options(1),
              {dir.path()}, {});
    t.fit(true);
    ADD_FAILURE() << "a resume with another kd_dice was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/objective/options/kd_dice: 1.0 now, 0.0 before"), std::string::npos)
        << e.what();
  }
  const nlohmann::json kl_alone{{"temperature", 1.0}, {"kd_dice", 0.0}};
  Trainer same(tiny_model(), std::make_shared<DescribedAsDistill>(kl_alone), cases, kNoValidation, tiny_options(1),
               {dir.path()}, {});
  EXPECT_NO_THROW(same.fit(true));
}

TEST(Trainer, DamagedCheckpointIsAnErrorNamingItAndIsLeftAsItWas) {
  test::TempDir dir;
  auto cases = blob_cases(2, 2);
  torch::manual_seed(0);
  {
    Trainer t(tiny_model(), std::make_shared<SupervisedObjective>(), cases, kNoValidation, tiny_options(1), {dir.path()}, {});
    t.fit();
  }
  const auto latest = dir / "checkpoint_latest.safetensors";
  const auto size = fs::file_size(latest);
  fs::resize_file(latest, size / 2);
  const std::string damaged = read_file(latest);
  try {
    Trainer t(tiny_model(), std::make_shared<SupervisedObjective>(), cases, kNoValidation, tiny_options(2), {dir.path()}, {});
    t.fit(true);
    ADD_FAILURE() << "a truncated checkpoint was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(latest.string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(latest), damaged);
}

TEST(Trainer, SecondTrainerOnTheSameFoldFolderIsRefused) {
  test::TempDir dir;
  const FolderLock other(dir.path(), "model fold folder", FolderLock::Mode::Refuse);
  Trainer t(tiny_model(), std::make_shared<SupervisedObjective>(), blob_cases(2, 2), kNoValidation, tiny_options(1),
            {dir.path()}, {});
  try {
    t.fit();
    ADD_FAILURE() << "two writers of one fold folder";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("in use by another process (pid"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "log.jsonl"));
}

struct NanObjective : Objective {
  losses::LossBreakdown compute(const models::SegOutput& out, const data::Batch&, const StepContext& ctx) override {
    losses::LossBreakdown l;
    l.total = out.logits.mean() * (ctx.step == 2 ? std::numeric_limits<double>::quiet_NaN() : 1.0);
    return l;
  }
  nlohmann::json describe() const override { return {{"type", "nan"}}; }
};

// Records what every step's batch held.
struct BatchRecorder : Objective {
  std::vector<std::vector<bool>> labelled;
  std::vector<std::vector<std::string>> ids;
  losses::LossBreakdown compute(const models::SegOutput& out, const data::Batch& batch, const StepContext&) override {
    labelled.push_back(batch.labelled);
    ids.push_back(batch.case_ids);
    losses::LossBreakdown l;
    l.total = out.logits.mean();
    return l;
  }
  nlohmann::json describe() const override { return {{"type", "recorder"}}; }
};

TEST(Trainer, UnlabelledCasesJoinEachBatchAfterTheUnchangedLabelledSamples) {
  auto unlabelled = blob_cases(3, 5);
  for (auto& c : *unlabelled) {
    c.id = "u_" + c.id;
    c.label = torch::Tensor();
    c.class_locations.clear();
  }
  auto run = [&](std::optional<int64_t> per_batch, bool with_unlabelled) {
    test::TempDir dir;
    auto options = tiny_options(1);
    if (per_batch) options.unlabelled_per_batch = *per_batch;
    auto recorder = std::make_shared<BatchRecorder>();
    Trainer t(tiny_model(), recorder, blob_cases(2, 3), nullptr, options, {dir.path()}, {});
    if (with_unlabelled) t.set_unlabelled_cases(data::in_memory_cases(*unlabelled));
    t.fit();
    return recorder;
  };
  const auto alone = run(std::nullopt, false), mixed = run(std::nullopt, true), one = run(1, true);
  ASSERT_EQ(alone->ids.size(), 3u);
  ASSERT_EQ(mixed->ids.size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    // Default: as many unlabelled samples as labelled ones, after them.
    EXPECT_EQ(mixed->labelled[s], (std::vector<bool>{true, true, false, false}));
    EXPECT_EQ(one->labelled[s], (std::vector<bool>{true, true, false}));
    EXPECT_EQ(std::vector<std::string>(mixed->ids[s].begin(), mixed->ids[s].begin() + 2), alone->ids[s]);
    EXPECT_EQ(mixed->ids[s][2].rfind("u_", 0), 0u);
  }
  auto bad = tiny_options(1);
  nlohmann::json j = to_json(bad);
  j["unlabelled_per_batch"] = 0;
  EXPECT_THROW(trainer_options_from_json(j), ConfigError);
  j["unlabelled_per_batch"] = 3;
  EXPECT_EQ(trainer_options_from_json(j).unlabelled_per_batch, 3);
}

TEST(Trainer, EarlyStoppingEndsTheRunWhenValidationStopsImproving) {
  test::TempDir dir;
  torch::manual_seed(0);
  auto options = tiny_options(10);
  options.early_stop_patience = 2;
  options.early_stop_min_delta = 1.0;  // no validation can improve by a whole Dice point: stop after 1 + 2
  Trainer t(tiny_model(), std::make_shared<SupervisedObjective>(), blob_cases(2, 1), blob_cases(1, 9), options,
            {dir.path()}, channels_ct_pet());
  const TrainSummary s = t.fit();
  EXPECT_TRUE(s.stopped_early);
  EXPECT_EQ(s.epochs_run, 3);
  EXPECT_EQ(s.steps_run, 9);
  const auto log = read_log(dir / "log.jsonl");
  EXPECT_EQ(log.back()["type"], "end");
  EXPECT_EQ(log.back()["stopped_early"], true);
  // Resuming a stopped run does not train on.
  Trainer again(tiny_model(), std::make_shared<SupervisedObjective>(), blob_cases(2, 1), blob_cases(1, 9), options,
                {dir.path()}, channels_ct_pet());
  EXPECT_EQ(again.fit(true).steps_run, 9);
}

TEST(Trainer, EarlyStoppingWaitsForItsMinimumEpochs) {
  test::TempDir dir;
  torch::manual_seed(0);
  auto options = tiny_options(10);
  options.early_stop_patience = 2;
  options.early_stop_min_delta = 1.0;
  options.early_stop_min_epochs = 5;
  Trainer t(tiny_model(), std::make_shared<SupervisedObjective>(), blob_cases(2, 1), blob_cases(1, 9), options,
            {dir.path()}, channels_ct_pet());
  const TrainSummary s = t.fit();
  EXPECT_TRUE(s.stopped_early);
  EXPECT_EQ(s.epochs_run, 5);
}

// A model whose validation Dice is still 0 has not started segmenting: patience does not run out on it.
TEST(Trainer, EarlyStoppingNeverEndsARunThatHasNotSegmentedAnythingYet) {
  test::TempDir dir;
  auto options = tiny_options(6);
  options.early_stop_patience = 1;
  Trainer t(tiny_model(), std::make_shared<SupervisedObjective>(), blob_cases(2, 1), blob_cases(1, 9), options,
            {dir.path()}, channels_ct_pet());
  // Zero weights and a background-biased head: the model predicts background everywhere, Dice 0, all along.
  const auto named = t.model().named_parameters();
  ASSERT_TRUE(named.contains("head.bias"));
  {
    torch::NoGradGuard g;
    for (auto& p : t.model().parameters()) p.zero_();
    for (auto& item : t.model().named_parameters())
      if (item.key().find("bias") != std::string::npos && item.value().dim() == 1 && item.value().size(0) == 2)
        item.value().copy_(torch::tensor({10.0f, -10.0f}));
  }
  // Adam moves a bias by about lr per step: 18 steps at 3e-3 cannot undo a margin of 20.
  const TrainSummary s = t.fit();
  EXPECT_FALSE(s.stopped_early);
  EXPECT_EQ(s.epochs_run, 6);
  EXPECT_EQ(s.best_dice, 0.0);
}

TEST(Trainer, LowPrecisionNeedsACudaDevice) {
  auto options = tiny_options(1);
  options.precision = "bf16";
  try {
    Trainer t(tiny_model(), std::make_shared<SupervisedObjective>(), blob_cases(1, 1), nullptr, options, {"/tmp/x"});
    FAIL() << "bf16 autocast on a CPU must be refused";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("--device cuda"), std::string::npos) << e.what();
  }
}

TEST(Trainer, NanLossStopsTheRunNamingTheStep) {
  test::TempDir dir;
  Trainer t(tiny_model(), std::make_shared<NanObjective>(), blob_cases(2, 3), nullptr, tiny_options(2), {dir.path()}, {});
  try {
    t.fit();
    FAIL();
  } catch (const NumericalError& e) {
    EXPECT_NE(std::string(e.what()).find("step 2"), std::string::npos) << e.what();
  }
}

TEST(Trainer, PatchThatDoesNotFitTheModelIsRejectedUpFront) {
  test::TempDir dir;
  auto o = tiny_options(1);
  o.patch_size = {30, 32, 32};
  EXPECT_THROW(Trainer(tiny_model(), std::make_shared<SupervisedObjective>(), blob_cases(1, 1), nullptr, o,
                       {dir.path()}, {}),
               InvalidArgument);
}

}  // namespace
}  // namespace teachformer::train
