#include "teachformer/pipeline/jobs.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/data/dataset.hpp"
#include "teachformer/data/splits.hpp"
#include "teachformer/distill/distill_loss.hpp"
#include "teachformer/distill/teacher_cache.hpp"
#include "teachformer/pipeline/teacher_cache_builder.hpp"
#include "teachformer/models/model_folder.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/models/weights.hpp"
#include "teachformer/train/distillation_objective.hpp"
#include "teachformer/train/presets.hpp"
#include "teachformer/version.hpp"

namespace teachformer::pipeline {
namespace {

bool is_preprocessed(const fs::path& dir) {
  return fs::exists(dir / "plan.json") && fs::exists(dir / "dataset.json") && fs::is_directory(dir / "cases");
}

// Everything both kinds of run need before training starts.
struct Prepared {
  std::shared_ptr<data::PreprocessedDataset> dataset;
  std::vector<std::string> channels;          // the model's input channels
  std::vector<int64_t> channel_indices;       // their positions in the dataset
  std::vector<std::string> train_ids, val_ids;
  std::vector<data::Fold> folds;
  nlohmann::json config;                      // resolved
  train::TrainerOptions trainer;
  int64_t out_channels = 2;
};

Prepared prepare(const JobOptions& job, const std::string& kind) {
  Prepared p;
  p.dataset = std::make_shared<data::PreprocessedDataset>(open_or_preprocess(job.dataset));
  const auto all = p.dataset->channel_names();
  p.channels = job.channels.empty() ? all : job.channels;
  for (const auto& ch : p.channels) {
    auto it = std::find(all.begin(), all.end(), ch);
    TF_CHECK(it != all.end(), InvalidArgument, "channel '", ch, "' is not in dataset '", p.dataset->root().string(),
             "' (channels: ", all, ")");
    p.channel_indices.push_back(int64_t(it - all.begin()));
  }
  p.out_channels = int64_t(p.dataset->labels().size());
  TF_CHECK(p.out_channels >= 2, DatasetError, "dataset '", p.dataset->root().string(),
           "' declares fewer than 2 label classes");
  const auto labelled = p.dataset->labelled_case_ids();
  TF_CHECK(!labelled.empty(), DatasetError, "dataset '", p.dataset->root().string(), "' has no labelled cases");
  if (job.fold < 0) {
    p.train_ids = labelled;
  } else {
    p.folds = dataset_splits(*p.dataset, job.n_folds);
    TF_CHECK(job.fold < int(p.folds.size()), InvalidArgument, "fold ", job.fold, " does not exist: splits_final.json of '",
             p.dataset->root().string(), "' has ", p.folds.size(), " folds");
    const std::set<std::string> lab(labelled.begin(), labelled.end());
    for (const auto& id : p.folds[size_t(job.fold)].train)
      if (lab.count(id)) p.train_ids.push_back(id);
    for (const auto& id : p.folds[size_t(job.fold)].val)
      if (lab.count(id)) p.val_ids.push_back(id);
  }
  TF_CHECK(!p.train_ids.empty(), DatasetError, "fold ", job.fold, " has no labelled training cases");

  nlohmann::json config = train::preset_config(job.preset, job.model, int64_t(p.channels.size()), p.out_channels);
  config = train::merge_config(config, job.config);
  nlohmann::json& tr = config["trainer"];
  if (job.epochs) tr["epochs"] = *job.epochs;
  if (job.steps_per_epoch) tr["steps_per_epoch"] = *job.steps_per_epoch;
  if (job.seed) tr["seed"] = *job.seed;
  if (job.device) tr["device"] = *job.device;
  auto& mo = config["model_options"];
  if (!job.patch_size.empty()) {
    TF_CHECK(job.patch_size.size() == 3, InvalidArgument, "patch size must have 3 values D,H,W, got ", job.patch_size);
    tr["patch_size"] = job.patch_size;
    if (job.model == "unetr") mo["img_size"] = job.patch_size;
    if (job.model == "hdenseformer") mo["image_size"] = job.patch_size;
  }
  // The model's input/output channels always follow the data.
  mo["in_channels"] = int64_t(p.channels.size());
  mo[job.model == "hdenseformer" ? "n_cls" : "out_channels"] = p.out_channels;
  config["kind"] = kind;
  config["model"] = job.model;
  config["preset"] = job.preset;
  config["channels"] = p.channels;
  config["dataset"] = {{"path", fs::absolute(p.dataset->root()).string()}, {"name", p.dataset->name()}};
  config["fold"] = job.fold;
  config["tool_version"] = kVersion;
  p.trainer = train::trainer_options_from_json(tr);
  p.config = config;
  return p;
}

models::SegmentationModel build_model(Prepared& p, const JobOptions& job) {
  torch::manual_seed(p.trainer.seed);
  auto model = models::create_model(job.model, p.config["model_options"]);
  // Record the fully resolved options (defaults included) and the patch the model gets.
  p.config["options"] = model->spec().options;
  if (p.trainer.patch_size.empty()) p.trainer.patch_size = model->spec().fixed_input_size;
  p.config["patch_size"] = p.trainer.patch_size;
  p.config["trainer"] = to_json(p.trainer);
  return model;
}

void write_model_folder(const Prepared& p, const fs::path& dir) {
  fs::create_directories(dir);
  write_json(dir / "config.json", p.config);
  for (const char* name : {"plan.json", "dataset.json", "fingerprint.json"}) {
    const auto src = p.dataset->root() / name;
    if (fs::exists(src)) write_file_atomic(dir / name, read_file(src));
  }
  if (!p.folds.empty()) data::write_splits(dir / "splits_final.json", p.folds);
}

models::WeightsMetadata weights_metadata(const Prepared& p) {
  models::WeightsMetadata m;
  m.channel_names = p.channels;
  m.normalization = p.dataset->plan().to_json();
  m.patch_size = p.trainer.patch_size;
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& l : p.dataset->labels()) labels[l.name] = l.value;
  m.labels = labels;
  if (p.dataset->plan().crop_to_bbox) {
    const auto& s = p.dataset->plan().bbox_spacing;
    m.spacing = {s[0], s[1], s[2]};
  } else if (p.dataset->plan().target_spacing) {
    const auto& s = *p.dataset->plan().target_spacing;
    m.spacing = {s[0], s[1], s[2]};
  }
  return m;
}

std::shared_ptr<const std::vector<data::TrainingCase>> load_shared(const Prepared& p, const std::vector<std::string>& ids) {
  if (ids.empty()) return nullptr;
  return std::make_shared<const std::vector<data::TrainingCase>>(load_training_cases(*p.dataset, ids, p.channel_indices));
}

JobResult finish(train::Trainer& trainer, const Prepared& p, const fs::path& dir, bool resume) {
  JobResult r;
  r.model_dir = dir;
  r.summary = trainer.fit(resume);
  r.config = p.config;
  r.parameters = models::count_parameters(trainer.model());
  return r;
}

}  // namespace

data::PreprocessedDataset open_or_preprocess(const fs::path& dataset) {
  TF_CHECK(fs::exists(dataset), IoError, "dataset '", dataset.string(), "' does not exist");
  if (is_preprocessed(dataset)) return data::open_preprocessed(dataset);
  fs::path out = dataset;
  if (out.filename().empty()) out = out.parent_path();
  out += "_preprocessed";
  if (!is_preprocessed(out)) {
    spdlog::info("'{}' is not preprocessed: preprocessing it into '{}'", dataset.string(), out.string());
    const data::Dataset raw = data::open_dataset(dataset);
    data::PreprocessOptions o;
    o.plan = data::PlanOptions{};
    o.workers = 1;
    data::preprocess_dataset(raw, out, o);
  }
  return data::open_preprocessed(out);
}

std::vector<data::Fold> dataset_splits(const data::PreprocessedDataset& dataset, int n_folds) {
  const auto path = dataset.root() / "splits_final.json";
  const auto ids = dataset.case_ids();
  const auto patients = dataset.patient_ids();
  if (fs::exists(path)) {
    auto folds = data::read_splits(path);
    for (const auto& f : folds) data::validate_fold(f, ids, patients);
    return folds;
  }
  // Folds over the labelled cases only (unlabelled ones cannot be validated).
  std::vector<std::string> lab_ids, lab_patients;
  const auto labelled = dataset.labelled_case_ids();
  const std::set<std::string> lab(labelled.begin(), labelled.end());
  for (size_t i = 0; i < ids.size(); ++i)
    if (lab.count(ids[i])) lab_ids.push_back(ids[i]), lab_patients.push_back(patients[i]);
  auto folds = data::make_grouped_folds(lab_ids, lab_patients, n_folds);
  data::write_splits(path, folds);
  return folds;
}

std::vector<data::TrainingCase> load_training_cases(const data::PreprocessedDataset& dataset,
                                                    const std::vector<std::string>& ids,
                                                    const std::vector<int64_t>& channel_indices) {
  std::vector<data::TrainingCase> cases;
  cases.reserve(ids.size());
  for (const auto& id : ids) {
    auto pc = dataset.load_case(id);
    data::TrainingCase c;
    c.id = id;
    const bool all = int64_t(channel_indices.size()) == pc.image.size(0);
    c.image = all ? pc.image : pc.image.index_select(0, torch::tensor(channel_indices, torch::kLong)).contiguous();
    c.label = pc.label;
    data::index_foreground(c);
    cases.push_back(std::move(c));
  }
  return cases;
}

JobResult run_train_job(const JobOptions& job) {
  Prepared p = prepare(job, "train");
  const fs::path dir = job.output;
  TF_CHECK(!dir.empty(), InvalidArgument, "train: an output folder is required (-o)");
  auto model = build_model(p, job);
  nlohmann::json ds = p.config.value("deep_supervision", nlohmann::json::object());
  losses::DeepSupervisionOptions dso;
  losses::from_json(ds, dso);
  auto objective = std::make_shared<train::SupervisedObjective>(p.config["loss"], dso);
  p.config["objective"] = objective->describe();
  write_model_folder(p, dir);
  train::Trainer trainer(model, objective, load_shared(p, p.train_ids), load_shared(p, p.val_ids), p.trainer,
                  {dir / models::fold_folder(job.fold)}, weights_metadata(p));
  spdlog::info("train {} ({} parameters) on {} cases ({} validation), fold {}, preset {}", job.model,
               models::count_parameters(*model), p.train_ids.size(), p.val_ids.size(), job.fold, job.preset);
  return finish(trainer, p, dir, job.resume);
}

JobResult run_distill_job(const JobOptions& job, const DistillJobOptions& dj) {
  Prepared p = prepare(job, "distill");
  const fs::path dir = job.output;
  TF_CHECK(!dir.empty(), InvalidArgument, "distill: an output folder is required (-o)");
  nlohmann::json dconf = p.config.value("distill", nlohmann::json::object());
  if (dj.strategy) {
    const std::string& s = *dj.strategy;
    dconf["strategy"] = fs::exists(s) ? read_json(s) : nlohmann::json(s);
  }
  if (dj.cache) dconf["cache"] = *dj.cache;
  distill::DistillOptions options = distill::distill_options_from_json(dconf);
  p.config["distill"] = distill::to_json(options);
  auto model = build_model(p, job);

  // Teachers, named uniquely, reading their channels out of the student's.
  std::vector<std::shared_ptr<distill::Teacher>> teachers;
  std::set<std::string> names;
  nlohmann::json teacher_json = nlohmann::json::array();
  if (options.strategy.needs_teachers()) {
    TF_CHECK(!dj.teachers.empty(), InvalidArgument, "distill: strategy '", options.strategy.name,
             "' needs at least one --teacher");
    for (auto spec : dj.teachers) {
      auto t = distill::Teacher::load(spec, p.channels);
      std::string name = spec.name.empty() ? t->name() : spec.name;
      for (int k = 2; names.count(name); ++k) name = t->name() + "_" + std::to_string(k);
      names.insert(name);
      t = std::make_shared<distill::Teacher>(name, t->model(), t->channel_indices(), spec.weight, t->source());
      teachers.push_back(t);
      teacher_json.push_back({{"name", name}, {"dir", fs::absolute(spec.dir).string()}, {"fold", spec.fold},
                              {"checkpoint", spec.checkpoint}, {"weight", spec.weight}, {"model", t->model()->spec().key}});
    }
  }
  p.config["teachers"] = teacher_json;

  // The student's tap grids at the training patch.
  distill::KnowledgeGrid grid;
  grid.p = options.attention.p;
  {
    torch::NoGradGuard g;
    const auto& ps = p.trainer.patch_size;
    const auto out = model->forward(torch::zeros({1, model->spec().in_channels, ps[0], ps[1], ps[2]}), {true, false, false});
    grid.coarse = out.taps.at(models::kEncoderCoarse).sizes().slice(2).vec();
    grid.fine = out.taps.at(models::kDecoderFine).sizes().slice(2).vec();
  }
  const bool cached = options.cache && !teachers.empty();
  for (const auto& t : teachers) {
    const auto& fixed = t->model()->spec().fixed_input_size;
    TF_CHECK(cached || fixed.empty() || fixed == p.trainer.patch_size, InvalidArgument, "teacher '", t->name(),
             "' only accepts inputs of size ", fixed, " but the student trains on patches of ", p.trainer.patch_size,
             "; use the same patch size or the teacher cache");
  }
  auto train_cases = std::make_shared<std::vector<data::TrainingCase>>(
      load_training_cases(*p.dataset, p.train_ids, p.channel_indices));
  JobResult pre;
  nlohmann::json cache_json = nlohmann::json::array();
  if (cached) {
    // Intensity augmentation would show the student inputs the cached teachers never saw: off unless asked for.
    if (!job.config.contains("trainer") || !job.config["trainer"].contains("augment") ||
        !job.config["trainer"]["augment"].contains("intensity")) {
      p.trainer.augment.intensity = false;
      p.config["trainer"] = to_json(p.trainer);
    }
    const auto& ps = p.trainer.patch_size;
    for (size_t i = 0; i < teachers.size(); ++i) {
      const auto& t = teachers[i];
      distill::CacheSettings s;
      s.coarse_factor = ps[0] / grid.coarse[0];
      s.fine_factor = ps[0] / grid.fine[0];
      s.p = options.attention.p;
      s.overlap = options.cache_overlap;
      const auto& fixed = t->model()->spec().fixed_input_size;
      s.roi = fixed.empty() ? models::open_model_folder(dj.teachers[i].dir).patch_size : fixed;
      const auto report = build_teacher_cache(*p.dataset, p.train_ids, *t, s);
      distill::attach_teacher_cache(*train_cases, report.dir, *t, s);
      pre.cache_bytes += report.bytes_on_disk;
      pre.cache_seconds += report.seconds;
      cache_json.push_back({{"teacher", t->name()}, {"dir", report.dir.string()}, {"bytes", report.bytes_on_disk},
                            {"built", report.built}, {"seconds", report.seconds}});
      spdlog::info("teacher cache {}: {} cases, {:.1f} MiB on disk, {:.1f}s", t->name(), report.cases,
                   double(report.bytes_on_disk) / (1 << 20), report.seconds);
    }
  }
  p.config["cache"] = cache_json;
  auto loss = std::make_shared<distill::DistillLoss>(teachers, options, grid, cached);
  auto objective = std::make_shared<train::DistillationObjective>(loss);
  p.config["objective"] = objective->describe();
  write_model_folder(p, dir);
  train::Trainer trainer(model, objective, train_cases, load_shared(p, p.val_ids), p.trainer, {dir / models::fold_folder(job.fold)},
                  weights_metadata(p));
  spdlog::info("distill {} ({} parameters) from {} teacher(s), strategy {}, {} mode, fold {}", job.model,
               models::count_parameters(*model), teachers.size(), options.strategy.name, cached ? "cached" : "live",
               job.fold);
  JobResult r = finish(trainer, p, dir, job.resume);
  r.cache_bytes = pre.cache_bytes;
  r.cache_seconds = pre.cache_seconds;
  return r;
}

}  // namespace teachformer::pipeline
