#include "teachformer/train/trainer.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <fstream>

#include "teachformer/core/device.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/interrupt.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/dist/gradient_reducer.hpp"
#include "teachformer/dist/process_group.hpp"
#include "teachformer/inference/ensemble.hpp"
#include "teachformer/io/safetensors.hpp"
#include "teachformer/models/state_dict.hpp"
#include "teachformer/train/validation.hpp"
#include "teachformer/version.hpp"
#include "train/detail/precision.hpp"

namespace teachformer::train {
namespace {

constexpr const char* kLatest = "checkpoint_latest.safetensors";
constexpr const char* kBest = "checkpoint_best.safetensors";
constexpr const char* kFinal = "checkpoint_final.safetensors";
constexpr const char* kLog = "log.jsonl";

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The generator whose state a checkpoint keeps for exact resume: the CPU one, plus the device's for CUDA runs.
at::Generator device_generator(const c10::Device& device) { return at::globalContext().defaultGenerator(device); }

torch::Tensor generator_state(at::Generator gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(at::Generator gen, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// A short digest of a tensor's bytes (contiguous CPU copy): equal batches give equal digests.
std::string tensor_digest(const torch::Tensor& t) {
  if (!t.defined()) return "";
  const auto c = t.detach().to(torch::kCPU).contiguous();
  const auto* p = static_cast<const unsigned char*>(c.data_ptr());
  uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  const size_t n = size_t(c.numel()) * c.element_size();
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

TrainerOptions trainer_options_from_json(const nlohmann::json& j) {
  TrainerOptions o;
  JsonReader r(j, "trainer options");
  r.get("epochs", o.epochs).get("steps_per_epoch", o.steps_per_epoch).get("batch_size", o.batch_size);
  r.get("patch_size", o.patch_size).get("foreground_fraction", o.foreground_fraction).get("val_every", o.val_every);
  r.get("unlabelled_per_batch", o.unlabelled_per_batch);
  r.get("val_overlap", o.val_overlap).get("checkpoint_every", o.checkpoint_every).get("grad_clip", o.grad_clip);
  r.get("seed", o.seed).get("deterministic", o.deterministic).get("workers", o.workers).get("device", o.device);
  r.get("precision", o.precision).get("case_cache_mb", o.case_cache_mb);
  r.get("early_stop_patience", o.early_stop_patience).get("early_stop_min_delta", o.early_stop_min_delta);
  r.get("early_stop_min_epochs", o.early_stop_min_epochs);
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
  TF_CHECK(o.precision == "32" || o.precision == "bf16" || o.precision == "16", ConfigError,
           "trainer options: precision must be \"32\", \"bf16\" or \"16\", got '", o.precision, "'");
  TF_CHECK(o.early_stop_patience >= 0 && o.early_stop_min_delta >= 0 && o.early_stop_min_epochs >= 0, ConfigError,
           "trainer options: early_stop_patience, early_stop_min_delta and early_stop_min_epochs must be >= 0");
  TF_CHECK(o.unlabelled_per_batch >= 1 || o.unlabelled_per_batch == -1, ConfigError,
           "trainer options: unlabelled_per_batch must be >= 1 (or -1: as many as batch_size), got ",
           o.unlabelled_per_batch);
  TF_CHECK(o.case_cache_mb >= 0, ConfigError, "trainer options: case_cache_mb must be >= 0 (0: every case in memory)");
  return o;
}

nlohmann::json to_json(const TrainerOptions& o) {
  return {{"epochs", o.epochs},
          {"steps_per_epoch", o.steps_per_epoch},
          {"batch_size", o.batch_size},
          {"patch_size", o.patch_size},
          {"foreground_fraction", o.foreground_fraction},
          {"unlabelled_per_batch", o.unlabelled_per_batch},
          {"val_every", o.val_every},
          {"early_stop_patience", o.early_stop_patience},
          {"early_stop_min_delta", o.early_stop_min_delta},
          {"early_stop_min_epochs", o.early_stop_min_epochs},
          {"val_overlap", o.val_overlap},
          {"checkpoint_every", o.checkpoint_every},
          {"optimizer", to_json(o.optimizer)},
          {"schedule", to_json(o.schedule)},
          {"grad_clip", o.grad_clip},
          {"augment", transforms::to_json(o.augment)},
          {"seed", o.seed},
          {"deterministic", o.deterministic},
          {"workers", o.workers},
          {"device", o.device},
          {"precision", o.precision},
          {"case_cache_mb", o.case_cache_mb}};
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
                 std::shared_ptr<const data::CaseSource> train_cases, std::shared_ptr<const data::CaseSource> val_cases,
                 TrainerOptions options, TrainerPaths paths, models::WeightsMetadata weights_metadata)
    : model_(std::move(model)),
      objective_(std::move(objective)),
      train_cases_(std::move(train_cases)),
      val_cases_(std::move(val_cases)),
      options_(std::move(options)),
      paths_(std::move(paths)),
      weights_metadata_(std::move(weights_metadata)),
      device_(parse_device(options_.device)) {
  TF_CHECK(model_ && objective_, InvalidArgument, "trainer: model and objective are required");
  TF_CHECK(train_cases_ && train_cases_->size() > 0, InvalidArgument, "trainer: no training cases");
  if (options_.patch_size.empty()) options_.patch_size = model_->spec().fixed_input_size;
  TF_CHECK(options_.patch_size.size() == 3, InvalidArgument, "trainer: patch_size is required for model '",
           model_->spec().key, "'");
  detail::autocast_type(options_.precision, device_);  // fails early for a low precision off CUDA
  // Fail early, with the model's own message, when the patch does not fit the model.
  model_->check_input(torch::zeros({1, model_->spec().in_channels, options_.patch_size[0], options_.patch_size[1],
                                    options_.patch_size[2]}));
  if (train_cases_->in_memory())
    for (size_t i = 0; i < train_cases_->size(); ++i) {
      const auto c = train_cases_->get(i);
      TF_CHECK(c->image.size(0) == model_->spec().in_channels, InvalidArgument, "trainer: case '", c->id, "' has ",
               c->image.size(0), " channels, model '", model_->spec().key, "' expects ", model_->spec().in_channels);
    }
  predictor_ = make_sliding_window_predictor(options_.patch_size, options_.val_overlap, device_);
}

namespace {
std::shared_ptr<const data::CaseSource> wrap(std::shared_ptr<const std::vector<data::TrainingCase>> cases) {
  if (!cases) return nullptr;
  return data::in_memory_cases(*cases);
}
}  // namespace

Trainer::Trainer(models::SegmentationModel model, std::shared_ptr<Objective> objective,
                 std::shared_ptr<const std::vector<data::TrainingCase>> train_cases,
                 std::shared_ptr<const std::vector<data::TrainingCase>> val_cases, TrainerOptions options,
                 TrainerPaths paths, models::WeightsMetadata weights_metadata)
    : Trainer(std::move(model), std::move(objective), wrap(std::move(train_cases)), wrap(std::move(val_cases)),
              std::move(options), std::move(paths), std::move(weights_metadata)) {}

Trainer::~Trainer() = default;

void Trainer::set_unlabelled_cases(std::shared_ptr<const data::CaseSource> cases) {
  unlabelled_cases_ = cases && cases->size() > 0 ? std::move(cases) : nullptr;
}

void Trainer::set_process_group(std::shared_ptr<dist::ProcessGroup> group) { group_ = std::move(group); }
bool Trainer::is_main() const { return !group_ || group_->rank() == 0; }
void Trainer::add_callback(std::shared_ptr<Callback> callback) { callbacks_.push_back(std::move(callback)); }
void Trainer::set_case_predictor(CasePredictor predictor) { predictor_ = std::move(predictor); }

void Trainer::barrier() {
  if (group_) group_->barrier();
}

std::vector<double> Trainer::mean_over_ranks(const std::vector<double>& values) {
  if (!group_) return values;
  auto sums = dist::allreduce_sum(*group_, values);
  for (auto& v : sums) v /= double(group_->size());
  return sums;
}

void Trainer::append_log(const nlohmann::json& line) const {
  if (!is_main()) return;
  std::ofstream out(paths_.fold_dir / kLog, std::ios::app);
  out << line.dump() << '\n';
}

void Trainer::truncate_log(int64_t after_step) const {
  const auto path = paths_.fold_dir / kLog;
  if (!is_main() || !fs::exists(path)) return;
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
  if (!is_main()) return;
  models::WeightsMetadata meta = weights_metadata_;
  if (meta.patch_size.empty()) meta.patch_size = options_.patch_size;
  meta.extra["training"] = extra;
  models::save_weights(path, *model_, meta);
}

void Trainer::save_latest(int64_t epochs_done) {
  // Every rank's generators (they differ after dropout or augmentation on the device), gathered to rank 0.
  std::vector<torch::Tensor> cpu_states{generator_state(at::detail::getDefaultCPUGenerator())};
  std::vector<torch::Tensor> device_states;
  if (device_.is_cuda()) device_states.push_back(generator_state(device_generator(device_)));
  if (group_) {
    const auto gather = [&](const torch::Tensor& state) {
      auto t = state.to(torch::kUInt8);
      if (group_->backend() == "nccl") t = t.to(device_);
      auto all = group_->allgather(t);
      for (auto& a : all) a = a.cpu();
      return all;
    };
    cpu_states = gather(cpu_states[0]);
    if (!device_states.empty()) device_states = gather(device_states[0]);
  }
  if (!is_main()) return;
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, t] : models::state_dict(*model_)) tensors["model." + name] = t.detach().to(torch::kCPU);
  for (const auto& [name, t] : optimizer_state(*optimizer_, params_)) tensors["optimizer." + name] = t.cpu();
  for (size_t r = 0; r < cpu_states.size(); ++r) {
    const std::string suffix = cpu_states.size() == 1 ? "" : ".rank" + std::to_string(r);
    tensors["rng.torch_cpu" + suffix] = cpu_states[r];
    if (r < device_states.size()) tensors["rng.torch_cuda" + suffix] = device_states[r];
  }
  const nlohmann::json state = {{"epochs_done", epochs_done},      {"step", step_},
                                {"best_dice", best_dice_},         {"best_epoch", best_epoch_},
                                {"model", model_->spec().key},     {"options", model_->spec().options},
                                {"trainer", to_json(options_)},    {"tool_version", kVersion},
                                {"world_size", group_ ? group_->size() : 1},
                                {"loss_scale", loss_scale_},       {"scale_good_steps", scale_good_steps_},
                                {"skipped_steps", skipped_steps_},
                                {"objective_state", objective_->state()},
                                {"validations_since_best", validations_since_best_},
                                {"stopped_early", stop_early_},
                                {"epoch_loss", epoch_loss_},
                                {"settings", resume_settings()}};
  io::write_safetensors(paths_.fold_dir / kLatest, tensors, {{"teachformer_training_state", state.dump()}});
}

void Trainer::load_latest() {
  const auto path = paths_.fold_dir / kLatest;
  require_exists(path, "resume checkpoint");
  const io::SafeTensors st = io::read_safetensors(path);
  auto it = st.metadata.find("teachformer_training_state");
  TF_CHECK(it != st.metadata.end(), FormatError, "'", path.string(), "' is not a TeachFormer training checkpoint");
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    TF_THROW(FormatError, "'", path.string(), "': damaged training state (", e.what(), ")");
  }
  if (state.contains("settings")) check_resume_settings(state.at("settings"), path);
  TF_CHECK(state.at("model") == model_->spec().key && state.at("options") == model_->spec().options, InvalidArgument,
           "'", path.string(), "' was written for model '", state.at("model").get<std::string>(), "' with options ",
           state.at("options").dump(), ", not for '", model_->spec().key, "' with ", model_->spec().options.dump());
  const int world = group_ ? group_->size() : 1;
  const int saved_world = state.value("world_size", 1);
  TF_CHECK(saved_world == world, InvalidArgument, "'", path.string(), "' was written by a run of ", saved_world,
           " process(es); resume it with the same number (--nproc-per-node ", saved_world,
           " or WORLD_SIZE=", saved_world, "), not ", world, ": each process's batches and random state depend on it");
  models::StateDict weights;
  std::map<std::string, torch::Tensor> optim;
  for (const auto& [name, t] : st.tensors) {
    if (name.rfind("model.", 0) == 0) weights[name.substr(6)] = t;
    if (name.rfind("optimizer.", 0) == 0) optim[name.substr(10)] = t;
  }
  models::load_state_dict(*model_, weights);
  load_optimizer_state(*optimizer_, params_, optim);
  const std::string suffix = world == 1 ? "" : ".rank" + std::to_string(group_->rank());
  if (st.contains("rng.torch_cpu" + suffix))
    set_generator_state(at::detail::getDefaultCPUGenerator(), st.at("rng.torch_cpu" + suffix));
  if (device_.is_cuda() && st.contains("rng.torch_cuda" + suffix))
    set_generator_state(device_generator(device_), st.at("rng.torch_cuda" + suffix));
  epochs_done_ = state.at("epochs_done").get<int64_t>();
  step_ = state.at("step").get<int64_t>();
  best_dice_ = state.at("best_dice").get<double>();
  best_epoch_ = state.at("best_epoch").get<int64_t>();
  loss_scale_ = state.value("loss_scale", 65536.0);
  scale_good_steps_ = state.value("scale_good_steps", int64_t(0));
  skipped_steps_ = state.value("skipped_steps", int64_t(0));
  if (state.contains("objective_state")) objective_->load_state(state.at("objective_state"));
  validations_since_best_ = state.value("validations_since_best", int64_t(0));
  stop_early_ = state.value("stopped_early", false);
  epoch_loss_ = state.value("epoch_loss", 0.0);
  TF_CHECK(epochs_done_ <= options_.epochs, ConfigError, "cannot resume '", path.string(), "': it has done ",
           epochs_done_, " epochs, more than the ", options_.epochs, " asked for");
}

const std::vector<std::string>& Trainer::resumable_changes() {
  static const std::vector<std::string> keys{"epochs",        "val_every",           "checkpoint_every",
                                             "workers",       "early_stop_patience", "early_stop_min_delta",
                                             "early_stop_min_epochs", "case_cache_mb"};
  return keys;
}

nlohmann::json Trainer::resume_settings() const {
  nlohmann::json train_ids = nlohmann::json::array(), val_ids = nlohmann::json::array();
  for (size_t i = 0; i < train_cases_->size(); ++i) train_ids.push_back(train_cases_->id(i));
  if (val_cases_)
    for (size_t i = 0; i < val_cases_->size(); ++i) val_ids.push_back(val_cases_->id(i));
  nlohmann::json data = {{"metadata", models::to_json(weights_metadata_)}, {"train_cases", train_ids},
                         {"validation_cases", val_ids}};
  if (unlabelled_cases_) {
    nlohmann::json unlabelled_ids = nlohmann::json::array();
    for (size_t i = 0; i < unlabelled_cases_->size(); ++i) unlabelled_ids.push_back(unlabelled_cases_->id(i));
    data["unlabelled_cases"] = unlabelled_ids;
  }
  return {{"model", {{"key", model_->spec().key}, {"options", model_->spec().options}}},
          {"trainer", to_json(options_)},
          {"objective", objective_->describe()},
          {"data", data},
          {"world_size", group_ ? group_->size() : 1}};
}

void Trainer::check_resume_settings(const nlohmann::json& saved, const fs::path& checkpoint) const {
  nlohmann::json now = resume_settings(), before = saved;
  // Another world size has its own check and message (resume with the same number of processes).
  now.erase("world_size");
  before.erase("world_size");
  // Settings that checkpoints written before them lack, with the value those runs trained with: unlabelled_per_batch
  // its default; kd_dice 0, the KL alone (only a distillation's objective has options).
  const std::pair<const char*, nlohmann::json> added_later[] = {
      {"/trainer/unlabelled_per_batch", TrainerOptions().unlabelled_per_batch}, {"/objective/options/kd_dice", 0.0}};
  for (const auto& [path, value] : added_later) {
    const nlohmann::json::json_pointer key(path);
    if (before.contains(key.parent_pointer()) && before[key.parent_pointer()].is_object() && !before.contains(key))
      before[key] = value;
  }
  if (allow_changed_settings_) {
    for (const auto& key : resumable_changes()) {
      if (before.contains("trainer") && before["trainer"].contains(key)) before["trainer"].erase(key);
      now["trainer"].erase(key);
    }
  }
  const std::string diff = first_difference(now, before);
  std::string allowed;
  for (const auto& key : resumable_changes()) allowed += (allowed.empty() ? "" : ", ") + key;
  TF_CHECK(diff.empty(), ConfigError, "cannot resume '", checkpoint.string(), "' with other settings (", diff,
           "): a resumed run must continue the same training",
           allow_changed_settings_ ? std::string()
                                   : " (hint: --allow-changed-settings lets a resume change only " + allowed + ")");
}

void Trainer::stop_for_signal(int signal) {
  save_latest(epochs_done_);
  append_log({{"type", "interrupted"}, {"step", step_}, {"epoch", epochs_done_}, {"signal", signal_name(signal)}});
  barrier();
  throw Interrupted(signal, "resume checkpoint written at step " + std::to_string(step_) + " (epoch " +
                                std::to_string(epochs_done_ + 1) + ") to '" +
                                (paths_.fold_dir / kLatest).string() + "'");
}

ValidationResult Trainer::validate(int64_t epoch) {
  ValidationResult result;
  result.epoch = epoch;
  const auto t0 = std::chrono::steady_clock::now();
  if (!val_cases_ || val_cases_->size() == 0) return result;
  model_->eval();
  const size_t n = val_cases_->size();
  const int world = group_ ? group_->size() : 1;
  const int rank = group_ ? group_->rank() : 0;
  std::vector<double> dice(n, 0.0);
  for (size_t i = size_t(rank); i < n; i += size_t(world)) {
    if (!group_ && stop_requested()) {
      result.interrupted = true;
      model_->train();
      return result;
    }
    const auto c = val_cases_->get(i);
    torch::Tensor probs;
    {
      torch::NoGradGuard no_grad;
      probs = predictor_(*model_, c->image);
    }
    // The blocked argmax kernel of prediction (LibTorch 1.13's argmax over dim 0 is several times slower on CPU).
    dice[i] = mean_foreground_dice(inference::argmax_labels(probs).to(c->label.device()), c->label,
                                   model_->spec().out_channels);
  }
  if (group_) dice = dist::allreduce_sum(*group_, dice);  // each case was computed by exactly one rank
  model_->train();
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    result.per_case[val_cases_->id(i)] = dice[i];
    sum += dice[i];
  }
  result.mean_dice = sum / double(n);
  result.seconds = seconds_since(t0);
  return result;
}

void Trainer::begin(bool resume) {
  fs::create_directories(paths_.fold_dir);
  if (is_main()) {
    lock_ = std::make_unique<FolderLock>(paths_.fold_dir, "model fold folder", FolderLock::Mode::Refuse);
    remove_stale_temporaries(paths_.fold_dir);
  }
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
  loss_scale_ = 65536.0;
  scale_good_steps_ = 0;
  skipped_steps_ = 0;
  validations_since_best_ = 0;
  stop_early_ = false;
  stop_agreed_ = false;
  epoch_loss_ = 0;
  // Every rank must see the checkpoint rank 0 may just have written (or the stale one it removed).
  barrier();
  if (resume && fs::exists(paths_.fold_dir / kLatest)) {
    load_latest();
    truncate_log(step_);
    append_log({{"type", "resume"}, {"step", step_}, {"epoch", epochs_done_}});
    spdlog::info("resuming from epoch {} (step {})", epochs_done_, step_);
  } else {
    if (is_main()) {
      std::error_code ec;
      fs::remove(paths_.fold_dir / kLog, ec);
    }
    append_log({{"type", "start"},
                {"step", 0},
                {"model", model_->spec().key},
                {"options", model_->spec().options},
                {"trainer", to_json(options_)},
                {"objective", objective_->describe()},
                {"world_size", group_ ? group_->size() : 1}});
  }
  if (group_) {
    // DDP's start: every rank begins from rank 0's parameters and buffers.
    dist::broadcast_module(*group_, *model_, 0);
    std::vector<torch::Tensor> params;
    for (const auto& [_, p] : params_) params.push_back(p);
    reducer_ = std::make_unique<dist::GradientReducer>(group_, params);
    objective_->set_mean_over_ranks([this](const std::vector<double>& v) { return mean_over_ranks(v); });
  }
}

std::unique_ptr<data::PatchLoader> Trainer::make_loader() const {
  data::PatchSamplerOptions so;
  so.patch_size = options_.patch_size;
  so.foreground_fraction = options_.foreground_fraction;
  data::LoaderOptions lo;
  lo.batch_size = options_.batch_size;
  lo.workers = options_.workers;
  lo.seed = options_.seed;
  lo.sample_offset = group_ ? int64_t(group_->rank()) * options_.batch_size : 0;
  lo.teacher_image = objective_->needs_teacher_image();
  if (unlabelled_cases_) {
    lo.unlabelled_per_batch = options_.unlabelled_per_batch < 0 ? options_.batch_size : options_.unlabelled_per_batch;
    lo.unlabelled_offset = group_ ? int64_t(group_->rank()) * lo.unlabelled_per_batch : 0;
  }
  return std::make_unique<data::PatchLoader>(train_cases_, data::PatchSampler(so, options_.augment), options_.augment,
                                             lo, unlabelled_cases_);
}

StepRecord Trainer::train_step(data::PatchLoader& loader, int64_t epoch, int64_t total_steps,
                               const models::TapRequest& taps) {
  const auto t0 = std::chrono::steady_clock::now();
  data::Batch batch = loader.get(step_);
  batch.image = batch.image.to(device_);
  if (batch.label.defined()) batch.label = batch.label.to(device_);
  if (batch.teacher_image.defined()) batch.teacher_image = batch.teacher_image.to(device_);
  for (auto& kv : batch.extras) kv.second.data = kv.second.data.to(device_);
  const double lr = scheduled_lr(options_.schedule, options_.optimizer.lr, step_, total_steps);
  set_learning_rate(*optimizer_, lr);
  optimizer_->zero_grad();
  const auto precision = detail::autocast_type(options_.precision, device_);
  losses::LossBreakdown loss;
  {
    detail::AutocastScope autocast(precision);
    const models::SegOutput out = model_->forward(batch.image, taps);
    const StepContext ctx{step_, epoch, options_.steps_per_epoch, options_.epochs};
    loss = objective_->compute(out, batch, ctx);
  }
  // The logged values are the mean over ranks; a non-finite loss anywhere stops every rank at the same step.
  auto values = loss.values();
  std::vector<double> numbers;
  for (const auto& [_, v] : values) numbers.push_back(v);
  numbers.push_back(stop_requested() ? 1.0 : 0.0);  // every rank stops after the same step
  numbers = mean_over_ranks(numbers);
  stop_agreed_ = numbers.back() > 0;
  numbers.pop_back();
  for (size_t i = 0; i < values.size(); ++i) values[i].second = numbers[i];
  const double total = values.front().second;
  if (!std::isfinite(total))
    TF_THROW(NumericalError, "training stopped at step ", step_, " (epoch ", epoch, "): the loss is ", total, " (",
             loss.summary(), "); lower the learning rate or check the data");
  const bool scaled = precision == c10::kHalf;
  if (reducer_) reducer_->prepare();
  (scaled ? loss.total * loss_scale_ : loss.total).backward();
  if (reducer_) reducer_->finish();
  StepRecord rec;
  if (scaled) {
    // Unscale; a gradient that overflowed (on any rank: they are averaged) skips the step and halves the scale.
    std::vector<torch::Tensor> flags;
    for (auto& [_, p] : params_)
      if (p.grad().defined()) {
        p.mutable_grad().div_(loss_scale_);
        flags.push_back(torch::isfinite(p.grad()).all());
      }
    const bool finite = flags.empty() || torch::stack(flags).all().item<bool>();  // one device sync
    if (!finite) {
      rec.skipped = true;
      ++skipped_steps_;
      loss_scale_ = std::max(1.0, loss_scale_ / 2);
      scale_good_steps_ = 0;
    } else if (++scale_good_steps_ >= 2000) {
      loss_scale_ *= 2;
      scale_good_steps_ = 0;
    }
  }
  if (!rec.skipped) {
    if (options_.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model_->parameters(), options_.grad_clip);
    optimizer_->step();
  }
  rec.step = step_;
  rec.epoch = epoch;
  rec.lr = lr;
  rec.losses = values;
  rec.seconds = seconds_since(t0);
  nlohmann::json line = {{"type", "step"}, {"step", step_}, {"epoch", epoch}, {"lr", lr}, {"seconds", rec.seconds}};
  for (const auto& [name, v] : rec.losses) line["loss"][name] = v;
  // The first batches' digests: runs that must see the same data (every student of one experiment) can be checked.
  if (step_ < 3) line["batch"] = {{"image", tensor_digest(batch.image)}, {"label", tensor_digest(batch.label)}};
  if (scaled) line["loss_scale"] = loss_scale_;
  if (rec.skipped) line["skipped"] = true;
  append_log(line);
  return rec;
}

void Trainer::end_epoch(int64_t epoch, double epoch_loss, double& last_dice) {
  const bool last = epoch + 1 == options_.epochs;
  if (options_.val_every > 0 && ((epoch + 1) % options_.val_every == 0 || last) && val_cases_ &&
      val_cases_->size() > 0) {
    const ValidationResult v = validate(epoch);
    if (v.interrupted) stop_for_signal(stop_signal());  // the epoch's steps are done; its validation is redone
    last_dice = v.mean_dice;
    append_log({{"type", "validation"}, {"step", step_}, {"epoch", epoch}, {"mean_dice", v.mean_dice},
                {"per_case", v.per_case}, {"seconds", v.seconds}});
    spdlog::info("epoch {}: validation Dice {:.4f} ({} cases, {:.1f}s)", epoch + 1, v.mean_dice, v.per_case.size(),
                 v.seconds);
    const bool improved = v.mean_dice > best_dice_ + (best_epoch_ < 0 ? 0.0 : options_.early_stop_min_delta);
    if (v.mean_dice > best_dice_) {
      best_dice_ = v.mean_dice;
      best_epoch_ = epoch;
      save_weights(paths_.fold_dir / kBest, {{"epoch", epoch}, {"val_dice", v.mean_dice}, {"kind", "best"}});
    }
    // Patience counts once the model segments something.
    validations_since_best_ = improved || best_dice_ <= 0.0 ? 0 : validations_since_best_ + 1;
    if (options_.early_stop_patience > 0 && validations_since_best_ >= options_.early_stop_patience && !last &&
        epoch + 1 >= options_.early_stop_min_epochs) {
      stop_early_ = true;
      spdlog::info("early stop after epoch {}: no validation improvement in {} validations (best {:.4f} at epoch {})",
                   epoch + 1, validations_since_best_, best_dice_, best_epoch_ + 1);
    }
    for (auto& cb : callbacks_) cb->on_validation(*this, v);
  }
  epochs_done_ = epoch + 1;
  append_log({{"type", "epoch"}, {"step", step_}, {"epoch", epoch},
              {"mean_loss", epoch_loss / double(options_.steps_per_epoch)}});
  if (epochs_done_ % options_.checkpoint_every == 0 || last || stop_early_) save_latest(epochs_done_);
  barrier();  // nobody runs ahead of a checkpoint being written
  for (auto& cb : callbacks_) cb->on_epoch_end(*this, epoch);
}

TrainSummary Trainer::end(std::chrono::steady_clock::time_point t_start, double step_seconds, int64_t steps_timed,
                          double last_dice) {
  save_weights(paths_.fold_dir / kFinal, {{"epoch", epochs_done_ - 1}, {"val_dice", last_dice}, {"kind", "final"},
                                          {"stopped_early", stop_early_}});
  if (best_epoch_ < 0 && is_main()) {
    // No validation cases (e.g. fold "all"): the final weights are the best we know.
    write_atomically(paths_.fold_dir / kBest, [&](const fs::path& tmp) { fs::copy_file(paths_.fold_dir / kFinal, tmp); });
  }
  TrainSummary s;
  s.epochs_run = epochs_done_;
  s.stopped_early = stop_early_;
  s.steps_run = step_;
  s.best_dice = best_dice_;
  s.best_epoch = best_epoch_;
  s.last_dice = last_dice;
  s.seconds = seconds_since(t_start);
  s.seconds_per_step = steps_timed ? step_seconds / double(steps_timed) : 0;
  s.skipped_steps = skipped_steps_;
  append_log({{"type", "end"}, {"step", step_}, {"best_dice", best_dice_}, {"best_epoch", best_epoch_},
              {"seconds", s.seconds}, {"skipped_steps", skipped_steps_}, {"epochs_run", epochs_done_},
              {"stopped_early", stop_early_}});
  barrier();
  return s;
}

TrainSummary Trainer::fit(bool resume) {
  const auto t_start = std::chrono::steady_clock::now();
  // The fold folder is this run's while fit() runs, and free again when it returns or throws.
  struct ReleaseLock {
    std::unique_ptr<FolderLock>& lock;
    ~ReleaseLock() { lock.reset(); }
  } release{lock_};
  begin(resume);
  auto loader = make_loader();
  const int64_t total_steps = options_.epochs * options_.steps_per_epoch;
  const models::TapRequest taps = objective_->taps();
  for (auto& cb : callbacks_) cb->on_train_start(*this);
  ProgressBar bar("train " + model_->spec().key, total_steps, is_main() ? ProgressMode::Auto : ProgressMode::Quiet);
  bar.update(step_);
  double step_seconds = 0, last_dice = -1;
  int64_t steps_timed = 0;
  for (int64_t epoch = epochs_done_; epoch < options_.epochs && !stop_early_; ++epoch) {
    for (auto& cb : callbacks_) cb->on_epoch_start(*this, epoch);
    // A run stopped inside an epoch resumes at its next step.
    const int64_t first = step_ - epoch * options_.steps_per_epoch;
    double epoch_loss = first > 0 ? epoch_loss_ : 0.0;
    for (int64_t i = first; i < options_.steps_per_epoch; ++i) {
      const StepRecord rec = train_step(*loader, epoch, total_steps, taps);
      step_seconds += rec.seconds;
      ++steps_timed;
      epoch_loss += rec.losses.front().second;
      for (auto& cb : callbacks_) cb->on_step_end(*this, rec);
      char status[96];
      std::snprintf(status, sizeof status, "epoch %lld/%lld loss %.4f", (long long)epoch + 1,
                    (long long)options_.epochs, rec.losses.front().second);
      bar.update(step_ + 1, status);
      ++step_;
      epoch_loss_ = epoch_loss;
      // Ranks agree on a stop through the step's all-reduce; a single process stops after the step it arrived in.
      if (stop_agreed_ || (!group_ && stop_requested())) {
        bar.finish();
        stop_for_signal(stop_signal() ? stop_signal() : SIGTERM);  // SIGTERM: another rank received it
      }
    }
    end_epoch(epoch, epoch_loss, last_dice);
  }
  bar.finish();
  return end(t_start, step_seconds, steps_timed, last_dice);
}

}  // namespace teachformer::train
