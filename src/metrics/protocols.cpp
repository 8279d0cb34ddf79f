#include "teachformer/metrics/protocols.hpp"

#include "metrics/detail/protocol_evaluator.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/version.hpp"

namespace teachformer::metrics {

namespace {

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

/// Runs `evaluate_case(i)` for every case on the intra-op threads; each worker pulls the next case so uneven cases
/// balance out, and work nested inside (distance transforms, tensor ops) runs serially in a worker. The first error
/// stops the workers and is rethrown.
void for_each_case_in_parallel(const Pairing& pairing, ProgressMode progress,
                               const std::function<void(size_t)>& evaluate_case) {
  const size_t n = pairing.cases.size();
  ProgressBar bar("evaluate", static_cast<int64_t>(n), progress);
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
  const std::unique_ptr<detail::ProtocolEvaluator> evaluator = detail::make_evaluator(o);
  evaluator->check();

  const Pairing pairing = pair_cases(ref_dir, pred_dir, o.ref_suffix, o.pred_suffix);
  if (!pairing.unmatched_predictions.empty())
    spdlog::warn("evaluate: {} prediction file(s) have no reference and are ignored (first: '{}')",
                 pairing.unmatched_predictions.size(), pairing.unmatched_predictions.front().string());
  evaluator->prepare(pairing);

  // Headers first: a mismatch fails in seconds instead of after the volumes were read.
  for (const auto& c : pairing.cases)
    if (!c.prediction.empty()) check_pair_geometry(c, o.geometry_tolerance_mm);

  const size_t n = pairing.cases.size();
  std::vector<detail::CaseWork> work(n);
  auto evaluate_case = [&](size_t i) {
    const CasePair& c = pairing.cases[i];
    detail::CaseWork& w = work[i];
    w.eval.case_id = c.case_id;
    w.eval.reference_file = c.reference;
    w.eval.prediction_file = c.prediction;
    w.eval.missing = c.prediction.empty();
    const io::Volume ref = io::read_label(c.reference);
    const Vec3& spacing = ref.geometry.spacing;
    w.voxel_volume = spacing[0] * spacing[1] * spacing[2];
    w.numel = ref.data.numel();
    evaluator->evaluate_case(i, c, ref, w);
  };

  for_each_case_in_parallel(pairing, o.progress, evaluate_case);

  EvaluationResult r;
  r.protocol = o.protocol;
  r.labels = evaluator->finish_cases(work);
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
        << " missing), labels " << detail::join_labels(r.labels) << "\n";
  evaluator->summarise(r, settings, table);
  r.summary["settings"] = settings;
  r.cases_csv = cases_csv(r.cases, r.labels);
  r.table = table.str();
  return r;
}

}  // namespace teachformer::metrics
