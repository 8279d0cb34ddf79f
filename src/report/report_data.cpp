#include "teachformer/report/report_data.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/distill/strategy.hpp"
#include "teachformer/models/model_folder.hpp"
#include "teachformer/models/model_info.hpp"

namespace teachformer::report {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct ColumnInfo {
  const char* key;
  const char* label;
  int digits;
  bool optional;  // shown only when some row is non-zero
};
const std::vector<ColumnInfo>& known_columns() {
  static const std::vector<ColumnInfo> cols{
      {"model", "model", -1, false},          {"role", "role", -1, false},
      {"terms", "learns from", -1, false},    {"seeds", "seeds", -1, false},
      {"val_dice", "val Dice", 3, false},
      {"parameters", "parameters", 0, false}, {"gflops", "GFLOPs @patch", 2, false},
      {"seconds_per_case", "CPU s/case", 2, false}, {"peak_rss_mib", "peak RSS MiB", 0, false},
      {"train_seconds", "train s", 0, false}, {"dice", "Dice (mean)", 3, false},
      {"hd95", "HD95 mm (median)", 2, false}, {"hd95_undefined", "HD95 undefined", 0, true},
      {"auroc", "AUROC", 3, true},            {"ap", "AP", 3, true},
      {"picai_score", "PI-CAI score", 3, true},
  };
  return cols;
}

Json column(const std::string& key, const std::string& label, int digits, const std::string& source) {
  return {{"key", key}, {"label", label}, {"digits", digits}, {"source", source}};
}

std::string number_text(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : "inf";
  std::ostringstream os;
  os << v;
  return os.str();
}

Json number_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(); }

// A curve point's value with 5 significant digits: the page's JSON stays small (a plot shows no more).
double rounded(double v) {
  if (!std::isfinite(v) || v == 0) return v;
  const double scale = std::pow(10.0, 4 - std::floor(std::log10(std::abs(v))));
  return std::round(v * scale) / scale;
}

// results.json row of a model, or null.
Json result_row(const ExperimentFolder& f, const std::string& name) {
  if (!f.result_rows.is_array()) return Json();
  for (const auto& r : f.result_rows)
    if (r.value("name", "") == name) return r;
  return Json();
}

double json_number(const Json& j, const std::string& key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

// One line per JSON record of a log; malformed lines (a run killed mid-write) are skipped.
std::vector<Json> read_jsonl(const fs::path& path) {
  std::vector<Json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Json j = Json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) lines.push_back(std::move(j));
  }
  return lines;
}

Json last_validation(const fs::path& model_dir) {
  Json last;
  for (const auto& log : training_logs(model_dir))
    for (const auto& j : read_jsonl(log))
      if (j.value("type", "") == "validation") last = j;
  return last;
}

Json experiment_table(const ExperimentFolder& f) {
  Json out{{"columns", Json::array()}, {"rows", Json::array()}};
  const auto& h = f.csv_header;
  std::map<std::string, int> digits;
  std::map<std::string, std::string> labels;
  std::set<std::string> optional;
  for (const auto& c : known_columns()) {
    digits[c.key] = c.digits;
    labels[c.key] = c.label;
    if (c.optional) optional.insert(c.key);
  }
  std::vector<size_t> shown;
  // Shown inside other cells: the seeds' sd beside the mean Dice, the paired comparison in its own column.
  const std::set<std::string> folded = {"dice_sd", "vs_alone_diff", "vs_alone_ci_low", "vs_alone_ci_high",
                                        "vs_alone_wilcoxon_p", "vs_alone_cases"};
  for (size_t i = 0; i < h.size(); ++i) {
    if (folded.count(h[i])) continue;
    if (optional.count(h[i])) {
      bool any = false;
      for (const auto& row : f.csv_rows) any = any || (!row[i].empty() && std::strtod(row[i].c_str(), nullptr) != 0.0);
      if (!any) continue;
    }
    shown.push_back(i);
    out["columns"].push_back(column(h[i], labels.count(h[i]) ? labels[h[i]] : h[i], digits.count(h[i]) ? digits[h[i]] : 3, "csv"));
  }
  const bool paired = f.result_rows.is_array() &&
                      std::any_of(f.result_rows.begin(), f.result_rows.end(), [](const Json& r) { return r.contains("vs_student_alone"); });
  if (paired) out["columns"].push_back(column("vs_student_alone", "ΔDice vs student alone [95% CI], p", 3, "extra"));
  const size_t model_col = size_t(std::find(h.begin(), h.end(), "model") - h.begin());
  const size_t role_col = size_t(std::find(h.begin(), h.end(), "role") - h.begin());
  for (const auto& row : f.csv_rows) {
    const std::string name = model_col < row.size() ? row[model_col] : "";
    const Json rr = result_row(f, name);
    Json r{{"model", name}, {"role", role_col < row.size() ? row[role_col] : ""}, {"cells", Json::object()}};
    for (size_t i : shown) {
      Json cell{{"value", row[i]}, {"spread", nullptr}};
      if (h[i] == "dice" && std::isfinite(json_number(rr, "dice_sd"))) cell["spread"] = number_text(json_number(rr, "dice_sd"));
      r["cells"][h[i]] = cell;
    }
    if (paired) {
      const Json v = rr.is_object() ? rr.value("vs_student_alone", Json()) : Json();
      Json cell{{"value", nullptr}, {"spread", nullptr}};
      if (v.is_object()) cell = {{"value", number_text(json_number(v, "diff"))},
                                 {"ci_low", number_or_null(json_number(v, "ci_low"))},
                                 {"ci_high", number_or_null(json_number(v, "ci_high"))},
                                 {"p", number_or_null(json_number(v, "wilcoxon_p"))}};
      r["cells"]["vs_student_alone"] = cell;
    }
    out["rows"].push_back(r);
  }
  if (!f.experiment.empty()) out["seeds"] = f.experiment.value("seeds", Json::array());
  return out;
}

Json model_folder_table(const ExperimentFolder& f) {
  Json out{{"columns", Json::array({column("model", "model", -1, "model"), column("role", "role", -1, "model"),
                                    column("key", "architecture", -1, "model"), column("parameters", "parameters", 0, "model"),
                                    column("gflops", "GFLOPs @patch", 2, "model"),
                                    column("best_dice", "best validation Dice", 3, "model")})},
           {"rows", Json::array()}};
  for (const auto& m : f.models) {
    const auto folder = models::open_model_folder(m.model_dirs.front());
    Json cells{{"model", {{"value", m.name}}}, {"role", {{"value", m.role}}}, {"key", {{"value", folder.model}}}};
    if (!folder.folds.empty()) {
      const int fold = std::count(folder.folds.begin(), folder.folds.end(), f.fold) ? f.fold : folder.folds.front();
      auto model = folder.load(fold);
      const auto& ps = folder.patch_size;
      const auto info = models::describe_model(*model, {1, int64_t(folder.channels.size()), ps[0], ps[1], ps[2]});
      cells["parameters"] = {{"value", std::to_string(info.parameters)}};
      cells["gflops"] = {{"value", number_text(info.gflops)}};
    }
    double best = -1;
    for (const auto& log : training_logs(m.model_dirs.front()))
      for (const auto& j : read_jsonl(log))
        if (j.value("type", "") == "end") best = std::max(best, j.value("best_dice", -1.0));
    if (best >= 0) cells["best_dice"] = {{"value", number_text(best)}};
    out["rows"].push_back({{"model", m.name}, {"role", m.role}, {"cells", cells}});
  }
  return out;
}

Json predictions_table(const ExperimentFolder& f, const Json& per_case) {
  Json out{{"columns", Json::array({column("model", "predictions", -1, "model"), column("cases", "cases", 0, "model"),
                                    column("dice", "Dice (mean)", 3, "model"), column("hd95", "HD95 mm (median)", 2, "model")})},
           {"rows", Json::array()}};
  std::vector<double> dice, hd95;
  for (const auto& r : per_case) {
    if (r["dice"].is_number()) dice.push_back(r["dice"].get<double>());
    if (r["hd95"].is_number()) hd95.push_back(r["hd95"].get<double>());
  }
  double mean = 0;
  for (double d : dice) mean += d / double(dice.size());
  std::sort(hd95.begin(), hd95.end());
  const double median = hd95.empty() ? NAN : (hd95[(hd95.size() - 1) / 2] + hd95[hd95.size() / 2]) / 2;
  const auto& m = f.models.front();
  out["rows"].push_back({{"model", m.name}, {"role", m.role},
                         {"cells", {{"model", {{"value", m.name}}}, {"cases", {{"value", std::to_string(f.cases.size())}}},
                                    {"dice", {{"value", dice.empty() ? "nan" : number_text(mean)}}},
                                    {"hd95", {{"value", number_text(median)}}}}}});
  return out;
}

// Steps per epoch and epochs of a model folder's training run.
std::pair<int64_t, int64_t> run_length(const fs::path& model_dir) {
  const Json c = fs::exists(model_dir / "config.json") ? read_json(model_dir / "config.json") : Json::object();
  const Json t = c.value("trainer", Json::object());
  return {std::max<int64_t>(1, t.value("steps_per_epoch", int64_t(1))), std::max<int64_t>(1, t.value("epochs", int64_t(1)))};
}

}  // namespace

Json table_json(const ExperimentFolder& f) {
  switch (f.kind) {
    case SourceKind::Experiment:
      TF_CHECK(!f.csv_header.empty(), IoError, "report: '", f.root.string(),
               "' has no results.csv (the experiment has not finished; re-run `teachformer experiment -o ",
               f.root.string(), "` to resume it)");
      return experiment_table(f);
    case SourceKind::ModelFolder: return model_folder_table(f);
    case SourceKind::Predictions: return predictions_table(f, per_case_json(f));
  }
  return Json();
}

Json cost_json(const ExperimentFolder& f) {
  Json out = Json::array();
  if (f.kind != SourceKind::Experiment) return out;
  const auto& h = f.csv_header;
  auto col = [&](const std::string& k) { return size_t(std::find(h.begin(), h.end(), k) - h.begin()); };
  for (const auto& row : f.csv_rows) {
    auto num = [&](const std::string& k) {
      const size_t i = col(k);
      return i < row.size() && !row[i].empty() ? std::strtod(row[i].c_str(), nullptr) : NAN;
    };
    const std::string name = row[col("model")];
    out.push_back({{"model", name}, {"role", col("role") < row.size() ? row[col("role")] : ""},
                   {"parameters", number_or_null(num("parameters"))}, {"gflops", number_or_null(num("gflops"))},
                   {"seconds_per_case", number_or_null(num("seconds_per_case"))}, {"dice", number_or_null(num("dice"))},
                   {"dice_sd", number_or_null(json_number(result_row(f, name), "dice_sd"))}});
  }
  return out;
}

Json per_case_json(const ExperimentFolder& f) {
  Json out = Json::array();
  for (const auto& m : f.models)
    for (size_t s = 0; s < f.seeds.size() && s < m.prediction_dirs.size(); ++s) {
      if (f.kind == SourceKind::ModelFolder) {
        const Json v = last_validation(m.model_dirs[s]);
        const Json cases = v.is_object() ? v.value("per_case", Json::object()) : Json::object();
        for (const auto& [id, d] : cases.items())
            out.push_back({{"model", m.name}, {"role", m.role}, {"case", id}, {"seed", f.seeds[s]}, {"dice", d}, {"hd95", nullptr}});
        continue;
      }
      for (const auto& [id, metrics] : per_case_metrics(m.prediction_dirs[s])) {
        auto get = [&](const char* a, const char* b) {
          const auto it = metrics.count(a) ? metrics.find(a) : metrics.find(b);
          return it == metrics.end() ? Json() : number_or_null(it->second);
        };
        out.push_back({{"model", m.name}, {"role", m.role}, {"case", id}, {"seed", f.seeds[s]},
                       {"dice", get("Dice", "DSC")}, {"hd95", get("HD95", "HD95")}});
      }
    }
  return out;
}

PairedSummary paired_summary(const std::vector<double>& d, int resamples, uint64_t seed) {
  PairedSummary s;
  s.n = int64_t(d.size());
  if (d.empty()) return s;
  for (double v : d) s.mean += v / double(d.size());
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, d.size() - 1);
  std::vector<double> means(size_t(std::max(1, resamples)));
  for (auto& m : means) {
    double sum = 0;
    for (size_t i = 0; i < d.size(); ++i) sum += d[pick(rng)];
    m = sum / double(d.size());
  }
  std::sort(means.begin(), means.end());
  auto q = [&](double p) { return means[std::min(means.size() - 1, size_t(std::floor(p * double(means.size() - 1) + 0.5)))]; };
  s.ci_low = q(0.025);
  s.ci_high = q(0.975);
  return s;
}

Json paired_json(const ExperimentFolder& f, const Json& per_case, const std::string& reference) {
  std::map<std::pair<std::string, std::string>, double> ref;  // (case, seed) -> Dice
  for (const auto& r : per_case)
    if (r["model"] == reference && r["dice"].is_number())
      ref[{r["case"].get<std::string>(), r["seed"].get<std::string>()}] = r["dice"].get<double>();
  if (ref.empty()) return Json();
  Json out{{"reference", reference}, {"rows", Json::array()}, {"summary", Json::array()}};
  std::map<std::string, std::vector<double>> diffs;
  std::vector<std::string> order;
  for (const auto& r : per_case) {
    const std::string model = r["model"];
    if (r["role"] != "student" || model == reference || !r["dice"].is_number()) continue;
    const auto it = ref.find({r["case"].get<std::string>(), r["seed"].get<std::string>()});
    if (it == ref.end()) continue;
    const double d = r["dice"].get<double>() - it->second;
    if (!diffs.count(model)) order.push_back(model);
    diffs[model].push_back(d);
    out["rows"].push_back({{"model", model}, {"case", r["case"]}, {"seed", r["seed"]}, {"diff", d}});
  }
  for (const auto& model : order) {
    const auto s = paired_summary(diffs[model]);
    const Json v = result_row(f, model).is_object() ? result_row(f, model).value("vs_student_alone", Json()) : Json();
    out["summary"].push_back({{"model", model}, {"mean", s.mean}, {"ci_low", s.ci_low}, {"ci_high", s.ci_high}, {"n", s.n},
                              {"wilcoxon_p", number_or_null(json_number(v, "wilcoxon_p"))}});
  }
  return out;
}

Json curves_json(const ExperimentFolder& f, int max_points) {
  Json points = Json::array(), stages = Json::array();
  for (const auto& m : f.models)
    for (size_t s = 0; s < f.seeds.size() && s < m.model_dirs.size(); ++s) {
      const fs::path dir = m.model_dirs[s];
      const auto [spe, epochs] = run_length(dir);
      std::map<int64_t, Json> steps;  // the last record of each step (a resumed run repeats steps)
      std::map<int64_t, double> validation;
      for (const auto& log : training_logs(dir))
        for (auto& j : read_jsonl(log)) {
          const std::string type = j.value("type", "");
          if (type == "step") {
            const int64_t step = j.value("step", int64_t(0));
            steps[step] = std::move(j);
          }
          if (type == "validation") validation[j.value("epoch", int64_t(0))] = j.value("mean_dice", kNaN);
        }
      if (steps.empty() && validation.empty()) continue;
      // series -> (x, y) per bin of steps
      const int64_t bin = std::max<int64_t>(1, int64_t((steps.size() + size_t(max_points) - 1) / size_t(std::max(1, max_points))));
      std::map<std::pair<std::string, std::string>, std::map<int64_t, std::pair<double, int>>> acc;
      std::set<std::pair<std::string, std::string>> nonzero;
      int64_t index = 0;
      for (const auto& [step, j] : steps) {
        const int64_t b = index++ / bin;
        auto add = [&](const std::string& panel, const std::string& series, double v) {
          if (!std::isfinite(v)) return;
          auto& cell = acc[{panel, series}][b];
          cell.first += v;
          cell.second += 1;
          if (v != 0) nonzero.insert({panel, series});
        };
        const Json losses = j.value("loss", Json::object());
        for (const auto& [name, v] : losses.items()) {
          if (!v.is_number()) continue;
          if (name.rfind("weight.", 0) == 0) add("weight", name.substr(7), v.get<double>());
          else if (name.find('.') == std::string::npos) add("loss", name, v.get<double>());
        }
        add("learning rate", "lr", j.value("lr", kNaN));
      }
      // x of a bin: the epoch position of its last step.
      std::vector<int64_t> step_ids;
      for (const auto& [step, j] : steps) step_ids.push_back(step);
      for (const auto& [key, bins] : acc) {
        if (!nonzero.count(key) && key.first != "learning rate") continue;
        for (const auto& [b, sum] : bins) {
          const int64_t last = step_ids[std::min(step_ids.size() - 1, size_t((b + 1) * bin - 1))];
          points.push_back({{"model", m.name}, {"seed", f.seeds[s]}, {"panel", key.first}, {"series", key.second},
                            {"x", rounded(double(last + 1) / double(spe))}, {"y", rounded(sum.first / sum.second)}});
        }
      }
      for (const auto& [epoch, d] : validation)
        if (std::isfinite(d))
          points.push_back({{"model", m.name}, {"seed", f.seeds[s]}, {"panel", "validation Dice"}, {"series", "mean Dice"},
                            {"x", double(epoch + 1)}, {"y", d}});
      // The strategy's stages (distilled students).
      const Json c = fs::exists(dir / "config.json") ? read_json(dir / "config.json") : Json::object();
      if (c.contains("distill") && c["distill"].contains("strategy")) {
        const auto strategy = distill::strategy_from_json(c["distill"]["strategy"]);
        const auto bounds = strategy.boundaries(epochs);
        for (size_t i = 0; i + 1 < bounds.size() && i < strategy.stages.size(); ++i)
          if (bounds[i + 1] > bounds[i])
            stages.push_back({{"model", m.name}, {"seed", f.seeds[s]}, {"stage", strategy.stages[i].name},
                              {"x0", double(bounds[i])}, {"x1", double(bounds[i + 1])}});
      }
    }
  return {{"points", points}, {"stages", stages}};
}

}  // namespace teachformer::report
