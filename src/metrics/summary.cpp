#include "teachformer/metrics/summary.hpp"

#include "teachformer/core/strings.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <sstream>

namespace teachformer::metrics {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Json num(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

double median_of(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  if (n % 2) return v[n / 2];
  const double a = v[n / 2 - 1], b = v[n / 2];
  if (std::isinf(a) || std::isinf(b)) return a == b ? a : (std::isinf(b) ? b : a);
  return 0.5 * (a + b);
}

std::string format_value(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// Right-aligned in `width` columns.
std::string fixed(double v, int width, int precision = 4) {
  const std::string s = format_fixed(v, precision, "nan");
  return std::string(s.size() < size_t(width) ? size_t(width) - s.size() : 0, ' ') + s;
}

}  // namespace

MetricStats compute_stats(const std::vector<double>& values) {
  MetricStats s;
  s.n = static_cast<int64_t>(values.size());
  std::vector<double> finite, ordered;
  for (double v : values) {
    if (std::isnan(v)) {
      ++s.n_nan;
      continue;
    }
    ordered.push_back(v);
    if (std::isinf(v)) ++s.n_inf;
    else finite.push_back(v);
  }
  s.n_finite = static_cast<int64_t>(finite.size());
  s.mean = s.median = s.std = kNaN;
  if (!finite.empty()) {
    double sum = 0;
    for (double v : finite) sum += v;
    s.mean = sum / double(finite.size());
    s.median = median_of(finite);
    if (finite.size() >= 2) {
      double ss = 0;
      for (double v : finite) ss += (v - s.mean) * (v - s.mean);
      s.std = std::sqrt(ss / double(finite.size() - 1));
    }
  }
  s.median_with_inf = median_of(ordered);
  return s;
}

Json to_json(const MetricStats& s) {
  return Json{{"mean", num(s.mean)},     {"median", num(s.median)},
              {"std", num(s.std)},       {"median_with_inf", num(s.median_with_inf)},
              {"n", s.n},                {"n_finite", s.n_finite},
              {"n_nan", s.n_nan},        {"n_inf", s.n_inf}};
}

double case_dice(const CaseEvaluation& c) {
  double sum = 0;
  int n = 0;
  for (const auto& [label, values] : c.metrics) {
    const auto st = c.status.find(label);
    const EmptyCase empty = st == c.status.end() ? EmptyCase::None : st->second;
    if (empty == EmptyCase::BothEmpty && !c.missing) continue;
    double dice = NAN;
    for (const auto& [metric, v] : values)
      if (metric == "Dice" || metric == "DSC") dice = v;
    if (empty != EmptyCase::None || c.missing || !std::isfinite(dice)) dice = 0.0;
    sum += dice;
    ++n;
  }
  return n ? sum / n : NAN;
}

MetricRow generic_row(const BinaryMetrics& m, bool surface) {
  MetricRow r{{"Dice", m.dice}, {"IoU", m.iou}, {"Precision", m.precision}, {"Recall", m.recall}};
  if (surface) {
    r.insert(r.end(), {{"HD95", m.hd95}, {"HD", m.hd}, {"ASSD", m.assd}, {"MASD", m.masd}, {"NSD", m.nsd}});
  }
  r.insert(r.end(), {{"TP", double(m.counts.tp)},
                     {"FP", double(m.counts.fp)},
                     {"FN", double(m.counts.fn)},
                     {"TN", double(m.counts.tn)},
                     {"n_pred", double(m.counts.n_pred())},
                     {"n_ref", double(m.counts.n_ref())},
                     {"volume_pred_mm3", m.volume_pred_mm3},
                     {"volume_ref_mm3", m.volume_ref_mm3}});
  return r;
}

EmptyCounts count_empty(const std::vector<CaseEvaluation>& cases, int label) {
  EmptyCounts c;
  for (const auto& e : cases) {
    if (!e.metrics.count(label)) continue;
    ++c.cases;
    c.missing += e.missing;
    const auto it = e.status.find(label);
    if (it == e.status.end()) continue;
    c.pred_empty += it->second == EmptyCase::PredictionEmpty;
    c.ref_empty += it->second == EmptyCase::ReferenceEmpty;
    c.both_empty += it->second == EmptyCase::BothEmpty;
  }
  return c;
}

std::vector<double> metric_values(const std::vector<CaseEvaluation>& cases, int label, const std::string& name) {
  std::vector<double> out;
  for (const auto& e : cases) {
    const auto it = e.metrics.find(label);
    if (it == e.metrics.end()) continue;
    for (const auto& [k, v] : it->second)
      if (k == name) out.push_back(v);
  }
  return out;
}

namespace {
/// Metric names of a label in first-seen order.
std::vector<std::string> names_of(const std::vector<CaseEvaluation>& cases, const std::vector<int>& labels) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const auto& e : cases)
    for (int l : labels) {
      const auto it = e.metrics.find(l);
      if (it == e.metrics.end()) continue;
      for (const auto& kv : it->second)
        if (seen.insert(kv.first).second) names.push_back(kv.first);
    }
  return names;
}
}  // namespace

Json summary_json(const std::vector<CaseEvaluation>& cases, const std::vector<int>& labels) {
  Json per_case = Json::array();
  for (const auto& e : cases) {
    Json metrics = Json::object(), status = Json::object();
    for (const auto& [label, row] : e.metrics) {
      Json m = Json::object();
      for (const auto& [k, v] : row) m[k] = num(v);
      metrics[std::to_string(label)] = m;
    }
    for (const auto& [label, s] : e.status) status[std::to_string(label)] = to_string(s);
    per_case.push_back({{"case_id", e.case_id},
                        {"reference_file", e.reference_file.string()},
                        {"prediction_file", e.missing ? Json(nullptr) : Json(e.prediction_file.string())},
                        {"missing", e.missing},
                        {"metrics", metrics},
                        {"status", status}});
  }
  const auto names = names_of(cases, labels);
  Json mean = Json::object(), stats = Json::object(), empty = Json::object(), fg = Json::object();
  std::map<std::string, std::vector<double>> label_means;
  for (int l : labels) {
    const std::string key = std::to_string(l);
    Json m = Json::object(), st = Json::object();
    for (const auto& name : names) {
      const auto values = metric_values(cases, l, name);
      if (values.empty()) continue;
      const MetricStats s = compute_stats(values);
      m[name] = num(s.mean);
      st[name] = to_json(s);
      label_means[name].push_back(s.mean);
    }
    mean[key] = m;
    stats[key] = st;
    const EmptyCounts c = count_empty(cases, l);
    empty[key] = {{"cases", c.cases},
                  {"missing", c.missing},
                  {"pred_empty", c.pred_empty},
                  {"ref_empty", c.ref_empty},
                  {"both_empty", c.both_empty}};
  }
  for (const auto& [name, means] : label_means) fg[name] = num(compute_stats(means).mean);
  return Json{{"metric_per_case", per_case},
              {"mean", mean},
              {"foreground_mean", fg},
              {"statistics", stats},
              {"empty_cases", empty}};
}

std::string cases_csv(const std::vector<CaseEvaluation>& cases, const std::vector<int>& labels) {
  const auto names = names_of(cases, labels);
  std::ostringstream os;
  os << "case_id,label,status,missing,reference_file,prediction_file";
  for (const auto& n : names) os << ',' << csv_field(n);
  os << '\n';
  for (const auto& e : cases)
    for (int l : labels) {
      const auto it = e.metrics.find(l);
      if (it == e.metrics.end()) continue;
      const auto st = e.status.find(l);
      os << csv_field(e.case_id) << ',' << l << ',' << (st == e.status.end() ? "" : to_string(st->second)) << ','
         << (e.missing ? 1 : 0) << ',' << csv_field(e.reference_file.string()) << ','
         << csv_field(e.missing ? std::string() : e.prediction_file.string());
      for (const auto& n : names) {
        os << ',';
        for (const auto& [k, v] : it->second)
          if (k == n) {
            os << format_value(v);
            break;
          }
      }
      os << '\n';
    }
  return os.str();
}

std::string summary_table(const std::vector<CaseEvaluation>& cases, const std::vector<int>& labels,
                          const std::vector<std::string>& shown) {
  std::ostringstream os;
  for (int l : labels) {
    const EmptyCounts c = count_empty(cases, l);
    os << "label " << l << ": " << c.cases << " cases (" << c.missing << " missing, " << c.pred_empty
       << " prediction empty, " << c.ref_empty << " reference empty, " << c.both_empty << " both empty)\n";
    char head[160];
    std::snprintf(head, sizeof head, "  %-12s %10s %10s %10s %8s %6s %6s\n", "metric", "mean", "median", "std",
                  "defined", "nan", "inf");
    os << head;
    for (const auto& name : shown) {
      const auto values = metric_values(cases, l, name);
      if (values.empty()) continue;
      const MetricStats s = compute_stats(values);
      char line[200];
      const std::string defined = std::to_string(s.n_finite) + "/" + std::to_string(s.n);
      std::snprintf(line, sizeof line, "  %-12s %s %s %s %8s %6lld %6lld\n", name.c_str(), fixed(s.mean, 10).c_str(),
                    fixed(s.median, 10).c_str(), fixed(s.std, 10).c_str(), defined.c_str(),
                    static_cast<long long>(s.n_nan), static_cast<long long>(s.n_inf));
      os << line;
    }
  }
  return os.str();
}

}  // namespace teachformer::metrics
