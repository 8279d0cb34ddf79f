#include "teachformer/train/trainer.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <fstream>

#include "teachformer/core/device.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/io/safetensors.hpp"
#include "teachformer/models/state_dict.hpp"
#include "teachformer/train/validation.hpp"
#include "teachformer/version.hpp"

namespace teachformer::train {
namespace {

constexpr const char* kLatest = "checkpoint_latest.safetensors";
constexpr const char* kBest = "checkpoint_best.safetensors";
constexpr const char* kFinal = "checkpoint_final.safetensors";
constexpr const char* kLog = "log.jsonl";

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TrainerOptions trainer_options_from_json(const nlohmann::json& j) {
  TrainerOptions o;
  JsonReader r(j, "trainer options");
  r.get("epochs", o.epochs).get("steps_per_epoch", o.steps_per_epoch).get("batch_size", o.batch_size);
  r.get("patch_size", o.patch_size).get("foreground_fraction", o.foreground_fraction).get("val_every", o.val_every);
  r.get("val_overlap", o.val_overlap).get("checkpoint_every", o.checkpoint_every).get("grad_clip", o.grad_clip);
  r.get("seed", o.seed).get("deterministic", o.deterministic).get("workers", o.workers).get("device", o.device);
  if (r.has("optimizer")) o.optimizer = optimizer_options_from_json(j["optimizer"]);
  if (r.has("schedule")) o.schedule = schedule_options_from_json(j["schedule"]);
  if (r.has("augment")) o.augment = transforms::augment_options_from_json(j["augment"]);
  r.ignore("optimizer").ignore("schedule").ignore("augment");
  r.finish();
  TF_CHECK(o.epochs >= 1 && o.steps_per_epoch >= 1 && o.batch_size >= 1, ConfigError,
           "trainer options: epochs, steps_per_epoch and batch_size must be >= 1");
  TF_CHECK(o.patch_size.empty() || o.patch_size.size() == 3, ConfigError,
           "trainer options: patch_size must have 3 values [D, H, W], got ", o.patch_size);
  TF_CHECK(o.val_overlap >= 0 && o.val_overlap < 1, ConfigError, "trainer options: val_overlap must be in [0, 1)");
  TF_CHECK(o.checkpoint_every >= 1, ConfigError, "trainer options: checkpoint_every must be >= 1");
  return o;
}

nlohmann::json to_json(const TrainerOptions& o) {
  return {{"epochs", o.epochs},
          {"steps_per_epoch", o.steps_per_epoch},
          {"batch_size", o.batch_size},
          {"patch_size", o.patch_size},
          {"foreground_fraction", o.foreground_fraction},
          {"val_every", o.val_every},
          {"val_overlap", o.val_overlap},
          {"checkpoint_every", o.checkpoint_every},
          {"optimizer", to_json(o.optimizer)},
          {"schedule", to_json(o.schedule)},
          {"grad_clip", o.grad_clip},
          {"augment", transforms::to_json(o.augment)},
          {"seed", o.seed},
          {"deterministic", o.deterministic},
          {"workers", o.workers},
          {"device", o.device}};
}

double mean_foreground_dice(const torch::Tensor& prediction, const torch::Tensor& reference, int64_t num_classes) {
  const auto p = prediction.reshape({-1});
  const auto r = reference.reshape({-1});
  TF_CHECK(p.numel() == r.numel(), InvalidArgument, "dice: prediction has ", p.numel(), " voxels, reference ",
           r.numel());
  double sum = 0;
  int64_t n = 0;
  for (int64_t c = 1; c < num_classes; ++c) {
    const auto pc = p == c;
    const auto rc = r == c;
    const double inter = (pc & rc).sum().item<double>();
    const double total = pc.sum().item<double>() + rc.sum().item<double>();
    sum += total > 0 ? 2.0 * inter / total : 1.0;
    ++n;
  }
  return n ? sum / double(n) : 1.0;
}

Trainer::Trainer(models::SegmentationModel model, std::shared_ptr<Objective> objective,
                 std::shared_ptr<const std::vector<data::TrainingCase>> train_cases,
                 std::shared_ptr<const std::vector<data::TrainingCase>> val_cases, TrainerOptions options,
                 TrainerPaths paths, models::WeightsMetadata weights_metadata)
    : model_(std::move(model)),
      objective_(std::move(objective)),
      train_cases_(std::move(train_cases)),
      val_cases_(std::move(val_cases)),
      options_(std::move(options)),
      paths_(std::move(paths)),
      weights_metadata_(std::move(weights_metadata)),
      device_(parse_device(options_.device)) {
  TF_CHECK(model_ && objective_, InvalidArgument, "trainer: model and objective are required");
  TF_CHECK(train_cases_ && !train_cases_->empty(), InvalidArgument, "trainer: no training cases");
  if (options_.patch_size.empty()) options_.patch_size = model_->spec().fixed_input_size;
  TF_CHECK(options_.patch_size.size() == 3, InvalidArgument, "trainer: patch_size is required for model '",
           model_->spec().key, "'");
  // Fail early, with the model's own message, when the patch does not fit the model.
  model_->check_input(torch::zeros({1, model_->spec().in_channels, options_.patch_size[0], options_.patch_size[1],
                                    options_.patch_size[2]}));
  for (const auto& c : *train_cases_)
    TF_CHECK(c.image.size(0) == model_->spec().in_channels, InvalidArgument, "trainer: case '", c.id, "' has ",
             c.image.size(0), " channels, model '", model_->spec().key, "' expects ", model_->spec().in_channels);
  predictor_ = make_sliding_window_predictor(options_.patch_size, options_.val_overlap, device_);
}

Trainer::~Trainer() = default;

void Trainer::add_callback(std::shared_ptr<Callback> callback) { callbacks_.push_back(std::move(callback)); }
void Trainer::set_case_predictor(CasePredictor predictor) { predictor_ = std::move(predictor); }

void Trainer::append_log(const nlohmann::json& line) const {
  std::ofstream out(paths_.fold_dir / kLog, std::ios::app);
  out << line.dump() << '\n';
}

void Trainer::truncate_log(int64_t after_step) const {
  const auto path = paths_.fold_dir / kLog;
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      const std::string type = j.value("type", "");
      const int64_t step = j.value("step", int64_t(0));
      // Step records carry their 0-based index; epoch, validation and resume records the step count so far.
      if (type == "step" ? step >= after_step : (type != "start" && step > after_step)) continue;
    } catch (const nlohmann::json::exception&) {
      continue;  // a line cut by the kill
    }
    kept += line + '\n';
  }
  write_file_atomic(path, kept);
}

void Trainer::save_weights(const fs::path& path, const nlohmann::json& extra) const {
  models::WeightsMetadata meta = weights_metadata_;
  if (meta.patch_size.empty()) meta.patch_size = options_.patch_size;
  meta.extra["training"] = extra;
  models::save_weights(path, *model_, meta);
}

void Trainer::save_latest(int64_t epochs_done) {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, t] : models::state_dict(*model_)) tensors["model." + name] = t.detach().to(torch::kCPU);
  for (const auto& [name, t] : optimizer_state(*optimizer_, params_)) tensors["optimizer." + name] = t;
  auto gen = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    tensors["rng.torch_cpu"] = gen.get_state();
  }
  const nlohmann::json state = {{"epochs_done", epochs_done}, {"step", step_},
                                {"best_dice", best_dice_},    {"best_epoch", best_epoch_},
                                {"model", model_->spec().key}, {"options", model_->spec().options},
                                {"trainer", to_json(options_)}, {"tool_version", kVersion}};
  io::write_safetensors(paths_.fold_dir / kLatest, tensors, {{"teachformer_training_state", state.dump()}});
}

void Trainer::load_latest() {
  const auto path = paths_.fold_dir / kLatest;
  require_exists(path, "resume checkpoint");
  const io::SafeTensors st = io::read_safetensors(path);
  auto it = st.metadata.find("teachformer_training_state");
  TF_CHECK(it != st.metadata.end(), FormatError, "'", path.string(), "' is not a TeachFormer training checkpoint");
  const auto state = nlohmann::json::parse(it->second);
  TF_CHECK(state.at("model") == model_->spec().key && state.at("options") == model_->spec().options, InvalidArgument,
           "'", path.string(), "' was written for model '", state.at("model").get<std::string>(), "' with options ",
           state.at("options").dump(), ", not for '", model_->spec().key, "' with ", model_->spec().options.dump());
  models::StateDict weights;
  std::map<std::string, torch::Tensor> optim;
  for (const auto& [name, t] : st.tensors) {
    if (name.rfind("model.", 0) == 0) weights[name.substr(6)] = t;
    if (name.rfind("optimizer.", 0) == 0) optim[name.substr(10)] = t;
  }
  models::load_state_dict(*model_, weights);
  load_optimizer_state(*optimizer_, params_, optim);
  if (st.contains("rng.torch_cpu")) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(st.at("rng.torch_cpu"));
  }
  epochs_done_ = state.at("epochs_done").get<int64_t>();
  step_ = state.at("step").get<int64_t>();
  best_dice_ = state.at("best_dice").get<double>();
  best_epoch_ = state.at("best_epoch").get<int64_t>();
}

ValidationResult Trainer::validate(int64_t epoch) {
  ValidationResult result;
  result.epoch = epoch;
  const auto t0 = std::chrono::steady_clock::now();
  if (!val_cases_ || val_cases_->empty()) return result;
  model_->eval();
  double sum = 0;
  for (const auto& c : *val_cases_) {
    torch::Tensor probs;
    {
      torch::NoGradGuard no_grad;
      probs = predictor_(*model_, c.image);
    }
    const auto pred = probs.argmax(0);
    const double dice = mean_foreground_dice(pred, c.label, model_->spec().out_channels);
    result.per_case[c.id] = dice;
    sum += dice;
  }
  model_->train();
  result.mean_dice = sum / double(val_cases_->size());
  result.seconds = seconds_since(t0);
  return result;
}

TrainSummary Trainer::fit(bool resume) {
  const auto t_start = std::chrono::steady_clock::now();
  fs::create_directories(paths_.fold_dir);
  if (options_.deterministic) at::globalContext().setDeterministicAlgorithms(true, false);
  torch::manual_seed(options_.seed);
  model_->to(device_);
  objective_->to(device_);
  model_->train();
  params_.clear();
  for (const auto& item : model_->named_parameters()) params_.emplace_back(item.key(), item.value());
  optimizer_ = make_optimizer(params_, options_.optimizer);
  epochs_done_ = 0;
  step_ = 0;
  best_dice_ = -1;
  best_epoch_ = -1;
  if (resume && fs::exists(paths_.fold_dir / kLatest)) {
    load_latest();
    truncate_log(step_);
    append_log({{"type", "resume"}, {"step", step_}, {"epoch", epochs_done_}});
    spdlog::info("resuming from epoch {} (step {})", epochs_done_, step_);
  } else {
    std::error_code ec;
    fs::remove(paths_.fold_dir / kLog, ec);
    append_log({{"type", "start"}, {"step", 0}, {"model", model_->spec().key}, {"options", model_->spec().options},
                {"trainer", to_json(options_)}, {"objective", objective_->describe()}});
  }

  data::PatchSamplerOptions so;
  so.patch_size = options_.patch_size;
  so.foreground_fraction = options_.foreground_fraction;
  so.align = 1;
  for (const auto& c : *train_cases_)
    for (const auto& kv : c.extras) so.align = std::max(so.align, kv.second.factor);
  data::LoaderOptions lo;
  lo.batch_size = options_.batch_size;
  lo.workers = options_.workers;
  lo.seed = options_.seed;
  data::PatchLoader loader(train_cases_, data::PatchSampler(so, options_.augment), options_.augment, lo);

  const int64_t total_steps = options_.epochs * options_.steps_per_epoch;
  const models::TapRequest taps = objective_->taps();
  for (auto& cb : callbacks_) cb->on_train_start(*this);
  ProgressBar bar("train " + model_->spec().key, total_steps);
  bar.update(step_);
  double step_seconds = 0;
  int64_t steps_timed = 0;
  double last_dice = -1;
  for (int64_t epoch = epochs_done_; epoch < options_.epochs; ++epoch) {
    for (auto& cb : callbacks_) cb->on_epoch_start(*this, epoch);
    double epoch_loss = 0;
    for (int64_t i = 0; i < options_.steps_per_epoch; ++i, ++step_) {
      const auto t0 = std::chrono::steady_clock::now();
      data::Batch batch = loader.get(step_);
      batch.image = batch.image.to(device_);
      if (batch.label.defined()) batch.label = batch.label.to(device_);
      for (auto& kv : batch.extras) kv.second.data = kv.second.data.to(device_);
      const double lr = scheduled_lr(options_.schedule, options_.optimizer.lr, step_, total_steps);
      set_learning_rate(*optimizer_, lr);
      optimizer_->zero_grad();
      const models::SegOutput out = model_->forward(batch.image, taps);
      const StepContext ctx{step_, epoch, options_.steps_per_epoch, options_.epochs};
      losses::LossBreakdown loss = objective_->compute(out, batch, ctx);
      const double total = loss.total.item<double>();
      if (!std::isfinite(total))
        TF_THROW(NumericalError, "training stopped at step ", step_, " (epoch ", epoch, "): the loss is ", total,
                 " (", loss.summary(), "); lower the learning rate or check the data");
      loss.total.backward();
      if (options_.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model_->parameters(), options_.grad_clip);
      optimizer_->step();
      StepRecord rec;
      rec.step = step_;
      rec.epoch = epoch;
      rec.lr = lr;
      rec.losses = loss.values();
      rec.seconds = seconds_since(t0);
      step_seconds += rec.seconds;
      ++steps_timed;
      epoch_loss += total;
      nlohmann::json line = {{"type", "step"}, {"step", step_}, {"epoch", epoch}, {"lr", lr}, {"seconds", rec.seconds}};
      for (const auto& [name, v] : rec.losses) line["loss"][name] = v;
      append_log(line);
      for (auto& cb : callbacks_) cb->on_step_end(*this, rec);
      char status[96];
      std::snprintf(status, sizeof status, "epoch %lld/%lld loss %.4f", (long long)epoch + 1,
                    (long long)options_.epochs, total);
      bar.update(step_ + 1, status);
    }
    const bool last = epoch + 1 == options_.epochs;
    if (options_.val_every > 0 && ((epoch + 1) % options_.val_every == 0 || last) && val_cases_ &&
        !val_cases_->empty()) {
      const ValidationResult v = validate(epoch);
      last_dice = v.mean_dice;
      nlohmann::json line = {{"type", "validation"}, {"step", step_}, {"epoch", epoch},
                             {"mean_dice", v.mean_dice}, {"per_case", v.per_case}, {"seconds", v.seconds}};
      append_log(line);
      spdlog::info("epoch {}: validation Dice {:.4f} ({} cases, {:.1f}s)", epoch + 1, v.mean_dice, v.per_case.size(),
                   v.seconds);
      if (v.mean_dice > best_dice_) {
        best_dice_ = v.mean_dice;
        best_epoch_ = epoch;
        save_weights(paths_.fold_dir / kBest, {{"epoch", epoch}, {"val_dice", v.mean_dice}, {"kind", "best"}});
      }
      for (auto& cb : callbacks_) cb->on_validation(*this, v);
    }
    epochs_done_ = epoch + 1;
    append_log({{"type", "epoch"}, {"step", step_}, {"epoch", epoch},
                {"mean_loss", epoch_loss / double(options_.steps_per_epoch)}});
    if (epochs_done_ % options_.checkpoint_every == 0 || last) save_latest(epochs_done_);
    for (auto& cb : callbacks_) cb->on_epoch_end(*this, epoch);
  }
  bar.finish();
  save_weights(paths_.fold_dir / kFinal, {{"epoch", options_.epochs - 1}, {"val_dice", last_dice}, {"kind", "final"}});
  if (best_epoch_ < 0) {
    // No validation cases (e.g. fold "all"): the final weights are the best we know.
    write_atomically(paths_.fold_dir / kBest, [&](const fs::path& tmp) { fs::copy_file(paths_.fold_dir / kFinal, tmp); });
  }
  TrainSummary s;
  s.epochs_run = options_.epochs;
  s.steps_run = step_;
  s.best_dice = best_dice_;
  s.best_epoch = best_epoch_;
  s.last_dice = last_dice;
  s.seconds = seconds_since(t_start);
  s.seconds_per_step = steps_timed ? step_seconds / double(steps_timed) : 0;
  append_log({{"type", "end"}, {"step", step_}, {"best_dice", best_dice_}, {"best_epoch", best_epoch_},
              {"seconds", s.seconds}});
  return s;
}

}  // namespace teachformer::train
