#include "teachformer/report/experiment_folder.hpp"

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "teachformer/core/error.hpp"
#include "teachformer/core/strings.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/data/dataset.hpp"
#include "teachformer/data/preprocessed.hpp"
#include "teachformer/io/image_io.hpp"

namespace teachformer::report {
namespace {

std::string folder_of(const std::string& row_name) {
  const std::string prefix = "student:";
  return row_name.rfind(prefix, 0) == 0 ? "student_" + row_name.substr(prefix.size()) : row_name;
}

// "teacher" for a model folder written by `train`, "student" for one written by `distill`.
std::string role_of_model_dir(const fs::path& model_dir) {
  if (!fs::exists(model_dir / "config.json")) return "model";
  return read_json(model_dir / "config.json").value("kind", "") == "distill" ? "student" : "teacher";
}

std::string image_stem(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.substr(0, name.size() - io::image_extension(p).size());
}

// Ids of the label maps in a folder, sorted.
std::vector<std::string> label_ids(const fs::path& dir) {
  std::vector<std::string> ids;
  if (!fs::is_directory(dir)) return ids;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && io::is_image_file(e.path())) ids.push_back(image_stem(e.path()));
  std::sort(ids.begin(), ids.end());
  return ids;
}

fs::path label_file(const fs::path& dir, const std::string& id) {
  for (const auto& ext : io::supported_image_extensions())
    if (fs::exists(dir / (id + ext))) return dir / (id + ext);
  return {};
}

// Seeds of the seed_<s>/ layout, sorted numerically; {""} for the layout without them.
std::vector<std::string> find_seeds(const fs::path& root) {
  std::vector<std::pair<long long, std::string>> found;
  const std::regex re("seed_([0-9]+)");
  for (const auto& e : fs::directory_iterator(root)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (e.is_directory() && std::regex_match(name, m, re)) found.emplace_back(std::stoll(m[1]), m[1]);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> seeds;
  for (const auto& [n, s] : found) seeds.push_back(s);
  if (seeds.empty()) seeds.push_back("");
  return seeds;
}

fs::path seed_root(const fs::path& root, const std::string& seed) { return seed.empty() ? root : root / ("seed_" + seed); }

// The held-out cases of an experiment: the synthesised test set, the dataset named in results.json, or the
// preprocessed cases (a real dataset's validation cases), in that order; only cases with a reference label.
std::vector<ReportCase> experiment_cases(const ExperimentFolder& f) {
  const std::vector<std::string> ids = label_ids(f.labels_dir);
  const std::set<std::string> wanted(ids.begin(), ids.end());
  std::map<std::string, ReportCase> found;
  std::vector<fs::path> raw_roots{f.root / "data" / "test"};
  if (f.experiment.contains("data") && f.experiment["data"].is_string()) raw_roots.emplace_back(f.experiment["data"].get<std::string>());
  for (const auto& raw : raw_roots) {
    if (!fs::is_directory(raw)) continue;
    for (const auto& c : data::open_dataset(raw).all_cases()) {
      if (!wanted.count(c.id) || found.count(c.id)) continue;
      ReportCase rc;
      rc.id = c.id;
      rc.channel_names = c.channel_names;
      rc.channel_files = c.channel_files;
      rc.bbox = c.bbox;
      found[c.id] = rc;
    }
  }
  const fs::path pre = f.root / "preprocessed";
  if (found.size() < wanted.size() && fs::exists(pre / "dataset.json")) {
    const auto pds = data::open_preprocessed(pre);
    for (const auto& id : pds.case_ids())
      if (wanted.count(id) && !found.count(id)) {
        ReportCase rc;
        rc.id = id;
        rc.preprocessed = pre;
        found[id] = rc;
      }
  }
  std::vector<ReportCase> cases;
  for (const auto& id : ids) {
    ReportCase rc = found.count(id) ? found[id] : ReportCase{id};
    rc.label = label_file(f.labels_dir, id);
    cases.push_back(rc);
  }
  return cases;
}

ExperimentFolder open_experiment(const fs::path& root) {
  ExperimentFolder f;
  f.root = root;
  f.kind = SourceKind::Experiment;
  f.labels_dir = root / "eval" / "labels";
  if (fs::exists(root / "results.json")) {
    const Json j = read_json(root / "results.json");
    f.experiment = j.value("experiment", Json::object());
    f.result_rows = j.value("rows", Json::array());
  }
  f.fold = f.experiment.value("fold", 0);
  f.seeds = find_seeds(root);
  if (fs::exists(root / "results.csv")) {
    f.results_csv = root / "results.csv";
    read_csv(f.results_csv, f.csv_header, f.csv_rows);
  }
  // Models in the table's order: results.json rows, else results.csv rows, else the model folders found.
  std::vector<std::pair<std::string, std::string>> named;  // name, role
  if (f.result_rows.is_array() && !f.result_rows.empty()) {
    for (const auto& r : f.result_rows) named.emplace_back(r.at("name").get<std::string>(), r.value("role", ""));
  } else if (!f.csv_rows.empty()) {
    const auto col = [&](const std::string& c) { return size_t(std::find(f.csv_header.begin(), f.csv_header.end(), c) - f.csv_header.begin()); };
    const size_t n = col("model"), r = col("role");
    TF_CHECK(n < f.csv_header.size(), FormatError, "'", f.results_csv.string(), "' has no 'model' column");
    for (const auto& row : f.csv_rows) named.emplace_back(row[n], r < row.size() ? row[r] : "");
  } else {
    const fs::path models = seed_root(root, f.seeds.front()) / "models";
    std::vector<std::string> folders;
    if (fs::is_directory(models))
      for (const auto& e : fs::directory_iterator(models))
        if (e.is_directory()) folders.push_back(e.path().filename().string());
    std::sort(folders.begin(), folders.end());
    for (const auto& name : folders) {
      const std::string role = role_of_model_dir(models / name);
      const std::string row = name.rfind("student_", 0) == 0 ? "student:" + name.substr(8) : name;
      named.emplace_back(row, role);
    }
    std::stable_sort(named.begin(), named.end(), [](const auto& a, const auto& b) {
      return (a.second == "teacher") > (b.second == "teacher");
    });
  }
  for (const auto& [name, role] : named) {
    ModelEntry m;
    m.name = name;
    m.folder = folder_of(name);
    for (const auto& s : f.seeds) {
      m.model_dirs.push_back(seed_root(root, s) / "models" / m.folder);
      m.prediction_dirs.push_back(seed_root(root, s) / "predictions" / m.folder);
    }
    m.role = role.empty() ? role_of_model_dir(m.model_dirs.front()) : role;
    f.models.push_back(m);
  }
  f.cases = experiment_cases(f);
  return f;
}

ExperimentFolder open_model(const fs::path& root) {
  ExperimentFolder f;
  f.root = root;
  f.kind = SourceKind::ModelFolder;
  f.seeds = {""};
  const Json config = read_json(root / "config.json");
  f.fold = config.value("fold", 0);
  f.experiment = {{"model", config.value("model", "")}, {"fold", f.fold}};
  ModelEntry self;
  self.name = root.filename().string();
  self.role = role_of_model_dir(root);
  self.folder = self.name;
  self.model_dirs = {root};
  self.prediction_dirs = {fs::path()};
  // Teachers of a distilled model come first, as in an experiment's table.
  for (const auto& t : config.value("teachers", Json::array())) {
    const fs::path dir = t.value("dir", "");
    if (dir.empty() || !fs::exists(dir / "config.json")) continue;
    ModelEntry m;
    m.name = t.value("name", dir.filename().string());
    m.role = "teacher";
    m.folder = dir.filename().string();
    m.model_dirs = {dir};
    m.prediction_dirs = {fs::path()};
    f.models.push_back(m);
  }
  f.models.push_back(self);
  // Its validation cases, from the preprocessed dataset it was trained on.
  const fs::path pre = config.contains("dataset") ? fs::path(config["dataset"].value("path", "")) : fs::path();
  if (!pre.empty() && fs::exists(pre / "dataset.json") && fs::exists(root / "splits_final.json")) {
    const Json splits = read_json(root / "splits_final.json");
    if (splits.is_array() && f.fold >= 0 && f.fold < int(splits.size())) {
      std::vector<std::string> ids = splits[size_t(f.fold)].value("val", std::vector<std::string>{});
      std::sort(ids.begin(), ids.end());
      for (const auto& id : ids) {
        ReportCase rc;
        rc.id = id;
        rc.preprocessed = pre;
        f.cases.push_back(rc);
      }
    }
  }
  return f;
}

ExperimentFolder open_predictions(const fs::path& root, const fs::path& ref) {
  TF_CHECK(fs::is_directory(ref), IoError, "report: reference folder '", ref.string(), "' does not exist");
  ExperimentFolder f;
  f.root = root;
  f.kind = SourceKind::Predictions;
  f.seeds = {""};
  f.labels_dir = ref;
  ModelEntry m;
  m.name = root.filename().string();
  m.role = "model";
  m.folder = m.name;
  m.model_dirs = {fs::path()};
  m.prediction_dirs = {root};
  f.models.push_back(m);
  const auto predicted = label_ids(root);
  const std::set<std::string> have(predicted.begin(), predicted.end());
  for (const auto& id : label_ids(ref)) {
    if (!have.count(id)) continue;
    ReportCase rc;
    rc.id = id;
    rc.label = label_file(ref, id);
    f.cases.push_back(rc);
  }
  TF_CHECK(!f.cases.empty(), IoError, "report: no prediction in '", root.string(), "' has a reference of the same name in '",
           ref.string(), "' (expected {case}.nii.gz in both)");
  return f;
}

}  // namespace

std::string to_string(SourceKind kind) {
  switch (kind) {
    case SourceKind::Experiment: return "experiment";
    case SourceKind::ModelFolder: return "model folder";
    case SourceKind::Predictions: return "predictions";
  }
  return "?";
}

void read_csv(const fs::path& path, std::vector<std::string>& header, std::vector<std::vector<std::string>>& rows) {
  std::ifstream in(path);
  TF_CHECK(in.good(), IoError, "cannot read '", path.string(), "'");
  header.clear();
  rows.clear();
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::vector<std::string> fields = split_csv_line(line);
    if (header.empty()) {
      header = fields;
      continue;
    }
    TF_CHECK(fields.size() == header.size(), FormatError, "'", path.string(), "' line ", n, ": expected ", header.size(),
             " fields like the header, got ", fields.size());
    rows.push_back(fields);
  }
  TF_CHECK(!header.empty(), FormatError, "'", path.string(), "' is empty (expected a header line)");
}

std::map<std::string, std::map<std::string, double>> per_case_metrics(const fs::path& predictions_dir) {
  std::map<std::string, std::map<std::string, double>> out;
  const fs::path file = predictions_dir / "summary.json";
  if (!fs::exists(file)) return out;
  const Json j = read_json(file);
  for (const auto& c : j.value("metric_per_case", Json::array())) {
    std::string id = c.value("case_id", "");
    if (id.empty()) id = image_stem(fs::path(c.value("reference_file", "")));
    std::map<std::string, std::pair<double, int>> sums;
    const Json labels = c.value("metrics", Json::object());
    for (const auto& [label, metrics] : labels.items())
      for (const auto& [metric, v] : metrics.items())
        if (v.is_number()) sums[metric].first += v.get<double>(), sums[metric].second += 1;
    for (const auto& [metric, s] : sums) out[id][metric] = s.first / s.second;
  }
  return out;
}

std::vector<fs::path> training_logs(const fs::path& model_dir) {
  std::vector<fs::path> logs;
  if (!fs::is_directory(model_dir)) return logs;
  for (const auto& e : fs::directory_iterator(model_dir))
    if (e.is_directory() && e.path().filename().string().rfind("fold_", 0) == 0 && fs::exists(e.path() / "log.jsonl"))
      logs.push_back(e.path() / "log.jsonl");
  std::sort(logs.begin(), logs.end());
  return logs;
}

ExperimentFolder read_experiment_folder(const fs::path& dir, const std::optional<fs::path>& ref) {
  TF_CHECK(fs::is_directory(dir), IoError, "report: folder '", dir.string(), "' does not exist");
  const fs::path root = fs::canonical(dir);
  if (ref) return open_predictions(root, fs::absolute(*ref));
  if (fs::exists(root / "config.json")) return open_model(root);
  if (fs::exists(root / "results.csv") || fs::exists(root / "results.json") || fs::is_directory(root / "models") ||
      !find_seeds(root).front().empty())
    return open_experiment(root);
  TF_THROW(IoError, "report: '", dir.string(),
           "' is not an experiment folder (results.csv, models/), a model folder (config.json) or, with --ref LABELS, a "
           "predictions folder");
}

}  // namespace teachformer::report
