// `teachformer report`: one offline HTML page (DIR/report/index.html) that shows an experiment, a model folder or a
// predictions folder: the table, accuracy against cost, per-case metrics, training curves with the strategy's
// stages, a NiiVue viewer per held-out case, and the teachers' and students' attention maps. The C++ side writes the
// data (report data as a script, volumes as base64 NIfTI scripts the page loads with <script>, which file:// allows)
// and fills the page template; the charts (Vega-Lite) and viewers (NiiVue) come from the web assets (web/report/).
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace teachformer::report {

/// Settings of a report.
struct ReportOptions {
  /// Reference labels: makes DIR a predictions folder.
  std::optional<std::filesystem::path> ref;
  /// Output folder; default DIR/report.
  std::optional<std::filesystem::path> output;
  /// Viewers for at most this many held-out cases, worst first (0 = all); the plots always show every case.
  int max_cases = 20;
  /// The case whose attention maps are shown; empty = the distilled student's median case.
  std::string attention_case;
  /// Compute the attention maps (runs every model once on that case).
  bool attention = true;
  /// Also write the plots and one overlay slice per case as PNG files under <output>/png/.
  bool png = false;
  /// Device for the attention maps ("cpu", "cuda", ...).
  std::string device = "cpu";
};

/// What write_report produced.
struct ReportResult {
  /// <output>/index.html.
  std::filesystem::path index;
  /// Total size of the report folder in bytes.
  int64_t bytes = 0;
  /// Held-out cases with a viewer.
  int64_t viewers = 0;
  /// PNG files written (with ReportOptions::png).
  std::vector<std::filesystem::path> pngs;
  /// Wall time in seconds.
  double seconds = 0;
};

/// Writes the report of `dir` (an experiment folder, a model folder, or a predictions folder with options.ref).
/// Throws IoError with the install command when the web assets are missing, and IoError/FormatError naming the file
/// for unreadable inputs. The folder is replaced as a whole only when the new one is complete.
ReportResult write_report(const std::filesystem::path& dir, const ReportOptions& options = {});

/// The experiment's last step: writes the report and returns its index.html, or, when the web assets are not
/// installed, logs one line saying how to get the report and returns nothing.
std::optional<std::filesystem::path> write_experiment_report(const std::filesystem::path& dir);

}  // namespace teachformer::report
