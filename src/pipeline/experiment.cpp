#include "teachformer/pipeline/experiment.hpp"

#include <malloc.h>

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "pipeline/detail/experiment_table.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/stale_temporaries.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/core/runtime.hpp"
#include "teachformer/data/dataset.hpp"
#include "teachformer/data/splits.hpp"
#include "teachformer/data/synth.hpp"
#include "teachformer/data/verify.hpp"
#include "teachformer/distill/distill_loss.hpp"
#include "teachformer/distill/strategy.hpp"
#include "teachformer/inference/predictor.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/metrics/picai.hpp"
#include "teachformer/metrics/protocols.hpp"
#include "teachformer/models/model_folder.hpp"
#include "teachformer/models/model_info.hpp"
#include "teachformer/pipeline/job_runner.hpp"
#include "teachformer/pipeline/jobs.hpp"
#include "teachformer/core/folder_lock.hpp"
#include "teachformer/core/interrupt.hpp"
#include "teachformer/pipeline/stage_record.hpp"
#include "teachformer/report/report.hpp"
#include "teachformer/train/presets.hpp"

namespace teachformer::pipeline {
namespace {

using Json = nlohmann::json;

std::string joined(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---------------------------------------------------------------------------------------------------------------
// The preset's sizes.

struct PresetPlan {
  std::string train_preset;
  int cases = 0;
  int test_cases = 0;
  /// Preprocessing spacing (mm, x y z) for phantoms; empty = the layout's default (1 mm bbox, reference grid).
  std::vector<double> spacing;
  /// Patch [D, H, W] for every model; empty = the training preset's.
  std::vector<int64_t> patch;
  /// Teacher budget and student epochs, steps per epoch (0 = the training preset's).
  int64_t teacher_epochs = 0;
  int64_t student_epochs = 0;
  int64_t steps_per_epoch = 0;
  /// Teachers: validate every N epochs and stop after `patience` validations without improvement (0 = never).
  int64_t teacher_val_every = 0;
  int64_t teacher_patience = 0;
};

template <typename Rec>
std::vector<double> validation_weights(const std::vector<Rec>& teachers, double tau) {
  std::vector<double> val;
  for (const auto& t : teachers) val.push_back(t.result.value("val_dice", -1.0));
  return teacher_weights_from_validation(val, tau);
}

std::string t_weighted(const std::string& name, double weight) {
  char buf[32];
  std::snprintf(buf, sizeof buf, " x%.2f", weight);
  return name + buf;
}

PresetPlan preset_plan(const ExperimentOptions& o) {
  // Phantoms on CPU: PET/CT resampled into the 64 mm bbox at 2 mm (32^3, one window per case); prostate MRI on a
  // 1 x 1 x 3 mm grid (64 x 64 x 16), patches padded to 32 slices for SwinUNETR.
  const bool mri = o.kind == "mri";
  const std::vector<double> spacing = mri ? std::vector<double>{1.0, 1.0, 3.0} : std::vector<double>{2.0, 2.0, 2.0};
  const std::vector<int64_t> patch = mri ? std::vector<int64_t>{32, 64, 64} : std::vector<int64_t>{32, 32, 32};
  PresetPlan p;
  if (o.preset == "tiny") {
    p = {"tiny", 6, 2, spacing, patch};
  } else if (o.preset == "demo") {
    // Teachers train until their validation Dice stops improving, within a budget; students all get the same
    // number of steps. See docs/experiment.md for the measurements behind these numbers.
    p = {"demo", 32, 10, spacing, patch, 72, 36, 12, 2, 6};
  } else if (o.preset == "paper-hecktor") {
    p = {"paper", 0, 0, {}, {96, 96, 96}, 0, 0, 0, 10, 10};
  } else if (o.preset == "paper-picai") {
    p = {"paper", 0, 0, {}, {32, 256, 256}, 0, 0, 0, 10, 10};
  } else {
    TF_THROW(InvalidArgument, "unknown experiment preset '", o.preset, "'; presets: ", experiment_presets());
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------------------
// Data: the training dataset, its preprocessing, the held-out cases and the protocol that scores them.

struct HeldOut {
  std::vector<data::Case> cases;
  fs::path labels_dir;
  fs::path bbox_csv;
  /// Where the scored cases come from, for the table.
  std::string source;
};

struct DataSet {
  fs::path raw;
  fs::path preprocessed;
  fs::path unlabelled;  // raw phantoms used without labels (optional)
  HeldOut held;
  std::string protocol;  // "hecktor2021", "picai" or "generic"
  std::string digest;    // of everything above, for downstream stages
};

// A path as stage records keep it: relative to the experiment folder when inside it, so that a moved or copied
// folder, or the same folder named another way (relative, absolute, with "./"), reuses its stages; absolute otherwise
// (a dataset elsewhere).
std::string recorded_path(const fs::path& p, const fs::path& experiment_dir) {
  const fs::path abs = fs::absolute(p).lexically_normal();
  const fs::path rel = abs.lexically_relative(fs::absolute(experiment_dir).lexically_normal());
  if (!rel.empty() && *rel.begin() != "..") return rel.generic_string();
  return abs.generic_string();
}

// What a training stage records of its job: the job without where it writes or whether it resumes, with its paths as
// recorded_path keeps them.
Json stage_settings(const JobSpec& spec, const fs::path& experiment_dir) {
  Json settings = to_json(spec);
  settings["job"].erase("output");
  settings["job"].erase("resume");
  settings["job"]["dataset"] = recorded_path(spec.job.dataset, experiment_dir);
  if (spec.distill.unlabelled)
    settings["distill"]["unlabelled"] = recorded_path(*spec.distill.unlabelled, experiment_dir);
  return settings;
}

bool has_channel(const std::vector<std::string>& channels, std::initializer_list<const char*> names) {
  for (const auto& c : channels) {
    std::string u = c;
    std::transform(u.begin(), u.end(), u.begin(), ::toupper);
    for (const char* n : names)
      if (u == n) return true;
  }
  return false;
}

fs::path find_bbox_csv(const fs::path& root) {
  if (!fs::is_directory(root)) return {};
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && has_suffix(e.path(), ".csv") && name.find("bbox") != std::string::npos) return e.path();
  }
  return {};
}

// The protocol that fits the data: PI-CAI for prostate bpMRI, HECKTOR 2021 where a bbox CSV exists, else generic.
std::string protocol_for(const data::Dataset& ds) {
  if (ds.format == data::DatasetFormat::Picai || has_channel(ds.channel_names, {"T2W", "T2"}) &&
                                                     has_channel(ds.channel_names, {"ADC", "HBV", "DWI"}))
    return "picai";
  if (!find_bbox_csv(ds.root).empty()) return "hecktor2021";
  return "generic";
}

void check_preset_fits(const ExperimentOptions& o, const data::Dataset& ds) {
  const bool petct = has_channel(ds.channel_names, {"CT"}) && has_channel(ds.channel_names, {"PET", "PT"});
  const bool mri = protocol_for(ds) == "picai";
  TF_CHECK(o.preset != "paper-hecktor" || petct, InvalidArgument, "preset paper-hecktor needs PET/CT data (channels CT "
           "and PET), but '", ds.root.string(), "' has channels ", ds.channel_names, "; use --preset paper-picai for "
           "prostate MRI");
  TF_CHECK(o.preset != "paper-picai" || mri, InvalidArgument, "preset paper-picai needs prostate bpMRI (T2W with "
           "ADC/HBV), but '", ds.root.string(), "' has channels ", ds.channel_names, "; use --preset paper-hecktor "
           "for PET/CT");
}

void verify_or_throw(const fs::path& root) {
  const auto report = data::verify_dataset(root, std::nullopt);
  TF_CHECK(report.errors() == 0, DatasetError, "dataset '", root.string(), "' has ", report.errors(),
           " error(s); run `teachformer verify ", root.string(), "` for the list");
}

// Reference labels of `cases` (binarised where the layout says so) under `labels_dir`.
void write_reference_labels(const std::vector<data::Case>& cases, const fs::path& labels_dir,
                            const std::map<std::string, fs::path>& label_files = {}) {
  fs::create_directories(labels_dir);
  for (const auto& c : cases) {
    const fs::path target = labels_dir / (c.id + ".nii.gz");
    if (fs::exists(target)) continue;
    const fs::path source = label_files.count(c.id) ? label_files.at(c.id) : *c.label_file;
    io::Volume label = io::read_label(source);
    if (c.binarize_label) label.data = (label.data > 0).to(torch::kByte);
    io::write_label(target, label);
  }
}

// Phantoms, written once per settings.
fs::path synthesize_stage(const fs::path& dir, const std::string& what, const data::SynthOptions& s,
                          const std::string& difficulty, bool force) {
  const fs::path out = dir / "data" / what;
  const Json settings = {{"kind", data::to_string(s.kind)}, {"cases", s.cases}, {"seed", s.seed},
                         {"difficulty", difficulty}};
  const StageRecord record(out, "phantoms " + what, settings, dir / "stages" / ("data-" + what + ".json"));
  if (record.decide(force) != StageAction::Reuse) {
    record.start();
    if (fs::exists(out)) fs::remove_all(out);
    data::synthesize(out, s);
    record.finish({{"cases", s.cases}});
  }
  return out;
}

// Long on purpose: one sequential recipe (phantoms or the dataset, verify, preprocess, held-out split, references).
DataSet prepare_data(const ExperimentOptions& o, const PresetPlan& plan, const fs::path& dir, uint64_t seed) {
  DataSet d;
  fs::path test_raw;
  if (o.data) {
    d.raw = *o.data;
  } else {
    data::SynthOptions s;
    s.kind = data::phantom_kind_from_string(o.kind);
    s.difficulty = data::phantom_difficulty_from_string(o.difficulty);
    s.cases = o.cases > 0 ? o.cases : plan.cases;
    s.seed = seed;
    s.workers = std::max(1, hardware_threads());
    spdlog::info("[data] {} {} {} phantom cases (+{} held out{})", s.cases, o.difficulty, o.kind,
                 o.test_cases > 0 ? o.test_cases : plan.test_cases,
                 o.unlabelled_cases > 0 ? ", +" + std::to_string(o.unlabelled_cases) + " unlabelled" : "");
    d.raw = synthesize_stage(dir, "train", s, o.difficulty, o.force);
    s.cases = o.test_cases > 0 ? o.test_cases : plan.test_cases;
    s.seed = seed + 7919;  // a different draw of phantoms
    test_raw = synthesize_stage(dir, "test", s, o.difficulty, o.force);
    if (o.unlabelled_cases > 0) {
      s.cases = o.unlabelled_cases;
      s.seed = seed + 104729;
      d.unlabelled = synthesize_stage(dir, "unlabelled", s, o.difficulty, o.force);
    }
  }
  spdlog::info("[verify] {}", d.raw.string());
  verify_or_throw(d.raw);
  if (!test_raw.empty()) verify_or_throw(test_raw);
  const data::Dataset ds = data::open_dataset(d.raw);
  check_preset_fits(o, ds);
  d.protocol = protocol_for(ds);

  d.preprocessed = dir / "preprocessed";
  {
    spdlog::info("[preprocess] {}", d.preprocessed.string());
    data::PreprocessOptions po;
    po.workers = std::max(1, hardware_threads());
    if (!o.data && !plan.spacing.empty())
      po.plan.target_spacing = Vec3{plan.spacing[0], plan.spacing[1], plan.spacing[2]};
    data::preprocess_dataset(ds, d.preprocessed, po);
  }

  // Held-out cases: they never train, never choose a checkpoint and never choose a teacher.
  d.held.labels_dir = dir / "eval" / "labels";
  if (!test_raw.empty()) {
    const data::Dataset test = data::open_dataset(test_raw);
    d.held.cases = test.training;
    d.held.bbox_csv = find_bbox_csv(test_raw);
    d.held.source = "phantoms synthesised apart from the training set (data/test)";
    write_reference_labels(d.held.cases, d.held.labels_dir);
  } else {
    // A labelled test split of the layout (imagesTs + labelsTs), else a patient-level split recorded here.
    std::map<std::string, fs::path> ts_labels;
    const fs::path labels_ts = d.raw / "labelsTs";
    if (fs::is_directory(labels_ts))
      for (const auto& c : ds.unlabelled) {
        const fs::path f = labels_ts / (c.id + ds.file_ending);
        if (fs::exists(f)) ts_labels[c.id] = f;
      }
    const auto pds = data::open_preprocessed(d.preprocessed);
    std::set<std::string> test_ids;
    if (!ts_labels.empty()) {
      for (const auto& c : ds.unlabelled)
        if (ts_labels.count(c.id)) d.held.cases.push_back(c);
      d.held.source = "the dataset's labelled test split (imagesTs + labelsTs)";
    } else {
      const fs::path split_file = dir / "test_split.json";
      if (fs::exists(split_file)) {
        const auto ids = read_json(split_file).at("test").get<std::vector<std::string>>();
        test_ids.insert(ids.begin(), ids.end());
      } else {
        // Whole patients: every study of a held-out patient is held out.
        const auto folds = data::make_grouped_folds(pds.labelled_case_ids(), [&] {
          std::vector<std::string> patients;
          const auto ids = pds.case_ids();
          const auto all_patients = pds.patient_ids();
          const auto lab = pds.labelled_case_ids();
          const std::set<std::string> labset(lab.begin(), lab.end());
          for (size_t i = 0; i < ids.size(); ++i)
            if (labset.count(ids[i])) patients.push_back(all_patients[i]);
          return patients;
        }(), std::max(2, int(std::lround(1.0 / std::clamp(o.test_fraction, 0.05, 0.5)))));
        test_ids.insert(folds[0].val.begin(), folds[0].val.end());
        write_json(split_file, {{"test", std::vector<std::string>(test_ids.begin(), test_ids.end())},
                                {"test_fraction", o.test_fraction},
                                {"note", "patient-level split; these cases take part in no training or choice"}});
      }
      for (const auto& c : ds.training)
        if (test_ids.count(c.id)) d.held.cases.push_back(c);
      char buf[160];
      std::snprintf(buf, sizeof buf, "%.0f%% of the patients held out before training (test_split.json)",
                    100.0 * o.test_fraction);
      d.held.source = buf;
      // The folds the teachers and students train and validate on leave the test cases out.
      const fs::path splits = d.preprocessed / "splits_final.json";
      if (!fs::exists(splits)) {
        std::vector<std::string> ids, patients;
        const auto all = pds.case_ids();
        const auto all_patients = pds.patient_ids();
        const auto lab = pds.labelled_case_ids();
        const std::set<std::string> labset(lab.begin(), lab.end());
        for (size_t i = 0; i < all.size(); ++i)
          if (labset.count(all[i]) && !test_ids.count(all[i])) ids.push_back(all[i]), patients.push_back(all_patients[i]);
        data::write_splits(splits, data::make_grouped_folds(ids, patients, 5));
      }
      for (const auto& f : data::read_splits(splits))
        for (const auto* list : {&f.train, &f.val})
          for (const auto& id : *list)
            TF_CHECK(!test_ids.count(id), DatasetError, "'", splits.string(), "' puts held-out case '", id,
                     "' in a fold; delete it so that the experiment writes folds without the test cases");
    }
    TF_CHECK(!d.held.cases.empty(), DatasetError, "no labelled held-out cases found for '", d.raw.string(), "'");
    d.held.bbox_csv = find_bbox_csv(d.raw);
    write_reference_labels(d.held.cases, d.held.labels_dir, ts_labels);
  }
  Json ids = Json::array();
  for (const auto& c : d.held.cases) ids.push_back(c.id);
  d.digest = StageRecord({}, "data", {{"raw", recorded_path(d.raw, o.dir)},
                                      {"plan", data::open_preprocessed(d.preprocessed).plan().digest()},
                                      {"held_out", ids},
                                      {"protocol", d.protocol}})
                 .digest();
  return d;
}

// ---------------------------------------------------------------------------------------------------------------
// Training: teachers, the lone student, the teacher check, the other students.

struct ModelRecord {
  std::string name;    // "unetr", "student:hinton"
  std::string role;    // "teacher" / "student"
  std::string folder;  // models/<folder>
  std::string terms;
  std::string note;
  Json result;         // stage result: train/val numbers
  std::string digest;  // of the stage settings
};

JobOptions base_job(const ExperimentOptions& o, const PresetPlan& plan, const DataSet& d, const fs::path& seed_dir,
                    const std::string& model, const std::string& folder, int64_t epochs, uint64_t seed) {
  JobOptions job;
  job.dataset = d.preprocessed;
  job.model = model;
  job.preset = plan.train_preset;
  job.fold = o.fold;
  job.output = seed_dir / "models" / folder;
  job.patch_size = plan.patch;
  job.device = o.device;
  job.seed = seed;
  if (epochs > 0) job.epochs = epochs;
  const int64_t steps = o.steps_per_epoch > 0 ? o.steps_per_epoch : plan.steps_per_epoch;
  if (steps > 0) job.steps_per_epoch = steps;
  return job;
}

Json job_result_json(const JobResult& r) {
  return {{"seconds", r.summary.seconds + r.cache_seconds},
          {"train_seconds", r.summary.seconds},
          {"seconds_per_step", r.summary.seconds_per_step},
          {"val_dice", r.summary.best_dice},
          {"best_epoch", r.summary.best_epoch},
          {"epochs_run", r.summary.epochs_run},
          {"stopped_early", r.summary.stopped_early},
          {"last_dice", r.summary.last_dice},
          {"parameters", r.parameters},
          {"cache_bytes", r.cache_bytes},
          {"cache_seconds", r.cache_seconds}};
}

// Runs the jobs whose stage is not finished (in parallel with --jobs), then records them.
void run_stages(const ExperimentOptions& o, std::vector<std::pair<StageRecord, JobSpec>>& stages,
                std::vector<ModelRecord*> records) {
  std::vector<JobSpec> todo;
  std::vector<size_t> index;
  for (size_t i = 0; i < stages.size(); ++i) {
    auto& [record, spec] = stages[i];
    const StageAction a = record.decide(o.force);
    if (a == StageAction::Reuse) {
      records[i]->result = record.result();
      continue;
    }
    spec.job.resume = a == StageAction::Resume;
    record.start();
    todo.push_back(spec);
    index.push_back(i);
  }
  JobRunnerOptions ro;
  ro.jobs = o.jobs;
  ro.worker_command = o.worker_command;
  ro.passive_wait = o.jobs > 1 && machine_load() > 0.5;
  const auto results = run_jobs(todo, ro);
  for (size_t k = 0; k < todo.size(); ++k) {
    auto& [record, spec] = stages[index[k]];
    const Json r = job_result_json(results[k]);
    record.finish(r);
    records[index[k]]->result = r;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Prediction and scoring.

struct Scores {
  std::map<std::string, double> dice;  // per case
  std::vector<double> hd95;
  double auroc = NAN, ap = NAN;
  double seconds_per_case = 0, peak_rss_mib = 0;
};

Json scores_json(const Scores& s) {
  Json hd = Json::array();
  for (double v : s.hd95) hd.push_back(std::isfinite(v) ? Json(v) : Json(nullptr));
  return {{"dice", s.dice}, {"hd95", hd}, {"auroc", std::isfinite(s.auroc) ? Json(s.auroc) : Json(nullptr)},
          {"ap", std::isfinite(s.ap) ? Json(s.ap) : Json(nullptr)}, {"seconds_per_case", s.seconds_per_case},
          {"peak_rss_mib", s.peak_rss_mib}};
}

Scores scores_from_json(const Json& j) {
  Scores s;
  s.dice = j.at("dice").get<std::map<std::string, double>>();
  for (const auto& v : j.at("hd95")) s.hd95.push_back(v.is_null() ? NAN : v.get<double>());
  s.auroc = j.at("auroc").is_null() ? NAN : j.at("auroc").get<double>();
  s.ap = j.at("ap").is_null() ? NAN : j.at("ap").get<double>();
  s.seconds_per_case = j.at("seconds_per_case").get<double>();
  s.peak_rss_mib = j.at("peak_rss_mib").get<double>();
  return s;
}

// Predicts every held-out case with one model folder (in this process: the timing is the CPU's alone) and scores
// the predictions with the data's protocol.
Scores predict_and_score(const fs::path& model_dir, const DataSet& d, const fs::path& out_dir, const std::string& device) {
  const bool detection = d.protocol == "picai";
  fs::create_directories(out_dir);
  if (detection) fs::create_directories(out_dir / "detection");
  ::malloc_trim(0);
  reset_peak_rss();
  inference::PredictOptions po;
  po.device = device;
  po.probabilities = detection;
  const inference::Predictor predictor(model_dir, po);
  Scores s;
  double total = 0;
  for (const auto& c : d.held.cases) {
    throw_if_stop_requested("the trained models are kept; scoring starts again when the same command runs");
    const auto t0 = std::chrono::steady_clock::now();
    const auto p = predictor.predict(c);
    io::write_label(out_dir / (c.id + ".nii.gz"), p.labels);
    if (detection) {
      const auto fg = p.probabilities->data.narrow(0, 1, p.probabilities->channels() - 1).sum(0);
      const auto cand = metrics::picai::extract_lesion_candidates(fg);
      io::write_image(out_dir / "detection" / (c.id + ".nii.gz"),
                      io::Volume{cand.detection_map.unsqueeze(0).to(torch::kFloat), p.probabilities->geometry});
    }
    total += since(t0);
  }
  s.seconds_per_case = total / double(d.held.cases.size());
  s.peak_rss_mib = peak_rss_mib();

  metrics::EvaluateOptions eo;
  eo.progress = ProgressMode::Quiet;
  if (d.protocol == "hecktor2021") {
    eo.protocol = metrics::Protocol::Hecktor2021;
    eo.bbox_csv = d.held.bbox_csv;
  } else {
    eo.protocol = metrics::Protocol::Generic;
    if (detection) eo.labels = {1};
  }
  const auto ev = metrics::evaluate_folders(d.held.labels_dir, out_dir, eo);
  write_json(out_dir / "summary.json", ev.summary);
  for (const auto& c : ev.cases) {
    for (const auto& [label, values] : c.metrics)
      for (const auto& [metric, v] : values)
        if (metric == "HD95") s.hd95.push_back(v);
    const double d = metrics::case_dice(c);
    if (std::isfinite(d)) s.dice[c.case_id] = d;  // undefined: left out (nnU-Net's NaN-mean)
  }
  if (detection) {
    metrics::EvaluateOptions pe;
    pe.protocol = metrics::Protocol::Picai;
    pe.progress = ProgressMode::Quiet;
    pe.picai_input = metrics::PicaiInput::DetectionMap;
    const auto r = metrics::evaluate_folders(d.held.labels_dir, out_dir / "detection", pe);
    if (r.picai_metrics) {
      write_json(out_dir / "metrics.json", *r.picai_metrics);
      s.auroc = r.picai_metrics->value("auroc", NAN);
      s.ap = r.picai_metrics->value("AP", NAN);
    }
  }
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// One seed.

struct SeedOutcome {
  uint64_t seed = 0;
  std::vector<ModelRecord> models;
  std::map<std::string, Scores> scores;  // by model name
};

const StudentVariant& variant(const std::vector<StudentVariant>& all, const std::string& name) {
  for (const auto& v : all)
    if (v.name == name) return v;
  std::vector<std::string> names;
  for (const auto& v : all) names.push_back(v.name);
  TF_THROW(InvalidArgument, "unknown student '", name, "'; students: ", names);
}

// What every stage of one seed shares.
struct SeedContext {
  const ExperimentOptions& o;
  const PresetPlan& plan;
  const DataSet& d;
  uint64_t seed;
  fs::path seed_dir;
  std::string tag;  // " (seed N)" for log lines and stage labels
};

using Stage = std::pair<StageRecord, JobSpec>;

// Teachers: trained once per seed until their validation Dice stops improving, within the budget.
std::vector<ModelRecord> train_teachers(const SeedContext& s) {
  const ExperimentOptions& o = s.o;
  std::vector<ModelRecord> teachers(o.teachers.size());
  std::vector<Stage> stages;
  std::vector<ModelRecord*> recs;
  for (size_t i = 0; i < o.teachers.size(); ++i) {
    const auto& key = o.teachers[i];
    JobSpec spec;
    spec.kind = "train";
    spec.label = "teacher " + key + s.tag;
    spec.job = base_job(o, s.plan, s.d, s.seed_dir, key, key,
                        o.teacher_epochs > 0 ? o.teacher_epochs : s.plan.teacher_epochs, s.seed);
    if (s.plan.teacher_patience > 0)
      spec.job.config = {{"trainer",
                          {{"val_every", s.plan.teacher_val_every},
                           {"early_stop_patience", s.plan.teacher_patience},
                           {"early_stop_min_epochs", spec.job.epochs.value_or(0) / 2}}}};
    Json settings = stage_settings(spec, o.dir).at("job");
    settings["data"] = s.d.digest;
    teachers[i] = {key, "teacher", key, "", "", Json(), ""};
    stages.emplace_back(StageRecord(spec.job.output, spec.label, settings), spec);
    teachers[i].digest = stages.back().first.digest();
    recs.push_back(&teachers[i]);
  }
  spdlog::info("[teachers{}] {}", s.tag, joined(o.teachers));
  run_stages(o, stages, recs);
  return teachers;
}

// The distillation stage of student variant `v` from the teachers `use` (none for the lone student).
std::pair<ModelRecord, Stage> student_stage(const SeedContext& s, const StudentVariant& v,
                                            const std::vector<ModelRecord>& use) {
  const ExperimentOptions& o = s.o;
  JobSpec spec;
  spec.kind = "distill";
  spec.label = "student " + v.name + s.tag;
  spec.job = base_job(o, s.plan, s.d, s.seed_dir, "teachformer_s", "student_" + v.name,
                      o.student_epochs > 0 ? o.student_epochs : s.plan.student_epochs, s.seed);
  Json dc = train::merge_config(o.distill_config, v.distill_config);
  if (v.strategy != "student_alone") {
    // The form of prediction KD is recorded even where the config leaves it to the default, so that a folder made
    // under another default is refused (naming kd_dice), not reused.
    Json probe = dc;
    if (!v.strategy.empty()) probe["strategy"] = v.strategy;
    const auto d = distill::distill_options_from_json(probe);
    if (d.strategy.uses(distill::kTermKd) && !dc.contains("kd_dice")) dc["kd_dice"] = d.kd_dice;
  }
  if (!dc.empty()) spec.job.config = {{"distill", dc}};
  if (!v.strategy.empty()) spec.distill.strategy = v.strategy;
  spec.distill.cache = o.cache;
  if (v.unlabelled) {
    TF_CHECK(!s.d.unlabelled.empty(), InvalidArgument, "student '", v.name,
             "' needs unlabelled cases: give --unlabelled-cases N");
    spec.distill.unlabelled = s.d.unlabelled;
  }
  Json used = Json::array();
  const double tau = v.teacher_val_tau.value_or(o.teacher_val_tau);
  const auto weights = validation_weights(use, tau);
  if (v.strategy != "student_alone")
    for (size_t i = 0; i < use.size(); ++i) {
      const auto& t = use[i];
      distill::TeacherSpec ts;
      ts.dir = s.seed_dir / "models" / t.folder;
      ts.fold = o.fold;
      ts.weight = weights[i];
      spec.distill.teachers.push_back(ts);
      used.push_back({{"name", t.name}, {"stage", t.digest}, {"weight", weights[i]}});
    }
  Json settings = stage_settings(spec, o.dir);
  settings["distill"]["teachers"] = used;
  settings["data"] = s.d.digest;
  ModelRecord rec{"student:" + v.name, "student", "student_" + v.name, v.terms, "", Json(), ""};
  if (v.strategy != "student_alone") {
    rec.note = "teachers: ";
    for (size_t i = 0; i < use.size(); ++i)
      rec.note += (i ? "+" : "") + (use.size() > 1 && tau > 0 ? t_weighted(use[i].name, weights[i])
                                                                          : use[i].name);
  }
  return {rec, {StageRecord(spec.job.output, spec.label, settings), spec}};
}

ModelRecord train_student_alone(const SeedContext& s, const std::vector<StudentVariant>& variants) {
  auto [alone, stage] = student_stage(s, variant(variants, "student_alone"), {});
  std::vector<Stage> stages{stage};
  alone.digest = stage.first.digest();
  spdlog::info("[student alone{}]", s.tag);
  run_stages(s.o, stages, {&alone});
  return alone;
}

// The teachers the other students learn from: those better than the lone student on validation (all of them under
// the "keep" policy), else the best one; notes on the teachers say why.
struct TeacherChoice {
  std::vector<ModelRecord> kept;
  std::optional<ModelRecord> best;
};

TeacherChoice choose_teachers(const SeedContext& s, std::vector<ModelRecord>& teachers, const ModelRecord& alone) {
  const ExperimentOptions& o = s.o;
  const double alone_val = alone.result.value("val_dice", -1.0);
  TeacherChoice c;
  const ModelRecord* best = nullptr;
  for (auto& t : teachers) {
    const double v = t.result.value("val_dice", -1.0);
    if (!best || v > best->result.value("val_dice", -1.0)) best = &t;
    const bool better = v > alone_val;
    spdlog::info("teacher {}{}: validation Dice {:.4f} vs the lone student's {:.4f}{}", t.name, s.tag, v, alone_val,
                 better ? "" : (o.teacher_policy == "drop" ? ": not better, dropped" : ": not better, kept"));
    if (!better) t.note = o.teacher_policy == "drop" ? "not better than student_alone on validation: dropped"
                                                     : "not better than student_alone on validation";
    if (better || o.teacher_policy == "keep") c.kept.push_back(t);
  }
  if (c.kept.empty() && best) {
    c.kept.push_back(*best);
    for (auto& t : teachers)
      if (t.name == best->name) t.note = "not better than student_alone on validation; kept as the best teacher";
    spdlog::warn("no teacher beats the lone student on validation{}: distilling from the best one, {}", s.tag,
                 best->name);
  }
  if (c.kept.size() > 1 && o.teacher_val_tau > 0) {
    const auto w = validation_weights(c.kept, o.teacher_val_tau);
    std::string line;
    for (size_t i = 0; i < c.kept.size(); ++i) line += (i ? ", " : "") + t_weighted(c.kept[i].name, w[i]);
    spdlog::info("teacher weights{} (softmax of validation Dice / {}): {}", s.tag, o.teacher_val_tau, line);
  }
  if (best) c.best = *best;
  return c;
}

// The other students, all from the same batches and steps as the lone one.
std::vector<ModelRecord> train_students(const SeedContext& s, const std::vector<StudentVariant>& variants,
                                        const std::vector<std::string>& students, const TeacherChoice& teachers) {
  std::vector<Stage> stages;
  std::vector<ModelRecord> studs;
  for (const auto& name : students) {
    if (name == "student_alone") continue;
    const auto& v = variant(variants, name);
    const std::vector<ModelRecord> use =
        v.single_teacher && teachers.best ? std::vector<ModelRecord>{*teachers.best} : teachers.kept;
    auto [rec, stage] = student_stage(s, v, use);
    rec.digest = stage.first.digest();
    studs.push_back(rec);
    stages.push_back(stage);
  }
  std::vector<ModelRecord*> ptrs;
  for (auto& r : studs) ptrs.push_back(&r);
  spdlog::info("[students{}] {}", s.tag, joined(students));
  run_stages(s.o, stages, ptrs);
  return studs;
}

// Predicts and scores every model on the held-out cases (reusing earlier predictions of the same model and data),
// and records each model's size and cost.
void predict_and_score_models(const SeedContext& s, SeedOutcome& out) {
  const ExperimentOptions& o = s.o;
  ProgressBar bar("[predict+evaluate" + s.tag + "]", int64_t(out.models.size()));
  for (auto& m : out.models) {
    const fs::path model_dir = s.seed_dir / "models" / m.folder;
    const fs::path pred_dir = s.seed_dir / "predictions" / m.folder;
    const StageRecord record(pred_dir, "predictions of " + m.name + s.tag,
                             {{"model", m.digest}, {"data", s.d.digest}, {"device", o.device},
                              {"case_dice", "nnunet"}});
    if (record.decide(o.force) == StageAction::Reuse) {
      out.scores[m.name] = scores_from_json(record.result());
    } else {
      record.start();
      out.scores[m.name] = predict_and_score(model_dir, s.d, pred_dir, o.device);
      record.finish(scores_json(out.scores[m.name]));
    }
    const auto folder = models::open_model_folder(model_dir);
    auto model = folder.load(o.fold);
    const auto& ps = folder.patch_size;
    const auto info = models::describe_model(*model, {1, int64_t(folder.channels.size()), ps[0], ps[1], ps[2]});
    m.result["parameters"] = info.parameters;
    m.result["gflops"] = info.gflops;
    m.result["model"] = folder.model;
    bar.advance();
  }
  bar.finish();
}

// The ladder's students and the user's.
std::vector<StudentVariant> all_variants(const ExperimentOptions& o) {
  auto v = student_variants(o.variant_temperature);
  v.insert(v.end(), o.custom_students.begin(), o.custom_students.end());
  return v;
}

SeedOutcome run_seed(const ExperimentOptions& o, const PresetPlan& plan, const DataSet& d, uint64_t seed,
                     const std::vector<std::string>& students) {
  const SeedContext s{o, plan, d, seed, o.dir / ("seed_" + std::to_string(seed)),
                      " (seed " + std::to_string(seed) + ")"};
  const auto variants = all_variants(o);
  std::vector<ModelRecord> teachers = train_teachers(s);
  // The student alone first: the teachers are checked against it (on validation only).
  const ModelRecord alone = train_student_alone(s, variants);
  const TeacherChoice choice = choose_teachers(s, teachers, alone);
  const std::vector<ModelRecord> studs = train_students(s, variants, students, choice);

  SeedOutcome out;
  out.seed = seed;
  out.models = teachers;
  out.models.push_back(alone);
  for (const auto& st : studs) out.models.push_back(st);
  predict_and_score_models(s, out);
  return out;
}

}  // namespace

std::vector<double> teacher_weights_from_validation(const std::vector<double>& val_dice, double tau) {
  TF_CHECK(tau >= 0, InvalidArgument, "teacher weights: the temperature must be >= 0, got ", tau);
  std::vector<double> w(val_dice.size(), 1.0);
  if (tau == 0 || val_dice.size() < 2) return w;
  double top = -1;
  for (double v : val_dice) {
    if (!(v >= 0)) return w;  // a teacher without a validation Dice: no basis for weights
    top = std::max(top, v);
  }
  double sum = 0;
  for (size_t i = 0; i < w.size(); ++i) sum += w[i] = std::exp((val_dice[i] - top) / tau);
  for (auto& x : w) x *= double(w.size()) / sum;
  return w;
}

std::vector<std::string> experiment_presets() { return {"tiny", "demo", "paper-hecktor", "paper-picai"}; }

std::vector<StudentVariant> student_variants(double variant_temperature) {
  char t[32];
  std::snprintf(t, sizeof t, "%g", variant_temperature);
  return {
      {"student_alone", "student_alone", "gt"},
      {"hinton", "hinton", "gt+kd"},
      {"hinton_coarse", "hinton_coarse", "gt+kd+coarse"},
      {"hinton_fine", "hinton_fine", "gt+kd+fine"},
      {"multi_no_staging", "multi_no_staging", "gt+kd+coarse+fine"},
      {"teachformer", "teachformer", "gt+kd+coarse+fine, staged"},
      {"at", "at", "gt+coarse+fine"},
      {"single_teacher", "teachformer", "gt+kd+coarse+fine, staged, best teacher only", {}, true},
      {"teachformer_t", "teachformer", std::string("gt+kd+coarse+fine, staged, T=") + t,
       {{"temperature", variant_temperature}}},
      {"teachformer_unlabelled", "teachformer", "gt+kd+coarse+fine, staged, + unlabelled cases", {}, false, true},
      {"teachformer_kl", "teachformer", "gt+kd+coarse+fine (kd KL only), staged", {{"kd_dice", 0.0}}},
  };
}

std::string custom_student_keys() { return "learns_from, single_teacher, teacher_val_tau, unlabelled"; }

StudentVariant custom_student_variant(const std::string& spec) {
  const auto eq = spec.find('=');
  TF_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(), ConfigError, "--student '", spec,
           "': expected NAME=JSON (a distill config inline or in a file), e.g. kd4='{\"strategy\": \"hinton\", "
           "\"temperature\": 4}'");
  StudentVariant v;
  v.name = spec.substr(0, eq);
  for (const char c : v.name)
    TF_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-', ConfigError, "--student '", v.name,
             "': a name has letters, digits, '_' and '-' only");
  for (const auto& b : student_variants())
    TF_CHECK(b.name != v.name, ConfigError, "--student '", v.name,
             "': that is a built-in student (give it with --students); choose another name");
  Json j;
  try {
    j = json_from_string_or_file(spec.substr(eq + 1));
  } catch (const Error& e) {
    TF_THROW(ConfigError, "--student '", v.name, "': ", e.what());
  }
  TF_CHECK(j.is_object(), ConfigError, "--student '", v.name, "': the definition must be a JSON object, got ", j.dump());
  if (j.contains("single_teacher")) {
    TF_CHECK(j["single_teacher"].is_boolean(), ConfigError, "--student '", v.name, "': single_teacher must be true or false");
    v.single_teacher = j["single_teacher"].get<bool>();
    j.erase("single_teacher");
  }
  if (j.contains("teacher_val_tau")) {
    TF_CHECK(j["teacher_val_tau"].is_number() && j["teacher_val_tau"].get<double>() >= 0, ConfigError, "--student '",
             v.name, "': teacher_val_tau must be a number >= 0 (0: equal teacher weights)");
    v.teacher_val_tau = j["teacher_val_tau"].get<double>();
    j.erase("teacher_val_tau");
  }
  if (j.contains("unlabelled")) {
    TF_CHECK(j["unlabelled"].is_boolean(), ConfigError, "--student '", v.name,
             "': unlabelled must be true or false (true: also trains on the --unlabelled-cases phantoms)");
    v.unlabelled = j["unlabelled"].get<bool>();
    j.erase("unlabelled");
  }
  std::string learns_from;
  if (j.contains("learns_from")) {
    TF_CHECK(j["learns_from"].is_string(), ConfigError, "--student '", v.name, "': learns_from must be a string");
    learns_from = j["learns_from"].get<std::string>();
    j.erase("learns_from");
  }
  if (!j.contains("strategy")) j["strategy"] = "teachformer";
  distill::DistillOptions d;
  try {
    d = distill::distill_options_from_json(j);
  } catch (const Error& e) {
    TF_THROW(ConfigError, "--student '", v.name, "': ", e.what(),
             "; besides the distill options a student takes ", custom_student_keys());
  }
  TF_CHECK(d.strategy.needs_teachers(), ConfigError, "--student '", v.name,
           "': its strategy uses no teacher term (kd, attn_coarse, attn_fine, attn_probs); it would be the lone "
           "student again");
  v.distill_config = j;  // the strategy travels in the config
  if (!learns_from.empty()) {
    v.terms = learns_from;
  } else {
    const std::vector<std::pair<const char*, const char*>> shown{{distill::kTermGt, "gt"},
                                                                  {distill::kTermKd, "kd"},
                                                                  {distill::kTermAttnCoarse, "coarse"},
                                                                  {distill::kTermAttnFine, "fine"},
                                                                  {distill::kTermAttnProbs, "probs"}};
    for (const auto& [term, text] : shown)
      if (d.strategy.uses(term)) v.terms += (v.terms.empty() ? "" : "+") + std::string(text);
    char t[48];
    if (d.strategy.uses(distill::kTermKd) && d.kd_dice != distill::DistillOptions{}.kd_dice) {
      std::snprintf(t, sizeof t, " (kd with Dice x%g)", d.kd_dice);
      v.terms += d.kd_dice == 0 ? " (kd KL only)" : t;
    }
    if (d.strategy.stages.size() > 1) v.terms += ", staged";
    std::snprintf(t, sizeof t, ", T=%g", d.temperature);
    if (d.temperature != 1.0) v.terms += t;
    if (v.single_teacher) v.terms += ", best teacher only";
    if (v.unlabelled) v.terms += ", + unlabelled cases";
    if (v.teacher_val_tau) {
      std::snprintf(t, sizeof t, ", teacher tau %g", *v.teacher_val_tau);
      v.terms += t;
    }
  }
  return v;
}

std::vector<std::string> default_students(const std::string& preset, bool with_unlabelled) {
  std::vector<std::string> s{"student_alone", "hinton", "hinton_coarse", "hinton_fine", "multi_no_staging",
                             "teachformer", "single_teacher", "teachformer_t"};
  if (preset == "tiny") s = {"student_alone", "hinton", "teachformer", "single_teacher"};
  if (with_unlabelled) s.push_back("teachformer_unlabelled");
  return s;
}

ExperimentResult run_experiment(const ExperimentOptions& o) {
  const auto t_start = std::chrono::steady_clock::now();
  const PresetPlan plan = preset_plan(o);
  TF_CHECK(o.kind == "petct" || o.kind == "mri", InvalidArgument, "--kind must be petct or mri, got '", o.kind, "'");
  TF_CHECK(o.difficulty == "normal" || o.difficulty == "hard", InvalidArgument,
           "--difficulty must be normal or hard, got '", o.difficulty, "'");
  TF_CHECK(plan.train_preset != "paper" || o.data, InvalidArgument, "preset '", o.preset,
           "' is for real data on a GPU: give --data <dataset> (phantoms are for tiny/demo)");
  TF_CHECK(!o.seeds.empty(), InvalidArgument, "--seeds: at least one seed");
  TF_CHECK(o.teacher_policy == "drop" || o.teacher_policy == "keep", InvalidArgument,
           "--teacher-policy must be drop or keep, got '", o.teacher_policy, "'");
  TF_CHECK(o.jobs >= 1, InvalidArgument, "--jobs must be >= 1, got ", o.jobs);
  TF_CHECK(!o.data || o.unlabelled_cases == 0, InvalidArgument, "--unlabelled-cases adds phantoms; with --data give "
           "the unlabelled scans to `teachformer distill --unlabelled` instead");
  std::vector<std::string> students = o.students.empty() ? default_students(o.preset, o.unlabelled_cases > 0) : o.students;
  if (std::find(students.begin(), students.end(), "student_alone") == students.end())
    students.insert(students.begin(), "student_alone");  // the reference every student is compared with
  std::set<std::string> custom_names;
  for (const auto& c : o.custom_students) {
    TF_CHECK(custom_names.insert(c.name).second, InvalidArgument, "--student: '", c.name, "' is defined twice");
    if (std::find(students.begin(), students.end(), c.name) == students.end()) students.push_back(c.name);
  }
  for (const auto& s : students) variant(all_variants(o), s);
  fs::create_directories(o.dir);
  const FolderLock lock(o.dir, "experiment folder", FolderLock::Mode::Refuse);
  // What a killed run was writing anywhere in the folder (phantoms, stage records, predictions, results).
  remove_stale_temporaries_under(o.dir);
  if (const double load = machine_load(); load > 0.5)
    spdlog::warn("the machine is busy before the experiment starts (1-minute load {:.1f} per core): timings will be "
                 "slower than on an idle machine{}",
                 load, o.jobs > 1 ? "; workers wait passively for the cores" : "");

  std::vector<SeedOutcome> outcomes;
  std::optional<DataSet> fixed;
  for (const uint64_t seed : o.seeds) {
    const fs::path data_dir = o.vary_data ? o.dir / ("seed_" + std::to_string(seed)) : o.dir;
    if (!fixed || o.vary_data) fixed = prepare_data(o, plan, data_dir, o.vary_data ? seed : o.seeds.front());
    outcomes.push_back(run_seed(o, plan, *fixed, seed, students));
  }

  detail::TableInput in;
  in.preset = o.preset;
  in.source = o.data ? o.data->string() : o.difficulty + " " + o.kind + " phantoms";
  in.protocol = fixed->protocol;
  in.held_out_source = fixed->held.source;
  for (const auto& c : fixed->held.cases) in.scored_cases.push_back(c.id);
  in.seeds = o.seeds;
  in.vary_data = o.vary_data;
  for (const auto& oc : outcomes) {
    detail::SeedTable t;
    t.seed = oc.seed;
    for (const auto& m : oc.models) {
      detail::ModelSeedResult r;
      r.name = m.name;
      r.role = m.role;
      r.terms = m.terms;
      r.note = m.note;
      r.stage = m.result;
      const auto& s = oc.scores.at(m.name);
      r.case_dice = s.dice;
      r.hd95 = s.hd95;
      r.auroc = s.auroc;
      r.ap = s.ap;
      r.seconds_per_case = s.seconds_per_case;
      r.peak_rss_mib = s.peak_rss_mib;
      t.models.push_back(r);
    }
    in.seeds_tables.push_back(t);
  }
  ExperimentResult result = detail::build_table(in);
  result.seconds = since(t_start);
  result.markdown = detail::table_heading(in, result.seconds) + result.markdown;
  write_file_atomic(o.dir / "results.md", result.markdown);
  write_file_atomic(o.dir / "results.csv", result.csv);
  write_json(o.dir / "results.json", result.json);
  result.report = report::write_experiment_report(o.dir);
  return result;
}

}  // namespace teachformer::pipeline
