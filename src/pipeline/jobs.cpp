#include "teachformer/pipeline/jobs.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <set>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/data/dataset.hpp"
#include "teachformer/data/splits.hpp"
#include "teachformer/dist/process_group.hpp"
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

// Runs `fn` on rank 0 first and on the other ranks after it (they wait at a barrier): for work that creates files
// the others then read (preprocessing, splits, the teacher cache).
template <class F>
auto main_first(const std::shared_ptr<dist::ProcessGroup>& group, F&& fn) {
  if (!group) return fn();
  if (group->rank() != 0) group->barrier();
  auto result = fn();
  if (group->rank() == 0) group->barrier();
  return result;
}

bool is_main(const JobOptions& job) { return !job.group || job.group->rank() == 0; }

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
  p.dataset = main_first(job.group, [&] { return std::make_shared<data::PreprocessedDataset>(open_or_preprocess(job.dataset)); });
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
    p.folds = main_first(job.group, [&] { return dataset_splits(*p.dataset, job.n_folds); });
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
  if (job.batch_size) tr["batch_size"] = *job.batch_size;
  if (job.precision) tr["precision"] = *job.precision;
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
  config["world_size"] = job.group ? job.group->size() : 1;
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

void write_model_folder(const Prepared& p, const fs::path& dir, const JobOptions& job) {
  if (!is_main(job)) return;
  fs::create_directories(dir);
  // A run killed while it wrote these files leaves its temporaries here (the trainer cleans the fold folder).
  remove_stale_temporaries(dir);
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

std::shared_ptr<const data::CaseSource> validation_source(const Prepared& p) {
  if (p.val_ids.empty()) return nullptr;
  return training_case_source(p.dataset, p.val_ids, p.channel_indices, p.trainer.case_cache_mb);
}

JobResult finish(train::Trainer& trainer, const Prepared& p, const fs::path& dir, const JobOptions& job) {
  JobResult r;
  r.model_dir = dir;
  if (job.group) trainer.set_process_group(job.group);
  trainer.allow_changed_settings(job.allow_changed_settings);
  r.summary = trainer.fit(job.resume);
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

data::TrainingCase load_training_case(const data::PreprocessedDataset& dataset, const std::string& id,
                                      const std::vector<int64_t>& channel_indices,
                                      const std::function<void(data::TrainingCase&)>& add_extras) {
  auto pc = dataset.load_case(id);
  data::TrainingCase c;
  c.id = id;
  bool all = int64_t(channel_indices.size()) == pc.image.size(0);
  for (size_t i = 0; all && i < channel_indices.size(); ++i) all = channel_indices[i] == int64_t(i);
  c.image = all ? pc.image : pc.image.index_select(0, torch::tensor(channel_indices, torch::kLong)).contiguous();
  c.label = pc.label;
  data::index_foreground(c);
  if (add_extras) add_extras(c);
  return c;
}

std::vector<data::TrainingCase> load_training_cases(const data::PreprocessedDataset& dataset,
                                                    const std::vector<std::string>& ids,
                                                    const std::vector<int64_t>& channel_indices) {
  std::vector<data::TrainingCase> cases;
  cases.reserve(ids.size());
  for (const auto& id : ids) cases.push_back(load_training_case(dataset, id, channel_indices));
  return cases;
}

std::shared_ptr<const data::CaseSource> training_case_source(std::shared_ptr<const data::PreprocessedDataset> dataset,
                                                             const std::vector<std::string>& ids,
                                                             const std::vector<int64_t>& channel_indices,
                                                             int64_t cache_mb,
                                                             std::function<void(data::TrainingCase&)> add_extras) {
  TF_CHECK(cache_mb >= 0, InvalidArgument, "case cache size must be >= 0 MiB, got ", cache_mb);
  if (cache_mb == 0) {
    std::vector<data::TrainingCase> cases;
    for (const auto& id : ids) cases.push_back(load_training_case(*dataset, id, channel_indices, add_extras));
    return data::in_memory_cases(std::move(cases));
  }
  return data::cached_cases(
      ids,
      [dataset, channel_indices, add_extras](const std::string& id) {
        return load_training_case(*dataset, id, channel_indices, add_extras);
      },
      cache_mb << 20);
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
  write_model_folder(p, dir, job);
  train::Trainer trainer(model, objective,
                         training_case_source(p.dataset, p.train_ids, p.channel_indices, p.trainer.case_cache_mb),
                         validation_source(p), p.trainer, {dir / models::fold_folder(job.fold)}, weights_metadata(p));
  spdlog::info("train {} ({} parameters) on {} cases ({} validation), fold {}, preset {}{}", job.model,
               models::count_parameters(*model), p.train_ids.size(), p.val_ids.size(), job.fold, job.preset,
               job.group ? ", " + std::to_string(job.group->size()) + " processes" : std::string());
  return finish(trainer, p, dir, job);
}

namespace {

// The unlabelled dataset of a distillation run, preprocessed with the labelled dataset's plan.
std::shared_ptr<data::PreprocessedDataset> open_unlabelled(const fs::path& source, const data::PreprocessedDataset& labelled) {
  TF_CHECK(fs::exists(source), IoError, "unlabelled dataset '", source.string(), "' does not exist");
  fs::path name = source;
  if (name.filename().empty()) name = name.parent_path();
  const fs::path out = labelled.root() / "unlabelled" / name.filename();
  if (!is_preprocessed(out)) {
    spdlog::info("preprocessing the unlabelled cases of '{}' with the plan of '{}' into '{}'", source.string(),
                 labelled.root().string(), out.string());
    data::PreprocessOptions o;
    o.fixed_plan = labelled.plan();
    o.workers = 1;
    data::preprocess_dataset(data::open_dataset(source), out, o);
  }
  auto ds = std::make_shared<data::PreprocessedDataset>(data::open_preprocessed(out));
  TF_CHECK(ds->plan().digest() == labelled.plan().digest(), DatasetError, "'", out.string(),
           "' was preprocessed with another plan than '", labelled.root().string(), "' (hint: delete it)");
  return ds;
}

// Unlabelled cases: every case of `ds`, its label (if any) dropped.
std::shared_ptr<const data::CaseSource> unlabelled_source(std::shared_ptr<const data::PreprocessedDataset> ds,
                                                          const std::vector<int64_t>& channel_indices, int64_t cache_mb,
                                                          std::function<void(data::TrainingCase&)> add_extras) {
  auto drop_label = [add_extras](data::TrainingCase& c) {
    c.label = torch::Tensor();
    c.class_locations.clear();
    if (add_extras) add_extras(c);
  };
  const auto ids = ds->case_ids();
  return training_case_source(std::move(ds), ids, channel_indices, cache_mb, drop_label);
}

}  // namespace

// Long on purpose: one sequential recipe (data, teachers, channel checks, cache, unlabelled cases, loss, trainer).
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
  const bool cached = options.cache && options.strategy.needs_teachers();

  // Teachers, named uniquely. A live teacher reads its channels out of the student's input; a cached one out of
  // the dataset's channels (so a teacher may even read channels the student does not).
  std::vector<std::shared_ptr<distill::Teacher>> teachers;
  std::set<std::string> names;
  nlohmann::json teacher_json = nlohmann::json::array();
  if (options.strategy.needs_teachers()) {
    TF_CHECK(!dj.teachers.empty(), InvalidArgument, "distill: strategy '", options.strategy.name,
             "' needs at least one --teacher");
    const auto input_channels = cached ? p.dataset->channel_names() : p.channels;
    for (const auto& spec : dj.teachers) {
      auto t = distill::Teacher::load(spec, input_channels);
      std::string name = spec.name.empty() ? t->name() : spec.name;
      for (int k = 2; names.count(name); ++k) name = t->name() + "_" + std::to_string(k);
      names.insert(name);
      t = t->renamed(name, spec.weight);
      teachers.push_back(t);
      teacher_json.push_back({{"name", name}, {"dir", fs::absolute(spec.dir).string()}, {"fold", spec.fold},
                              {"checkpoint", spec.checkpoint}, {"weight", spec.weight},
                              {"model", t->model()->spec().key}, {"channels", t->channel_names()}});
    }
  }
  p.config["teachers"] = teacher_json;

  // The student's tap grids at the training patch (one forward pass), also used to check every weighted term.
  distill::KnowledgeGrid grid;
  grid.p = options.attention.p;
  grid.fine_tap = options.attention.fine_tap;
  models::SegOutput probe;
  const auto& ps = p.trainer.patch_size;
  {
    torch::NoGradGuard g;
    probe = model->forward(torch::zeros({1, model->spec().in_channels, ps[0], ps[1], ps[2]}),
                           {true, options.strategy.uses(distill::kTermAttnProbs), false, false});
    grid.coarse = probe.taps.at(models::kEncoderCoarse).sizes().slice(2).vec();
    grid.fine = probe.taps.at(models::kDecoderFine).sizes().slice(2).vec();
  }
  for (const auto& t : teachers) {
    const auto& fixed = t->model()->spec().fixed_input_size;
    TF_CHECK(cached || fixed.empty() || fixed == p.trainer.patch_size, InvalidArgument, "teacher '", t->name(),
             "' only accepts inputs of size ", fixed, " but the student trains on patches of ", p.trainer.patch_size,
             "; use the same patch size or the teacher cache");
  }
  auto loss = std::make_shared<distill::DistillLoss>(teachers, options, grid, cached);
  loss->check_terms(probe, ps);

  // Unlabelled cases (optional), preprocessed with this dataset's plan.
  std::shared_ptr<data::PreprocessedDataset> unlabelled;
  if (dj.unlabelled) {
    TF_CHECK(options.strategy.needs_teachers(), InvalidArgument, "distill: --unlabelled needs a strategy with "
             "teachers (on unlabelled cases only the teachers' knowledge trains the student)");
    unlabelled = main_first(job.group, [&] { return open_unlabelled(*dj.unlabelled, *p.dataset); });
  }

  // Teacher cache: built once by rank 0, read case by case with the patches.
  JobResult pre;
  nlohmann::json cache_json = nlohmann::json::array();
  std::vector<std::function<void(data::TrainingCase&)>> attach, attach_unlabelled;
  if (cached) {
    for (size_t i = 0; i < teachers.size(); ++i) {
      const auto t = teachers[i];
      distill::CacheSettings s;
      s.coarse_factor = ps[0] / grid.coarse[0];
      s.fine_factor = ps[0] / grid.fine[0];
      s.p = options.attention.p;
      s.fine_tap = options.attention.fine_tap;
      s.overlap = options.cache_overlap;
      const auto& fixed = t->model()->spec().fixed_input_size;
      s.roi = fixed.empty() ? models::open_model_folder(dj.teachers[i].dir).patch_size : fixed;
      const auto build = [&](const data::PreprocessedDataset& ds, const std::vector<std::string>& ids) {
        return main_first(job.group, [&] {
          if (is_main(job)) return build_teacher_cache(ds, ids, *t, s);
          CacheReport r;
          r.dir = distill::cache_dir(ds.root(), *t, s);
          return r;
        });
      };
      const CacheReport report = build(*p.dataset, p.train_ids);
      attach.push_back([dir = report.dir, t, s](data::TrainingCase& c) { distill::attach_cached_case(c, dir, *t, s); });
      pre.cache_bytes += report.bytes_on_disk;
      pre.cache_seconds += report.seconds;
      cache_json.push_back({{"teacher", t->name()}, {"dir", report.dir.string()}, {"bytes", report.bytes_on_disk},
                            {"built", report.built}, {"seconds", report.seconds}});
      if (unlabelled) {
        const CacheReport u = build(*unlabelled, unlabelled->case_ids());
        attach_unlabelled.push_back([dir = u.dir, t, s](data::TrainingCase& c) { distill::attach_cached_case(c, dir, *t, s); });
        pre.cache_bytes += u.bytes_on_disk;
        pre.cache_seconds += u.seconds;
      }
      if (is_main(job))
        spdlog::info("teacher cache {}: {} cases, {:.1f} MiB on disk, {:.1f}s", t->name(), report.cases,
                     double(report.bytes_on_disk) / (1 << 20), report.seconds);
    }
  }
  const auto all_of = [](std::vector<std::function<void(data::TrainingCase&)>> fns) {
    return std::function<void(data::TrainingCase&)>([fns](data::TrainingCase& c) {
      for (const auto& f : fns) f(c);
    });
  };
  auto train_cases = training_case_source(p.dataset, p.train_ids, p.channel_indices, p.trainer.case_cache_mb,
                                          all_of(attach));
  std::shared_ptr<const data::CaseSource> unlabelled_cases;
  const int64_t unlabelled_per_batch =
      p.trainer.unlabelled_per_batch < 0 ? p.trainer.batch_size : p.trainer.unlabelled_per_batch;
  if (unlabelled) {
    // Unlabelled cases must have the student's channels (by name) in the dataset's channel order.
    unlabelled_cases =
        unlabelled_source(unlabelled, p.channel_indices, p.trainer.case_cache_mb, all_of(attach_unlabelled));
    p.config["unlabelled"] = {{"path", fs::absolute(*dj.unlabelled).string()},
                              {"cases", unlabelled->case_ids().size()},
                              {"per_batch", unlabelled_per_batch}};
  }
  p.config["cache"] = cache_json;
  auto objective = std::make_shared<train::DistillationObjective>(loss);
  p.config["objective"] = objective->describe();
  write_model_folder(p, dir, job);
  train::Trainer trainer(model, objective, train_cases, validation_source(p), p.trainer,
                         {dir / models::fold_folder(job.fold)}, weights_metadata(p));
  trainer.set_unlabelled_cases(unlabelled_cases);
  if (is_main(job))
    spdlog::info("distill {} ({} parameters) from {} teacher(s), strategy {}, {} mode, fold {}{}", job.model,
                 models::count_parameters(*model), teachers.size(), options.strategy.name, cached ? "cached" : "live",
                 job.fold,
                 unlabelled ? ", +" + std::to_string(unlabelled->case_ids().size()) + " unlabelled cases (" +
                                  std::to_string(unlabelled_per_batch) + " per batch beside " +
                                  std::to_string(p.trainer.batch_size) + " labelled)"
                            : "");
  JobResult r = finish(trainer, p, dir, job);
  r.cache_bytes = pre.cache_bytes;
  r.cache_seconds = pre.cache_seconds;
  return r;
}

}  // namespace teachformer::pipeline
