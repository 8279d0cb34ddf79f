#include "pipeline/detail/experiment_table.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>

#include "teachformer/core/progress.hpp"
#include "teachformer/core/strings.hpp"
#include "teachformer/metrics/statistics.hpp"

namespace teachformer::pipeline::detail {
namespace {

using Json = nlohmann::json;

Json num(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

double median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Seeds as text: "3, 5", "0,1,2", "0 1 2".
std::string seed_list(const std::vector<uint64_t>& seeds, const char* separator) {
  std::string out;
  for (size_t i = 0; i < seeds.size(); ++i) out += (i ? separator : "") + std::to_string(seeds[i]);
  return out;
}

double mean_of(const std::map<std::string, double>& m) {
  double s = 0;
  for (const auto& [_, v] : m) s += v;
  return m.empty() ? NAN : s / double(m.size());
}

// Paired per-case Dice of `name` and the lone student, pooled over the seeds where both ran.
std::optional<metrics::PairedComparison> versus_alone(const TableInput& in, const std::string& name) {
  std::vector<double> a, b;
  for (const auto& t : in.seeds_tables) {
    const ModelSeedResult *m = nullptr, *alone = nullptr;
    for (const auto& r : t.models) {
      if (r.name == name) m = &r;
      if (r.name == "student:student_alone") alone = &r;
    }
    if (!m || !alone) continue;
    for (const auto& [id, d] : m->case_dice) {
      auto it = alone->case_dice.find(id);
      if (it == alone->case_dice.end()) continue;
      a.push_back(d);
      b.push_back(it->second);
    }
  }
  if (a.empty()) return std::nullopt;
  return metrics::compare_paired(a, b, 0.95, 10000, 0);
}

// The row's notes over its seeds: a note that holds for only some of them names those seeds (a teacher dropped on
// seeds 3 and 5 but kept on seed 4; a student's teacher weights, which differ per seed).
std::string join_notes(const std::vector<std::pair<std::string, std::vector<uint64_t>>>& notes, size_t row_seeds) {
  std::string out;
  for (const auto& [note, seeds] : notes) {
    out += (out.empty() ? "" : "; ") + note;
    if (seeds.size() == row_seeds) continue;
    out += (seeds.size() == 1 ? " (seed " : " (seeds ") + seed_list(seeds, ", ") + ")";
  }
  return out;
}

}  // namespace

std::string table_heading(const TableInput& in, double seconds) {
  std::ostringstream os;
  os << "# TeachFormer experiment (" << in.preset << ", " << in.source << ")\n\n";
  os << "Scored on " << in.scored_cases.size() << " held-out cases: " << in.held_out_source
     << "; they took part in no training, no checkpoint choice and no teacher choice. Protocol: ";
  if (in.protocol == "hecktor2021") os << "HECKTOR 2021 (inside the bbox; DSC, HD95 with surface distances)";
  else if (in.protocol == "picai") os << "PI-CAI (detection AUROC, AP and score) plus lesion Dice";
  else os << "generic (Dice, HD95)";
  os << ". Seeds: ";
  os << seed_list(in.seeds, ",");
  os << (in.vary_data ? " (data drawn again per seed)" : " (the same data for every seed)");
  os << "; wall time " << format_duration(seconds) << ".\n\n";
  os << "Dice is the mean over held-out cases, then mean ± sd over seeds; a case's Dice follows nnU-Net (a case "
        "with neither a reference nor a predicted foreground voxel has none and is left out, foreground predicted "
        "where the reference has none counts 0). `vs alone`: the paired per-case Dice difference against the same "
        "student trained alone over the cases where both have one, pooled over seeds, with its 95% bootstrap "
        "confidence interval and the Wilcoxon signed-rank p. `val Dice`: the best validation Dice of training (what "
        "chose the checkpoint and the teachers).\n\n";
  return os.str();
}

// Long on purpose: the rows, then the markdown, CSV and JSON views of the same rows, kept together so that the three
// formats cannot drift apart.
ExperimentResult build_table(const TableInput& in) {
  ExperimentResult out;
  const bool picai = in.protocol == "picai";
  // Row order: the first seed's model order.
  std::vector<std::string> names;
  for (const auto& t : in.seeds_tables)
    for (const auto& m : t.models)
      if (std::find(names.begin(), names.end(), m.name) == names.end()) names.push_back(m.name);
  for (const auto& name : names) {
    ExperimentRow row;
    row.name = name;
    std::vector<double> dice, hd95, auroc, ap, val, train_s, spc, rss;
    std::vector<std::pair<std::string, std::vector<uint64_t>>> notes;  // each distinct note and the seeds it holds for
    for (const auto& t : in.seeds_tables)
      for (const auto& m : t.models) {
        if (m.name != name) continue;
        row.role = m.role;
        row.terms = m.terms;
        if (!m.note.empty()) {
          auto it = std::find_if(notes.begin(), notes.end(), [&](const auto& n) { return n.first == m.note; });
          if (it == notes.end()) it = notes.insert(notes.end(), {m.note, {}});
          it->second.push_back(t.seed);
        }
        row.model = m.stage.value("model", "");
        row.parameters = m.stage.value("parameters", int64_t(0));
        row.gflops = m.stage.value("gflops", 0.0);
        row.seeds.push_back(t.seed);
        const double d = mean_of(m.case_dice);
        dice.push_back(d);
        hd95.insert(hd95.end(), m.hd95.begin(), m.hd95.end());
        auroc.push_back(m.auroc);
        ap.push_back(m.ap);
        val.push_back(m.stage.value("val_dice", NAN));
        train_s.push_back(m.stage.value("seconds", NAN));
        spc.push_back(m.seconds_per_case);
        rss.push_back(m.peak_rss_mib);
        Json seed = {{"seed", t.seed}, {"dice", num(d)}, {"hd95", num(median(m.hd95))}, {"val_dice", num(val.back())},
                     {"cases", m.case_dice}};
        if (!m.note.empty()) seed["note"] = m.note;
        if (picai) seed["auroc"] = num(m.auroc), seed["ap"] = num(m.ap);
        row.per_seed.push_back(seed);
      }
    row.note = join_notes(notes, row.seeds.size());
    const auto d = metrics::mean_sd(dice);
    row.dice = d.mean;
    row.dice_sd = d.sd;
    row.hd95 = median(hd95);
    for (double h : hd95)
      if (!std::isfinite(h)) ++row.hd95_undefined;
    row.auroc = metrics::mean_sd(auroc).mean;
    row.ap = metrics::mean_sd(ap).mean;
    row.picai_score = (row.auroc + row.ap) / 2;
    row.val_dice = metrics::mean_sd(val).mean;
    row.train_seconds = metrics::mean_sd(train_s).mean;
    row.seconds_per_case = metrics::mean_sd(spc).mean;
    row.peak_rss_mib = metrics::mean_sd(rss).mean;
    if (row.role == "student" && name != "student:student_alone") row.vs_student_alone = versus_alone(in, name);
    out.rows.push_back(row);
  }

  // Markdown.
  std::ostringstream md, csv;
  md << "| model | role | learns from | parameters | GFLOPs @patch | CPU s/case | peak RSS MiB | train s | val Dice | "
     << (picai ? "AUROC | AP | PI-CAI score | " : "") << "Dice (mean ± sd) | HD95 mm (median) | vs alone: ΔDice [95% CI], p |\n";
  md << "|---|---|---|---:|---:|---:|---:|---:|---:|" << (picai ? "---:|---:|---:|" : "") << "---:|---:|---|\n";
  for (const auto& r : out.rows) {
    std::string vs = "";
    if (r.vs_student_alone) {
      const auto& c = *r.vs_student_alone;
      vs = (c.mean_difference >= 0 ? "+" : "") + format_fixed(c.mean_difference, 3) + " [" + format_fixed(c.ci_low, 3) +
           ", " + format_fixed(c.ci_high, 3) + "], p " + format_fixed(c.wilcoxon_p, 3);
    }
    std::string learns = r.role == "teacher" ? "labels" : r.terms;
    if (!r.note.empty()) learns += " (" + r.note + ")";
    md << "| " << r.name << " | " << r.role << " | " << learns << " | " << r.parameters << " | " << format_fixed(r.gflops, 2)
       << " | " << format_fixed(r.seconds_per_case, 2) << " | " << format_fixed(r.peak_rss_mib, 0) << " | "
       << format_fixed(r.train_seconds, 0) << " | " << format_fixed(r.val_dice, 3) << " | ";
    if (picai) md << format_fixed(r.auroc, 3) << " | " << format_fixed(r.ap, 3) << " | " << format_fixed(r.picai_score, 3) << " | ";
    md << format_fixed(r.dice, 3) << (r.seeds.size() > 1 ? " ± " + format_fixed(r.dice_sd, 3) : "") << " | "
       << format_fixed(r.hd95, 2) << (r.hd95_undefined ? " (" + std::to_string(r.hd95_undefined) + " undefined)" : "")
       << " | " << vs << " |\n";
  }
  out.markdown = md.str();

  // CSV: one line per model (means over seeds), fixed columns.
  csv << "model,role,terms,seeds,parameters,gflops,seconds_per_case,peak_rss_mib,train_seconds,val_dice,dice,dice_sd,"
         "hd95,hd95_undefined,auroc,ap,picai_score,vs_alone_diff,vs_alone_ci_low,vs_alone_ci_high,vs_alone_wilcoxon_p,"
         "vs_alone_cases\n";
  // A value that is not defined (AUROC outside PI-CAI, a difference without the lone student) is an empty cell.
  const auto c = [](double v) {
    std::ostringstream os;
    if (std::isfinite(v)) os << v;
    return os.str();
  };
  for (const auto& r : out.rows) {
    csv << r.name << ',' << r.role << ",\"" << r.terms << "\"," << seed_list(r.seeds, " ") << ',' << r.parameters
        << ',' << c(r.gflops) << ',' << c(r.seconds_per_case) << ',' << c(r.peak_rss_mib) << ',' << c(r.train_seconds)
        << ',' << c(r.val_dice) << ',' << c(r.dice) << ',' << c(r.dice_sd) << ',' << c(r.hd95) << ','
        << r.hd95_undefined << ',' << c(r.auroc) << ',' << c(r.ap) << ',' << c(r.picai_score) << ',';
    if (r.vs_student_alone) {
      const auto& v = *r.vs_student_alone;
      csv << c(v.mean_difference) << ',' << c(v.ci_low) << ',' << c(v.ci_high) << ',' << c(v.wilcoxon_p) << ',' << v.n;
    } else {
      csv << ",,,,";
    }
    csv << '\n';
  }
  out.csv = csv.str();

  // JSON for scripts.
  Json rows = Json::array();
  for (const auto& r : out.rows) {
    Json j = {{"name", r.name},
              {"role", r.role},
              {"model", r.model},
              {"terms", r.terms},
              {"note", r.note},
              {"seeds", r.seeds},
              {"parameters", r.parameters},
              {"gflops", num(r.gflops)},
              {"seconds_per_case", num(r.seconds_per_case)},
              {"peak_rss_mib", num(r.peak_rss_mib)},
              {"train_seconds", num(r.train_seconds)},
              {"val_dice", num(r.val_dice)},
              {"dice_mean", num(r.dice)},
              {"dice_sd", num(r.dice_sd)},
              {"hd95_median", num(r.hd95)},
              {"hd95_undefined", r.hd95_undefined},
              {"per_seed", r.per_seed}};
    if (picai) j["auroc"] = num(r.auroc), j["ap"] = num(r.ap), j["picai_score"] = num(r.picai_score);
    if (r.vs_student_alone) {
      const auto& c = *r.vs_student_alone;
      j["vs_student_alone"] = {{"diff", num(c.mean_difference)}, {"ci_low", num(c.ci_low)}, {"ci_high", num(c.ci_high)},
                               {"wilcoxon_p", num(c.wilcoxon_p)}, {"cases", c.n}};
    }
    rows.push_back(j);
  }
  out.json = {{"experiment",
               {{"preset", in.preset},
                {"data", in.source},
                {"protocol", in.protocol},
                {"seeds", in.seeds},
                {"vary_data", in.vary_data},
                {"scored_cases", in.scored_cases},
                {"scored_on", in.held_out_source}}},
              {"rows", rows}};
  return out;
}

}  // namespace teachformer::pipeline::detail
