// `teachformer report` end to end: a tiny experiment writes its report, and headless Chromium (driven by
// web/report/tools/check_report.cjs with puppeteer-core) opens it from file:// and checks what a reader would see.
// The screenshots stay under build/report-test/ as artefacts. Without Chromium, Node.js or the npm packages these
// tests fail with the command that installs them.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/report/experiment_folder.hpp"
#include "test_support.hpp"

namespace teachformer::test {
namespace {

namespace fs = std::filesystem;

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

const fs::path kWeb = fs::path(TF_SOURCE_DIR) / "web" / "report";
const char* kInstall = "install the browser test's dependencies with `bash scripts/install_deps.sh`";

// Empty when the browser can run; otherwise what is missing and how to install it.
std::string missing_browser_dependencies() {
  const char* env = std::getenv("TEACHFORMER_CHROMIUM");
  const fs::path chromium = env && *env ? fs::path(env) : fs::path("/usr/bin/chromium");
  if (!fs::exists(chromium)) return "Chromium is missing (" + chromium.string() + "); " + kInstall;
  if (run_command("node --version").exit_code != 0) return std::string("Node.js is missing; ") + kInstall;
  if (!fs::exists(kWeb / "node_modules" / "puppeteer-core" / "package.json"))
    return "web/report/node_modules is missing (npm ci); " + std::string(kInstall);
  return "";
}

// The checks a reader would make, each on the verdict of one browser run.
void experiment_writes_the_report_and_prints_its_path(const fs::path& exp, const CommandResult& experiment) {
  const fs::path index = exp / "report" / "index.html";
  ASSERT_TRUE(fs::exists(index));
  EXPECT_NE(experiment.output.find("report: " + fs::canonical(index).string()), std::string::npos) << experiment.output;
  for (const char* lib : {"niivue.umd.js", "vega.min.js", "vega-lite.min.js", "vega-embed.min.js", "NOTICE.txt"})
    EXPECT_TRUE(fs::exists(exp / "report" / "lib" / lib)) << lib;
}

void page_loads_from_file_without_console_error_or_failed_request(const Json& v) {
  EXPECT_EQ(v["problems"]["console"].size(), 0u) << v["problems"].dump(1);
  EXPECT_EQ(v["problems"]["page"].size(), 0u) << v["problems"].dump(1);
  EXPECT_EQ(v["problems"]["requests"].size(), 0u) << v["problems"].dump(1);
  EXPECT_EQ(v["page_errors"].size(), 0u) << v["page_errors"].dump(1);
}

void every_chart_is_drawn(const Json& v) {
  const std::vector<std::string> expected{"chart-cost", "chart-per-case", "chart-paired", "chart-curves"};
  EXPECT_EQ(v["expected_charts"].get<std::vector<std::string>>(), expected);
  for (const auto& id : expected) {
    ASSERT_TRUE(v["charts"].contains(id)) << id << " was not drawn: " << v["charts"].dump();
    EXPECT_GT(v["charts"][id]["variance"].get<double>(), 100.0) << id << " looks blank";
  }
}

void every_viewer_canvas_is_drawn(const Json& v) {
  ASSERT_EQ(v["cases"].get<int>(), 3);
  // 3 case viewers; attention maps: 2 teachers + the distilled student + the student alone, coarse and fine.
  EXPECT_EQ(v["attention_viewers"].get<int>(), 8);
  int cases = 0;
  for (const auto& [id, stats] : v["viewers"].items()) {
    cases += id.rfind("case-", 0) == 0;
    EXPECT_GT(stats["variance"].get<double>(), 100.0) << id << " looks blank";
  }
  EXPECT_EQ(cases, 3);
}

void table_numbers_equal_results_csv(const Json& v, const fs::path& results_csv) {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  report::read_csv(results_csv, header, rows);
  std::map<std::pair<std::string, std::string>, std::string> csv;
  for (const auto& row : rows)
    for (size_t i = 0; i < header.size(); ++i) csv[{row[0], header[i]}] = row[i];
  size_t checked = 0;
  std::set<std::string> models;
  for (const auto& cell : v["table"]) {
    if (cell["source"] != "csv") continue;
    const std::string model = cell["model"], key = cell["key"];
    models.insert(model);
    ASSERT_TRUE(csv.count({model, key})) << model << " " << key;
    const std::string expected = csv[{model, key}];
    EXPECT_EQ(cell["value"].get<std::string>(), expected) << model << " " << key;
    // What is shown is that number, rounded.
    const std::string text = cell["text"];
    char* end = nullptr;
    const double shown = std::strtod(text.c_str(), &end);
    if (end != text.c_str() && *end == '\0') {
      const size_t dot = text.find('.');
      const int digits = dot == std::string::npos ? 0 : int(text.size() - dot - 1);
      EXPECT_LE(std::abs(shown - std::stod(expected)), 0.5 * std::pow(10.0, -digits) + 1e-12) << model << " " << key << ": " << text;
    } else if (expected.empty()) {
      EXPECT_EQ(text, "\u2013") << model << " " << key << ": an empty cell shows a dash";
    } else {
      EXPECT_EQ(text, expected) << model << " " << key;
    }
    ++checked;
  }
  EXPECT_EQ(models.size(), rows.size());
  EXPECT_GE(checked, rows.size() * 9);  // model, role, 7 numbers at least
}

void toggling_an_overlay_changes_the_canvas(const Json& v) {
  ASSERT_TRUE(v["toggle"].is_object()) << v.dump(1);
  EXPECT_EQ(v["toggle"]["layer"], "ground truth");
  EXPECT_GT(v["toggle"]["mean_abs_difference"].get<double>(), 0.05);
}

void png_writes_the_plots_and_one_overlay_slice_per_case(const fs::path& exp, const fs::path& out) {
  const auto r = run_cli("-q report " + q(exp) + " --png -o " + q(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(out / "png")) {
    names.push_back(e.path().filename().string());
    EXPECT_GT(fs::file_size(e.path()), 2000u) << e.path();
  }
  for (const char* chart : {"cost.png", "per-case.png", "paired.png", "curves.png", "attention.png"})
    EXPECT_NE(std::find(names.begin(), names.end(), chart), names.end()) << chart;
  EXPECT_EQ(std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.rfind("case_", 0) == 0; }), 3);
}

void model_folder_and_predictions_folder_reports(const fs::path& exp, const fs::path& root) {
  // A distilled model folder: its curves, its teachers', its validation cases' attention maps.
  const fs::path model = exp / "seed_0" / "models" / "student_teachformer";
  auto r = run_cli("-q report " + q(model));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string data = read_file(model / "report" / "data" / "report.js");
  for (const char* s : {"\"kind\":\"model folder\"", "\"panel\":\"weight\"", "\"attention\":{\"background\"", "\"name\":\"unetr\""})
    EXPECT_NE(data.find(s), std::string::npos) << s;
  // A predictions folder with its references.
  r = run_cli("-q report " + q(exp / "seed_0" / "predictions" / "student_hinton") + " --ref " + q(exp / "eval" / "labels") + " -o " +
              q(root / "pred-report"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(read_file(root / "pred-report" / "data" / "report.js").find("\"kind\":\"predictions\""), std::string::npos);
  EXPECT_TRUE(fs::exists(root / "pred-report" / "volumes" / "case_002.js"));
}

// One tiny experiment and one browser run (about a minute) serve every check; each check is a named section.
TEST(ReportBrowser, TinyExperimentReportInHeadlessChromium) {
  const std::string missing = missing_browser_dependencies();
  ASSERT_TRUE(missing.empty()) << missing;
  const fs::path root = fs::absolute("report-test");
  fs::remove_all(root);
  fs::create_directories(root);
  const fs::path exp = root / "exp";
  const auto experiment = run_cli("-q experiment --preset tiny -o " + q(exp) +
                                  " --teachers unetr,hdenseformer --students teachformer,student_alone,hinton --cases 6 "
                                  "--test-cases 3");
  ASSERT_EQ(experiment.exit_code, 0) << experiment.output;
  {
    SCOPED_TRACE("the experiment writes the report and prints its path");
    experiment_writes_the_report_and_prints_its_path(exp, experiment);
  }
  const auto browser = run_command("cd " + q(kWeb) + " && node tools/check_report.cjs --page " +
                                   q(exp / "report" / "index.html") + " --out " + q(root / "screenshots"));
  ASSERT_EQ(browser.exit_code, 0) << "the browser check did not finish: " << browser.output;
  const Json v = read_json(root / "screenshots" / "verdict.json");
  {
    SCOPED_TRACE("the page loads from file:// without console error or failed request");
    page_loads_from_file_without_console_error_or_failed_request(v);
  }
  {
    SCOPED_TRACE("every chart is drawn");
    every_chart_is_drawn(v);
  }
  {
    SCOPED_TRACE("every viewer canvas is drawn");
    every_viewer_canvas_is_drawn(v);
  }
  {
    SCOPED_TRACE("the table's numbers equal results.csv");
    table_numbers_equal_results_csv(v, exp / "results.csv");
  }
  {
    SCOPED_TRACE("toggling an overlay changes the canvas");
    toggling_an_overlay_changes_the_canvas(v);
  }
  {
    SCOPED_TRACE("--png writes the plots and one overlay slice per case");
    png_writes_the_plots_and_one_overlay_slice_per_case(exp, root / "png-report");
  }
  {
    SCOPED_TRACE("a model folder and a predictions folder make reports too");
    model_folder_and_predictions_folder_reports(exp, root);
  }
}

TEST(ReportCli, WithoutTheWebAssetsSaysWhatToInstall) {
  TempDir dir;
  fs::create_directories(dir / "exp");
  std::ofstream(dir / "exp" / "results.csv") << "model,role\nunetr,teacher\n";
  // The source tree's template without node_modules: a machine where `npm ci` never ran.
  fs::create_directories(dir / "web");
  fs::copy(kWeb / "template", dir / "web" / "template");
  const auto r = run_command("TEACHFORMER_WEB_DIR=" + q(dir / "web") + " " + q(cli_path()) + " report " + q(dir / "exp"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("bash scripts/install_deps.sh"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "exp" / "report"));
}

TEST(ReportCli, NotAReportableFolderIsAnErrorNamingIt) {
  TempDir dir;
  const auto r = run_cli("report " + q(dir.path()));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("is not an experiment folder"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace teachformer::test
