#include "teachformer/metrics/protocols.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/metrics/hecktor.hpp"
#include "teachformer/version.hpp"

namespace teachformer::metrics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

Json num(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

std::map<std::string, fs::path> list_images(const fs::path& dir, const std::string& suffix, const char* what) {
  TF_CHECK(fs::exists(dir), IoError, what, " folder '", dir.string(), "' does not exist");
  TF_CHECK(fs::is_directory(dir), IoError, what, " folder '", dir.string(), "' is not a folder");
  std::map<std::string, fs::path> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const fs::path& p = entry.path();
    const std::string name = p.filename().string();
    if (name.empty() || name[0] == '.' || !io::is_image_file(p)) continue;  // hidden files include temporaries
    const std::string id = case_id_of(p, suffix);
    TF_CHECK(!id.empty(), DatasetError, what, " folder '", dir.string(), "': file '", name,
             "' gives an empty case id");
    const auto [it, inserted] = out.emplace(id, p);
    TF_CHECK(inserted, DatasetError, what, " folder '", dir.string(), "': files '", it->second.filename().string(),
             "' and '", name, "' share the case id '", id, "'; keep one per case");
  }
  std::ostringstream ext;
  for (const auto& e : io::supported_image_extensions()) ext << ' ' << e;
  TF_CHECK(!out.empty(), DatasetError, what, " folder '", dir.string(), "' holds no image files (expected", ext.str(),
           ")");
  return out;
}

std::string fmt_vec(const Vec3& v) {
  std::ostringstream os;
  os.precision(10);
  os << '[' << v[0] << ", " << v[1] << ", " << v[2] << ']';
  return os.str();
}

/// Checks that the prediction's header matches the reference's (one channel each, same grid).
void check_pair_geometry(const CasePair& c, double tol_mm) {
  const io::ImageInfo r = io::read_image_info(c.reference);
  const io::ImageInfo p = io::read_image_info(c.prediction);
  TF_CHECK(r.channels == 1, DatasetError, "reference '", c.reference.string(), "' has ", r.channels,
           " channels; expected a single-channel label map");
  TF_CHECK(p.channels == 1, DatasetError, "prediction '", c.prediction.string(), "' has ", p.channels,
           " channels; expected a single-channel map");
  auto where = [&] { return "prediction '" + c.prediction.string() + "' and reference '" + c.reference.string() + "'"; };
  TF_CHECK(r.size == p.size, DatasetError, "geometry mismatch between ", where(), ": size (x, y, z) ",
           std::vector<int64_t>(p.size.begin(), p.size.end()), " vs ",
           std::vector<int64_t>(r.size.begin(), r.size.end()));
  const Geometry& a = p.geometry;
  const Geometry& b = r.geometry;
  double ds = 0, dorg = 0, ddir = 0;
  for (int i = 0; i < 3; ++i) {
    ds = std::max(ds, std::abs(a.spacing[i] - b.spacing[i]));
    dorg = std::max(dorg, std::abs(a.origin[i] - b.origin[i]));
  }
  for (int i = 0; i < 9; ++i) ddir = std::max(ddir, std::abs(a.direction[i] - b.direction[i]));
  TF_CHECK(ds <= tol_mm, DatasetError, "geometry mismatch between ", where(), ": spacing ", fmt_vec(a.spacing),
           " vs ", fmt_vec(b.spacing), " mm (differs by ", ds, " mm, tolerance ", tol_mm,
           " mm; resample the prediction to the reference grid)");
  TF_CHECK(dorg <= tol_mm, DatasetError, "geometry mismatch between ", where(), ": origin ", fmt_vec(a.origin),
           " vs ", fmt_vec(b.origin), " mm (differs by ", dorg, " mm, tolerance ", tol_mm, " mm)");
  TF_CHECK(ddir <= 1e-4, DatasetError, "geometry mismatch between ", where(), ": direction ", a.to_string(), " vs ",
           b.to_string(), " (cosines differ by ", ddir, ", tolerance 1e-4)");
}

/// Work product of one case, before labels are unified.
struct CaseWork {
  CaseEvaluation eval;
  std::map<int, BinaryMetrics> metrics;  // generic / hecktor2022
  int64_t numel = 0;
  double voxel_volume = 0;
  picai::CaseDetection detection;        // picai
  bool softmax_input = false;            // picai
};

MetricRow hecktor2021_row(const BinaryMetrics& m, bool missing, bool official) {
  double dice = m.dice, precision = m.precision, recall = m.recall, hd95 = m.hd95;
  switch (m.empty) {
    case EmptyCase::None: break;
    case EmptyCase::PredictionEmpty:
      dice = 0, precision = 0, recall = 0;
      hd95 = official ? 0.0 : kInf;  // the official evaluator short-cuts empty predictions to HD95 0
      break;
    case EmptyCase::ReferenceEmpty:
      dice = 0, precision = 0, recall = kNaN, hd95 = kInf;  // DeepMind's Dice formula; distances to nothing
      break;
    case EmptyCase::BothEmpty:
      dice = precision = recall = hd95 = official ? 0.0 : kNaN;
      break;
  }
  if (missing) dice = 0, precision = 0, recall = 0, hd95 = kInf;  // the official score of a missing case
  return {{"Dice", dice},
          {"HD95", hd95},
          {"Precision", precision},
          {"Recall", recall},
          {"TP", double(m.counts.tp)},
          {"FP", double(m.counts.fp)},
          {"FN", double(m.counts.fn)},
          {"n_pred", double(m.counts.n_pred())},
          {"n_ref", double(m.counts.n_ref())},
          {"volume_pred_mm3", m.volume_pred_mm3},
          {"volume_ref_mm3", m.volume_ref_mm3}};
}

std::vector<int> union_labels(const std::vector<CaseWork>& work) {
  std::set<int> s;
  for (const auto& w : work)
    for (const auto& kv : w.metrics) s.insert(kv.first);
  return {s.begin(), s.end()};
}

std::string join(const std::vector<int>& v) {
  std::ostringstream os;
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  return os.str();
}

std::string fixed(double v, int precision = 4) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", precision, v);
  return buf;
}

}  // namespace

std::string to_string(Protocol p) {
  switch (p) {
    case Protocol::Generic: return "generic";
    case Protocol::Hecktor2021: return "hecktor2021";
    case Protocol::Hecktor2022: return "hecktor2022";
    case Protocol::Picai: return "picai";
  }
  return "?";
}

std::vector<std::string> protocol_names() { return {"generic", "hecktor2021", "hecktor2022", "picai"}; }

Protocol protocol_from_string(const std::string& name) {
  for (Protocol p : {Protocol::Generic, Protocol::Hecktor2021, Protocol::Hecktor2022, Protocol::Picai})
    if (to_string(p) == name) return p;
  TF_THROW(InvalidArgument, "unknown evaluation protocol '", name, "'; expected one of ", protocol_names());
}

std::string to_string(PicaiInput input) {
  switch (input) {
    case PicaiInput::Auto: return "auto";
    case PicaiInput::DetectionMap: return "detection";
    case PicaiInput::Softmax: return "softmax";
  }
  return "?";
}

PicaiInput picai_input_from_string(const std::string& name) {
  if (name == "auto") return PicaiInput::Auto;
  if (name == "detection") return PicaiInput::DetectionMap;
  if (name == "softmax") return PicaiInput::Softmax;
  TF_THROW(InvalidArgument, "unknown PI-CAI input kind '", name, "'; expected auto, detection or softmax");
}

std::string case_id_of(const fs::path& file, const std::string& suffix) {
  const std::string name = file.filename().string();
  const std::string ext = io::image_extension(file);
  std::string id = name.substr(0, name.size() - ext.size());
  if (!suffix.empty() && id.size() > suffix.size() && id.compare(id.size() - suffix.size(), suffix.size(), suffix) == 0)
    id.erase(id.size() - suffix.size());
  return id;
}

Pairing pair_cases(const fs::path& ref_dir, const fs::path& pred_dir, const std::string& ref_suffix,
                   const std::string& pred_suffix) {
  const auto refs = list_images(ref_dir, ref_suffix, "reference");
  const auto preds = list_images(pred_dir, pred_suffix, "prediction");
  Pairing out;
  int64_t matched = 0;
  for (const auto& [id, path] : refs) {
    const auto it = preds.find(id);
    out.cases.push_back({id, path, it == preds.end() ? fs::path() : it->second});
    matched += it != preds.end();
  }
  for (const auto& [id, path] : preds)
    if (!refs.count(id)) out.unmatched_predictions.push_back(path);
  TF_CHECK(matched > 0, DatasetError, "no prediction in '", pred_dir.string(), "' matches a reference case id in '",
           ref_dir.string(), "' (e.g. prediction id '", preds.begin()->first, "', reference id '",
           refs.begin()->first, "'); ids are file names without extension: use --ref-suffix/--pred-suffix to strip "
           "suffixes such as _gtvt or _0000");
  return out;
}

OutputPaths output_paths(const fs::path& output) {
  OutputPaths p;
  const fs::path dir = has_suffix(output, ".json") ? output.parent_path() : output;
  p.summary = has_suffix(output, ".json") ? output : output / "summary.json";
  p.cases_csv = dir / "cases.csv";
  p.picai_metrics = dir / "metrics.json";
  return p;
}

void write_evaluation(const EvaluationResult& r, const OutputPaths& paths) {
  write_json(paths.summary, r.summary);
  write_file_atomic(paths.cases_csv, r.cases_csv);
  if (r.picai_metrics) write_json(paths.picai_metrics, *r.picai_metrics);
}

EvaluationResult evaluate_folders(const fs::path& ref_dir, const fs::path& pred_dir, const EvaluateOptions& o) {
  TF_CHECK(o.percentile >= 0 && o.percentile <= 100, InvalidArgument, "evaluate: percentile must lie in [0, 100], got ",
           o.percentile);
  TF_CHECK(std::isfinite(o.nsd_tolerance_mm) && o.nsd_tolerance_mm >= 0, InvalidArgument,
           "evaluate: NSD tolerance must be >= 0 mm, got ", o.nsd_tolerance_mm);
  TF_CHECK(o.geometry_tolerance_mm >= 0, InvalidArgument, "evaluate: geometry tolerance must be >= 0 mm, got ",
           o.geometry_tolerance_mm);
  for (int l : o.labels)
    TF_CHECK(l >= 1 && l <= 255, InvalidArgument, "evaluate: labels must lie in [1, 255], got ", l);
  TF_CHECK(o.labels.empty() || o.protocol != Protocol::Picai, InvalidArgument,
           "evaluate: labels are not used by the picai protocol (reference >= 1 is lesion)");
  TF_CHECK(o.bbox_csv.empty() || o.protocol == Protocol::Hecktor2021, InvalidArgument,
           "evaluate: a bounding-box CSV is only used by the hecktor2021 protocol (protocol is ", to_string(o.protocol),
           ")");

  const Pairing pairing = pair_cases(ref_dir, pred_dir, o.ref_suffix, o.pred_suffix);
  if (!pairing.unmatched_predictions.empty())
    spdlog::warn("evaluate: {} prediction file(s) have no reference and are ignored (first: '{}')",
                 pairing.unmatched_predictions.size(), pairing.unmatched_predictions.front().string());

  std::map<std::string, WorldBox> boxes;
  if (o.protocol == Protocol::Hecktor2021) {
    if (o.bbox_csv.empty()) {
      spdlog::warn("evaluate: hecktor2021 without --bbox evaluates whole images (the official evaluation crops "
                   "to the bounding box)");
    } else {
      boxes = read_bounding_boxes(o.bbox_csv);
      std::vector<std::string> absent;
      for (const auto& c : pairing.cases)
        if (!boxes.count(c.case_id)) absent.push_back(c.case_id);
      TF_CHECK(absent.empty(), DatasetError, "bounding-box CSV '", o.bbox_csv.string(), "' has no row for ",
               absent.size(), " case(s), e.g. '", absent.empty() ? "" : absent.front(), "' (PatientID must equal ",
               "the case id)");
    }
  }

  // Headers first: a mismatch fails in seconds instead of after the volumes were read.
  for (const auto& c : pairing.cases)
    if (!c.prediction.empty()) check_pair_geometry(c, o.geometry_tolerance_mm);

  std::vector<int> fixed_labels = o.labels;
  if (fixed_labels.empty() && o.protocol == Protocol::Hecktor2022) fixed_labels = {1, 2};
  if (o.protocol == Protocol::Picai) fixed_labels = {1};

  const size_t n = pairing.cases.size();
  std::vector<CaseWork> work(n);
  auto evaluate_case = [&](size_t i) {
    const CasePair& c = pairing.cases[i];
    CaseWork& w = work[i];
    w.eval.case_id = c.case_id;
    w.eval.reference_file = c.reference;
    w.eval.prediction_file = c.prediction;
    w.eval.missing = c.prediction.empty();
    const io::Volume ref = io::read_label(c.reference);
    const Vec3 spacing = ref.geometry.spacing;
    w.voxel_volume = spacing[0] * spacing[1] * spacing[2];
    w.numel = ref.data.numel();

    if (o.protocol == Protocol::Picai) {
      torch::Tensor pred = w.eval.missing ? torch::zeros(ref.data.sizes(), torch::kFloat32)
                                          : io::read_image(c.prediction).data;
      bool softmax = o.picai_input == PicaiInput::Softmax;
      if (o.picai_input == PicaiInput::Auto && !w.eval.missing) softmax = !picai::is_detection_map(pred);
      const torch::Tensor det =
          softmax ? picai::extract_lesion_candidates(pred, o.candidates).detection_map : pred.select(0, 0);
      w.softmax_input = softmax;
      w.detection = picai::evaluate_detection_case(det, ref.data, o.matching);
      MetricOptions mo;
      mo.surface_metrics = false;
      const BinaryMetrics m = compute_binary_metrics(det.gt(0), ref.data.ne(0), spacing, mo);
      double tp = 0, fn = 0, fp = 0;
      for (const auto& l : w.detection.lesions) {
        if (l.is_lesion && l.overlap > 0) ++tp;
        else if (l.is_lesion) ++fn;
        else ++fp;
      }
      w.eval.metrics[1] = {{"Dice", m.dice},
                           {"case_confidence", w.detection.case_confidence},
                           {"case_target", double(w.detection.case_target)},
                           {"n_lesions", double(w.detection.num_lesions)},
                           {"n_candidates", double(w.detection.num_candidates)},
                           {"TP_lesions", tp},
                           {"FN_lesions", fn},
                           {"FP_lesions", fp},
                           {"softmax_input", softmax ? 1.0 : 0.0},
                           {"n_pred", double(m.counts.n_pred())},
                           {"n_ref", double(m.counts.n_ref())}};
      w.eval.status[1] = m.empty;
      return;
    }

    torch::Tensor pred = w.eval.missing ? torch::zeros_like(ref.data) : io::read_label(c.prediction).data;
    torch::Tensor ref_map = ref.data;
    if (o.protocol == Protocol::Hecktor2021) {
      if (!boxes.empty()) {
        const WorldBox& box = boxes.at(c.case_id);
        int64_t inside = 0;
        ref_map = crop_to_world_box(ref_map, ref.grid(), box, &inside);
        pred = crop_to_world_box(pred, ref.grid(), box);
        TF_CHECK(inside > 0, DatasetError, "case '", c.case_id, "': the bounding box of '", o.bbox_csv.string(),
                 "' contains no voxel centre of '", c.reference.string(), "' (", ref.grid().to_string(), ")");
        w.numel = inside;
      }
      std::vector<int> labels = o.labels;
      if (labels.empty()) {  // any non-zero voxel is the tumour, as the official evaluator does
        ref_map = ref_map.ne(0).to(torch::kUInt8);
        pred = pred.ne(0).to(torch::kUInt8);
        labels = {1};
      }
      MetricOptions mo;
      mo.method = SurfaceMethod::Surfels;
      mo.percentile = o.percentile;
      const Vec3 used = o.hecktor_official ? Vec3{spacing[2], spacing[1], spacing[0]} : spacing;
      auto metrics = compute_label_metrics(pred, ref_map, used, labels, mo);
      for (auto& [label, m] : metrics) {
        m.voxel_volume_mm3 = w.voxel_volume;  // volumes use the true spacing even in official mode
        m.volume_pred_mm3 = double(m.counts.n_pred()) * w.voxel_volume;
        m.volume_ref_mm3 = double(m.counts.n_ref()) * w.voxel_volume;
        w.eval.metrics[label] = hecktor2021_row(m, w.eval.missing, o.hecktor_official);
        w.eval.status[label] = m.empty;
      }
      return;
    }

    // generic and hecktor2022
    std::vector<int> labels = fixed_labels;
    if (labels.empty()) {
      std::set<int> s;
      for (int l : present_labels(ref_map)) s.insert(l);
      for (int l : present_labels(pred)) s.insert(l);
      labels.assign(s.begin(), s.end());
    }
    MetricOptions mo;
    mo.percentile = o.percentile;
    mo.nsd_tolerance_mm = o.nsd_tolerance_mm;
    w.metrics = compute_label_metrics(pred, ref_map, spacing, labels, mo);
  };

  // Cases in parallel on the intra-op threads; each worker pulls the next case so uneven cases balance out.
  // Work nested inside (distance transforms, tensor ops) runs serially in a worker.
  ProgressBar bar("evaluate", static_cast<int64_t>(n), o.progress);
  std::mutex mutex;
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), static_cast<int64_t>(n)));
  at::parallel_for(0, workers, 1, [&](int64_t b, int64_t e) {
    for (int64_t wkr = b; wkr < e; ++wkr) {
      for (size_t i = next++; i < n && !failed; i = next++) {
        try {
          evaluate_case(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mutex);
          if (!error) error = std::current_exception();
          failed = true;
          return;
        }
        std::lock_guard<std::mutex> lock(mutex);
        bar.advance(1, pairing.cases[i].case_id);
      }
    }
  });
  if (error) std::rethrow_exception(error);
  bar.finish();

  EvaluationResult r;
  r.protocol = o.protocol;
  if (o.protocol == Protocol::Generic || o.protocol == Protocol::Hecktor2022) {
    r.labels = fixed_labels.empty() ? union_labels(work) : fixed_labels;
    for (auto& w : work) {
      for (int l : r.labels) {
        auto it = w.metrics.find(l);
        const BinaryMetrics m =
            it != w.metrics.end() ? it->second : metrics_from_counts({0, 0, 0, w.numel}, w.voxel_volume);
        w.eval.metrics[l] = generic_row(m);
        w.eval.status[l] = m.empty;
      }
    }
  } else {
    std::set<int> s;
    for (const auto& w : work)
      for (const auto& kv : w.eval.metrics) s.insert(kv.first);
    r.labels.assign(s.begin(), s.end());
  }
  for (auto& w : work) r.cases.push_back(std::move(w.eval));

  r.summary = summary_json(r.cases, r.labels);
  std::vector<std::string> missing;
  for (const auto& c : r.cases)
    if (c.missing) missing.push_back(c.case_id);
  Json unmatched = Json::array();
  for (const auto& p : pairing.unmatched_predictions) unmatched.push_back(p.string());
  r.summary["protocol"] = to_string(o.protocol);
  r.summary["teachformer_version"] = kVersion;
  r.summary["reference_folder"] = ref_dir.string();
  r.summary["prediction_folder"] = pred_dir.string();
  r.summary["missing_cases"] = missing;
  r.summary["unmatched_predictions"] = unmatched;
  Json settings{{"labels", r.labels}, {"percentile", o.percentile}, {"geometry_tolerance_mm", o.geometry_tolerance_mm},
                {"ref_suffix", o.ref_suffix}, {"pred_suffix", o.pred_suffix}};

  std::ostringstream table;
  table << "protocol " << to_string(o.protocol) << ": " << r.cases.size() << " cases (" << missing.size()
        << " missing), labels " << join(r.labels) << "\n";
  if (o.protocol == Protocol::Generic) {
    settings["surface_method"] = to_string(SurfaceMethod::VoxelSurface);
    settings["nsd_tolerance_mm"] = o.nsd_tolerance_mm;
    table << summary_table(r.cases, r.labels, {"Dice", "IoU", "Precision", "Recall", "HD95", "HD", "ASSD", "NSD"});
  } else if (o.protocol == Protocol::Hecktor2021) {
    settings["surface_method"] = to_string(SurfaceMethod::Surfels);
    settings["bbox_csv"] = o.bbox_csv.empty() ? Json(nullptr) : Json(o.bbox_csv.string());
    settings["official_quirks"] = o.hecktor_official;
    Json section = Json::object();
    for (int l : r.labels) {
      const MetricStats dsc = compute_stats(metric_values(r.cases, l, "Dice"));
      const MetricStats hd = compute_stats(metric_values(r.cases, l, "HD95"));
      const MetricStats pr = compute_stats(metric_values(r.cases, l, "Precision"));
      const MetricStats re = compute_stats(metric_values(r.cases, l, "Recall"));
      section[std::to_string(l)] = {{"mean_DSC", num(dsc.mean)},
                                    {"median_HD95", num(hd.median_with_inf)},
                                    {"median_HD95_finite", num(hd.median)},
                                    {"n_HD95_inf", hd.n_inf},
                                    {"n_HD95_nan", hd.n_nan},
                                    {"mean_precision", num(pr.mean)},
                                    {"mean_recall", num(re.mean)}};
      table << "leaderboard (label " << l << "): mean DSC " << fixed(dsc.mean) << ", median HD95 "
            << fixed(hd.median_with_inf) << " mm (" << hd.n_inf << " infinite: missing or empty predictions)\n";
    }
    r.summary["hecktor2021"] = section;
    table << summary_table(r.cases, r.labels, {"Dice", "HD95", "Precision", "Recall"});
  } else if (o.protocol == Protocol::Hecktor2022) {
    settings["nsd_tolerance_mm"] = o.nsd_tolerance_mm;
    Json agg = Json::object();
    std::vector<double> aggs;
    for (int l : r.labels) {
      double tp = 0, den = 0;
      for (const auto& c : r.cases) {
        const auto& row = c.metrics.at(l);
        for (const auto& [k, v] : row) {
          if (k == "TP") tp += v;
          if (k == "n_pred" || k == "n_ref") den += v;
        }
      }
      const double dsc = den > 0 ? 2 * tp / den : kNaN;
      agg[std::to_string(l)] = num(dsc);
      aggs.push_back(dsc);
      table << "DSCagg label " << l << ": " << fixed(dsc) << "\n";
    }
    const MetricStats mean_agg = compute_stats(aggs);
    r.summary["hecktor2022"] = {{"DSCagg", agg}, {"mean_DSCagg", num(mean_agg.mean)}};
    table << "mean DSCagg: " << fixed(mean_agg.mean) << "\n";
    table << summary_table(r.cases, r.labels, {"Dice", "HD95"});
  } else {
    std::map<std::string, picai::CaseDetection> detections;
    int64_t softmax_cases = 0;
    for (size_t i = 0; i < n; ++i) {
      detections[pairing.cases[i].case_id] = work[i].detection;
      softmax_cases += work[i].softmax_input;
    }
    const picai::DetectionMetrics dm = picai::compute_detection_metrics(detections);
    r.picai_metrics = picai::to_picai_json(dm, detections);
    settings["picai_input"] = to_string(o.picai_input);
    settings["min_overlap"] = o.matching.min_overlap;
    settings["softmax_cases"] = softmax_cases;
    r.summary["picai"] = {{"auroc", num(dm.auroc)},
                          {"AP", num(dm.ap)},
                          {"score", num(dm.score)},
                          {"num_cases", dm.num_cases},
                          {"num_lesions", dm.num_lesions},
                          {"sensitivity_at_fp_per_case", (*r.picai_metrics)["sensitivity_at_fp_per_case"]}};
    table << "AUROC " << fixed(dm.auroc) << ", AP " << fixed(dm.ap) << ", score (AUROC + AP) / 2 " << fixed(dm.score)
          << ", " << dm.num_lesions << " lesions, sensitivity at 1 FP/case " << fixed(picai::sensitivity_at(dm, 1.0))
          << " (" << softmax_cases << " softmax maps turned into candidates)\n";
    table << summary_table(r.cases, r.labels, {"Dice", "TP_lesions", "FP_lesions", "FN_lesions"});
  }
  r.summary["settings"] = settings;
  r.cases_csv = cases_csv(r.cases, r.labels);
  r.table = table.str();
  return r;
}

}  // namespace teachformer::metrics
