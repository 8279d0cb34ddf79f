#include "teachformer/pipeline/experiment.hpp"

#include <malloc.h>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/core/runtime.hpp"
#include "teachformer/data/dataset.hpp"
#include "teachformer/data/synth.hpp"
#include "teachformer/data/verify.hpp"
#include "teachformer/inference/predictor.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/metrics/picai.hpp"
#include "teachformer/metrics/protocols.hpp"
#include "teachformer/models/model_info.hpp"
#include "teachformer/pipeline/jobs.hpp"

namespace teachformer::pipeline {
namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct PresetPlan {
  std::string train_preset;
  int cases = 0;
  int test_cases = 0;
  /// Preprocessing spacing (mm, x y z) for phantoms; empty = the layout's default (1 mm bbox, reference grid).
  std::vector<double> spacing;
  /// Patch [D, H, W] for every model; empty = the training preset's.
  std::vector<int64_t> patch;
  /// Epochs of the teachers and of the students, steps per epoch (0 = the training preset's).
  int64_t teacher_epochs = 0;
  int64_t student_epochs = 0;
  int64_t steps_per_epoch = 0;
};

PresetPlan preset_plan(const ExperimentOptions& o) {
  // Phantoms on CPU: PET/CT resampled into the 64 mm bbox at 2 mm (32^3, one window per case); prostate MRI on a
  // 1 x 1 x 3 mm grid (64 x 64 x 16), patches padded to 32 slices for SwinUNETR.
  const bool mri = o.kind == "mri";
  const std::vector<double> spacing = mri ? std::vector<double>{1.0, 1.0, 3.0} : std::vector<double>{2.0, 2.0, 2.0};
  const std::vector<int64_t> patch = mri ? std::vector<int64_t>{32, 64, 64} : std::vector<int64_t>{32, 32, 32};
  if (o.preset == "tiny") return {"tiny", 6, 2, spacing, patch};
  // demo: about 7 minutes on an idle 2-core machine (teachers ~1.5-2 min each, students ~20 s each). Teachers need
  // these 36 x 12 steps to beat the student trained alone; shorter runs give weak teachers and KD cannot help.
  if (o.preset == "demo") return {"demo", 32, 10, spacing, patch, 36, 36, 12};
  if (o.preset == "paper-hecktor") return {"paper", 0, 0, {}, {96, 96, 96}};
  if (o.preset == "paper-picai") return {"paper", 0, 0, {}, {32, 256, 256}};
  TF_THROW(InvalidArgument, "unknown experiment preset '", o.preset, "'; presets: ", experiment_presets());
}

// One model's run in the experiment: the shared dataset, fold, patch, device and seed; `epochs` the role's length
// (teacher or student; 0 = the training preset's).
JobOptions experiment_job(const ExperimentOptions& o, const PresetPlan& plan, const fs::path& preprocessed,
                          const std::string& model, const std::string& folder, int64_t epochs) {
  JobOptions job;
  job.dataset = preprocessed;
  job.model = model;
  job.preset = plan.train_preset;
  job.fold = o.fold;
  job.output = o.dir / "models" / folder;
  job.patch_size = plan.patch;
  job.device = o.device;
  job.seed = o.seed;
  if (epochs > 0) job.epochs = epochs;
  const int64_t steps = o.steps_per_epoch > 0 ? o.steps_per_epoch : plan.steps_per_epoch;
  if (steps > 0) job.steps_per_epoch = steps;
  return job;
}

// Phantoms are written once; a marker says the folder is complete.
void synthesize_once(const fs::path& dir, const data::SynthOptions& s) {
  const fs::path marker = dir / ".teachformer-synth.json";
  if (fs::exists(marker)) return;
  data::synthesize(dir, s);
  write_json(marker, {{"kind", data::to_string(s.kind)}, {"cases", s.cases}, {"seed", s.seed}});
}

void verify_or_throw(const fs::path& root) {
  const auto report = data::verify_dataset(root, std::nullopt);
  TF_CHECK(report.errors() == 0, DatasetError, "dataset '", root.string(), "' has ", report.errors(),
           " error(s); run `teachformer verify ", root.string(), "` for the list");
}

std::string job_record(const fs::path& model_dir) { return (model_dir / "job.json").string(); }

// Trains (or resumes, or skips) one model; returns its recorded job summary.
Json run_or_reuse(const fs::path& model_dir, const std::function<JobResult(bool resume)>& run, int fold) {
  const fs::path fold_dir = model_dir / models::fold_folder(fold);
  if (fs::exists(job_record(model_dir)) && fs::exists(fold_dir / "checkpoint_final.safetensors"))
    return read_json(job_record(model_dir));
  const bool resume = fs::exists(fold_dir / "checkpoint_latest.safetensors");
  const JobResult r = run(resume);
  const Json record = {{"seconds", r.summary.seconds + r.cache_seconds},
                       {"train_seconds", r.summary.seconds},
                       {"seconds_per_step", r.summary.seconds_per_step},
                       {"best_dice", r.summary.best_dice},
                       {"last_dice", r.summary.last_dice},
                       {"parameters", r.parameters},
                       {"cache_bytes", r.cache_bytes},
                       {"cache_seconds", r.cache_seconds}};
  write_json(job_record(model_dir), record);
  return record;
}

struct HeldOut {
  std::vector<data::Case> cases;
  fs::path labels_dir;
  fs::path bbox_csv;
};

fs::path find_bbox_csv(const fs::path& root) {
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && has_suffix(e.path(), ".csv") && name.find("bbox") != std::string::npos) return e.path();
  }
  return {};
}

// Reference labels of the held-out cases, binarised where the layout says so, under <dir>/eval/labels.
HeldOut held_out_cases(const fs::path& root, const std::vector<std::string>& only, const fs::path& dir) {
  HeldOut h;
  const data::Dataset ds = data::open_dataset(root);
  const std::set<std::string> keep(only.begin(), only.end());
  h.labels_dir = dir / "eval" / "labels";
  fs::create_directories(h.labels_dir);
  for (const auto& c : ds.training) {
    if (!keep.empty() && !keep.count(c.id)) continue;
    h.cases.push_back(c);
    const fs::path target = h.labels_dir / (c.id + ".nii.gz");
    if (fs::exists(target)) continue;
    io::Volume label = io::read_label(*c.label_file);
    if (c.binarize_label) label.data = (label.data > 0).to(torch::kByte);
    io::write_label(target, label);
  }
  TF_CHECK(!h.cases.empty(), DatasetError, "no held-out labelled cases found in '", root.string(), "'");
  h.bbox_csv = find_bbox_csv(root);
  return h;
}

struct PredictionStats {
  double seconds_per_case = 0;
  double peak_rss_mib = 0;
};

// Predicts every held-out case with one model folder (skipped when done); in-process timing after trimming the heap.
PredictionStats predict_all(const fs::path& model_dir, const HeldOut& held, const fs::path& out_dir, bool detection,
                            const std::string& device) {
  const fs::path record = out_dir / "timing.json";
  if (fs::exists(record)) {
    const Json j = read_json(record);
    return {j.at("seconds_per_case").get<double>(), j.at("peak_rss_mib").get<double>()};
  }
  fs::create_directories(out_dir);
  if (detection) fs::create_directories(out_dir / "detection");
  ::malloc_trim(0);
  reset_peak_rss();
  inference::PredictOptions po;
  po.device = device;
  po.probabilities = detection;
  const inference::Predictor predictor(model_dir, po);
  double total = 0;
  for (const auto& c : held.cases) {
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
  PredictionStats s{total / double(held.cases.size()), peak_rss_mib()};
  write_json(record, {{"seconds_per_case", s.seconds_per_case}, {"peak_rss_mib", s.peak_rss_mib},
                      {"cases", held.cases.size()}});
  return s;
}

std::string fmt(double v, int precision) {
  if (!std::isfinite(v)) return std::isnan(v) ? "n/a" : "inf";
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(precision);
  os << v;
  return os.str();
}

}  // namespace

std::vector<std::string> experiment_presets() { return {"tiny", "demo", "paper-hecktor", "paper-picai"}; }

ExperimentResult run_experiment(const ExperimentOptions& o) {
  const auto t_start = std::chrono::steady_clock::now();
  const PresetPlan plan = preset_plan(o);
  TF_CHECK(o.kind == "petct" || o.kind == "mri", InvalidArgument, "--kind must be petct or mri, got '", o.kind, "'");
  TF_CHECK(plan.train_preset != "paper" || o.data, InvalidArgument, "preset '", o.preset,
           "' is for real data on a GPU: give --data <dataset> (phantoms are for tiny/demo)");
  fs::create_directories(o.dir);
  const bool mri = o.data ? false : o.kind == "mri";
  ExperimentResult result;

  // 1. Data: phantoms (training set + separately synthesised held-out set) or the user's dataset.
  fs::path raw, test_raw;
  if (o.data) {
    raw = *o.data;
  } else {
    data::SynthOptions s;
    s.kind = data::phantom_kind_from_string(o.kind);
    s.cases = o.cases > 0 ? o.cases : plan.cases;
    s.seed = o.seed;
    s.workers = std::max(1, hardware_threads());
    raw = o.dir / "data" / "train";
    spdlog::info("[1/6] synthesising {} {} phantom cases (+{} held out)", s.cases, o.kind,
                 o.test_cases > 0 ? o.test_cases : plan.test_cases);
    synthesize_once(raw, s);
    s.cases = o.test_cases > 0 ? o.test_cases : plan.test_cases;
    s.seed = o.seed + 7919;  // a different draw of phantoms
    test_raw = o.dir / "data" / "test";
    synthesize_once(test_raw, s);
  }
  spdlog::info("[2/6] verifying {}", raw.string());
  verify_or_throw(raw);
  if (!test_raw.empty()) verify_or_throw(test_raw);

  // 2. Preprocess once for every model.
  const fs::path pre = o.dir / "preprocessed";
  {
    spdlog::info("[3/6] preprocessing into {}", pre.string());
    data::PreprocessOptions po;
    po.workers = std::max(1, hardware_threads());
    if (!o.data && !plan.spacing.empty()) po.plan.target_spacing = Vec3{plan.spacing[0], plan.spacing[1], plan.spacing[2]};
    data::preprocess_dataset(data::open_dataset(raw), pre, po);
  }
  const auto pds = data::open_preprocessed(pre);
  const auto folds = dataset_splits(pds, 5);
  TF_CHECK(o.fold >= 0 && o.fold < int(folds.size()), InvalidArgument, "fold ", o.fold, " out of range");

  // 3. Teachers.
  std::map<std::string, Json> records;
  for (const auto& key : o.teachers) {
    spdlog::info("[4/6] teacher {}", key);
    JobOptions job =
        experiment_job(o, plan, pre, key, key, o.teacher_epochs > 0 ? o.teacher_epochs : plan.teacher_epochs);
    records[key] = run_or_reuse(job.output, [&](bool resume) {
      job.resume = resume;
      return run_train_job(job);
    }, o.fold);
  }
  std::string best_teacher;
  double best = -1;
  for (const auto& key : o.teachers)
    if (records[key].value("best_dice", -1.0) > best) best = records[key]["best_dice"], best_teacher = key;

  // 4. Students: Teach-Former and the baselines, all from the same command with different strategies.
  for (const auto& s : o.students) {
    spdlog::info("[5/6] student {}", s);
    JobOptions job = experiment_job(o, plan, pre, "teachformer_s", "student_" + s,
                                    o.student_epochs > 0 ? o.student_epochs : plan.student_epochs);
    DistillJobOptions d;
    d.strategy = s == "single_teacher" ? "teachformer" : s;
    d.cache = o.cache;
    std::vector<std::string> teacher_keys = s == "single_teacher" ? std::vector<std::string>{best_teacher} : o.teachers;
    if (s != "student_alone")
      for (const auto& key : teacher_keys) {
        distill::TeacherSpec t;
        t.dir = o.dir / "models" / key;
        t.fold = o.fold;
        d.teachers.push_back(t);
      }
    records["student_" + s] = run_or_reuse(job.output, [&](bool resume) {
      job.resume = resume;
      return run_distill_job(job, d);
    }, o.fold);
  }

  // 5. Predict and evaluate on held-out cases.
  const HeldOut held = test_raw.empty() ? held_out_cases(raw, folds[size_t(o.fold)].val, o.dir)
                                        : held_out_cases(test_raw, {}, o.dir);
  std::vector<std::pair<std::string, std::string>> entries;  // name, model dir name
  for (const auto& key : o.teachers) entries.emplace_back(key, key);
  for (const auto& s : o.students) entries.emplace_back("student:" + s, "student_" + s);
  ProgressBar bar("[6/6] predict+evaluate", int64_t(entries.size()));
  for (const auto& [name, sub] : entries) {
    const fs::path model_dir = o.dir / "models" / sub;
    const fs::path pred_dir = o.dir / "predictions" / sub;
    ExperimentRow row;
    row.name = name;
    row.role = name.rfind("student:", 0) == 0 ? "student" : "teacher";
    const auto stats = predict_all(model_dir, held, pred_dir, mri, o.device);
    row.seconds_per_case = stats.seconds_per_case;
    row.peak_rss_mib = stats.peak_rss_mib;
    row.train_seconds = records[sub].value("seconds", 0.0);
    {
      const auto folder = models::open_model_folder(model_dir);
      auto model = folder.load(o.fold);
      row.model = folder.model;
      const auto& ps = folder.patch_size;
      const auto info = models::describe_model(*model, {1, int64_t(folder.channels.size()), ps[0], ps[1], ps[2]});
      row.parameters = info.parameters;
      row.gflops = info.gflops;
    }
    metrics::EvaluateOptions eo;
    eo.progress = ProgressMode::Quiet;
    if (mri) {
      eo.protocol = metrics::Protocol::Generic;
      eo.labels = {1};
    } else {
      eo.protocol = metrics::Protocol::Hecktor2021;
      eo.bbox_csv = held.bbox_csv;
    }
    const auto ev = metrics::evaluate_folders(held.labels_dir, pred_dir, eo);
    std::vector<double> dice, hd95;
    for (const auto& c : ev.cases) {
      for (const auto& [label, row_values] : c.metrics)
        for (const auto& [metric, v] : row_values) {
          if (metric == "Dice" || metric == "DSC") dice.push_back(v);
          if (metric == "HD95") hd95.push_back(v);
        }
    }
    const auto ds = metrics::compute_stats(dice), hs = metrics::compute_stats(hd95);
    row.dice = ds.mean;
    row.hd95 = hs.median;
    row.hd95_undefined = hs.n_nan + hs.n_inf;
    write_json(pred_dir / "summary.json", ev.summary);
    if (mri) {
      metrics::EvaluateOptions po;
      po.protocol = metrics::Protocol::Picai;
      po.progress = ProgressMode::Quiet;
      po.picai_input = metrics::PicaiInput::DetectionMap;
      const auto pe = metrics::evaluate_folders(held.labels_dir, pred_dir / "detection", po);
      if (pe.picai_metrics) {
        write_json(pred_dir / "metrics.json", *pe.picai_metrics);
        row.auroc = pe.picai_metrics->value("auroc", NAN);
        row.ap = pe.picai_metrics->value("AP", NAN);
        row.picai_score = (row.auroc + row.ap) / 2;
      }
    }
    result.rows.push_back(row);
    bar.advance();
  }
  bar.finish();

  // 6. The table.
  std::ostringstream md, csv;
  md << "| model | role | parameters | GFLOPs @patch | CPU s/case | peak RSS MiB | train s | "
     << (mri ? "AUROC | AP | PI-CAI score | Dice" : "Dice (mean) | HD95 mm (median)") << " |\n";
  md << "|---|---|---:|---:|---:|---:|---:|" << (mri ? "---:|---:|---:|---:|" : "---:|---:|") << "\n";
  csv << "model,role,parameters,gflops,seconds_per_case,peak_rss_mib,train_seconds,dice,hd95,hd95_undefined,auroc,ap,"
         "picai_score\n";
  for (const auto& r : result.rows) {
    md << "| " << r.name << " | " << r.role << " | " << r.parameters << " | " << fmt(r.gflops, 2) << " | "
       << fmt(r.seconds_per_case, 2) << " | " << fmt(r.peak_rss_mib, 0) << " | " << fmt(r.train_seconds, 0) << " | ";
    if (mri)
      md << fmt(r.auroc, 3) << " | " << fmt(r.ap, 3) << " | " << fmt(r.picai_score, 3) << " | " << fmt(r.dice, 3) << " |\n";
    else
      md << fmt(r.dice, 3) << " | " << fmt(r.hd95, 2) << (r.hd95_undefined ? " (" + std::to_string(r.hd95_undefined) + " undefined)" : "")
         << " |\n";
    csv << r.name << ',' << r.role << ',' << r.parameters << ',' << r.gflops << ',' << r.seconds_per_case << ','
        << r.peak_rss_mib << ',' << r.train_seconds << ',' << r.dice << ',' << r.hd95 << ',' << r.hd95_undefined << ','
        << r.auroc << ',' << r.ap << ',' << r.picai_score << '\n';
  }
  result.seconds = since(t_start);
  std::ostringstream head;
  head << "# TeachFormer experiment (" << o.preset << ", " << (o.data ? o.data->string() : o.kind + " phantoms")
       << ")\n\nHeld-out cases: " << held.cases.size() << "; protocol: "
       << (mri ? "PI-CAI detection (AUROC, AP) + generic Dice" : "HECKTOR 2021 (inside the bbox; DSC, HD95)")
       << "; seed " << o.seed << "; wall time " << format_duration(result.seconds) << ".\n\n";
  result.markdown = head.str() + md.str();
  result.csv = csv.str();
  write_file_atomic(o.dir / "results.md", result.markdown);
  write_file_atomic(o.dir / "results.csv", result.csv);
  return result;
}

}  // namespace teachformer::pipeline
