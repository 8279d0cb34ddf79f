#include "teachformer/report/report.hpp"

#include <unistd.h>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/log.hpp"
#include "teachformer/data/dataset.hpp"
#include "teachformer/data/preprocessed.hpp"
#include "teachformer/models/model_folder.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/report/assets.hpp"
#include "teachformer/report/attention.hpp"
#include "teachformer/report/experiment_folder.hpp"
#include "teachformer/report/report_data.hpp"
#include "teachformer/report/volumes.hpp"
#include "teachformer/version.hpp"

namespace teachformer::report {
namespace {

constexpr double kCropMarginMm = 16.0;

std::string modality_of(const std::vector<std::string>& channels) {
  const auto has = [&](const char* n) { return std::find(channels.begin(), channels.end(), n) != channels.end(); };
  if (has("CT") && has("PET")) return "petct";
  if (has("T2W")) return "mri";
  return "generic";
}

// A scan's channels as volumes (each on its own grid), raw or preprocessed.
struct Scan {
  std::vector<std::string> names;
  std::vector<io::Volume> channels;
  std::optional<io::Volume> label;  // the preprocessed label when no label file is known
};

// The raw case of a report case with a scan on disk (unlabelled: labels are read apart).
data::Case raw_case(const ReportCase& c) {
  data::Case dc;
  dc.id = c.id;
  dc.patient_id = c.id;
  dc.channel_names = c.channel_names;
  dc.channel_files = c.channel_files;
  dc.bbox = c.bbox;
  return dc;
}

Scan load_scan(const ReportCase& c) {
  Scan s;
  if (!c.channel_files.empty()) {
    const auto loaded = raw_case(c).load();
    s.names = c.channel_names;
    s.channels = loaded.channels;
  } else if (c.preprocessed) {
    const auto pds = data::open_preprocessed(*c.preprocessed);
    const auto pc = pds.load_case(c.id);
    const Grid& g = pc.geometry.preprocessed;
    s.names = pds.channel_names();
    for (int64_t i = 0; i < pc.image.size(0); ++i) s.channels.push_back(io::Volume{pc.image.narrow(0, i, 1).contiguous(), g.geometry});
    if (pc.labelled()) s.label = io::Volume{pc.label, g.geometry};
  }
  return s;
}

// Integral images that fit int16 are stored as int16 (CT in HU), others as float32.
io::PixelType image_type(const io::Volume& v) {
  const auto d = v.data;
  if (d.numel() == 0) return io::PixelType::Float32;
  const double lo = d.min().item<double>(), hi = d.max().item<double>();
  const bool integral = (d - d.round()).abs().max().item<double>() < 1e-3;
  return integral && lo >= -32768 && hi <= 32767 ? io::PixelType::Int16 : io::PixelType::Float32;
}

// How a channel is shown: the first (reference) channel is the grey background; PET, HBV and ADC are colour
// overlays (PET and HBV visible); other channels hidden overlays.
Json image_layer(const std::string& name, const io::Volume& v, bool background) {
  Json l{{"name", name}, {"kind", "image"}, {"opacity", 1.0}, {"visible", true}, {"colormap", "gray"}};
  if (background) {
    const auto [lo, hi] = intensity_range(v.data, 0.01, 0.995);
    double cmin = lo, cmax = hi;
    if (name == "CT" && lo <= -160 && hi >= 240) cmin = -160, cmax = 240;  // soft-tissue window (W 400, L 40)
    l["cal_min"] = cmin;
    l["cal_max"] = cmax;
    return l;
  }
  // Colour overlays (the page's "fusion" colour maps, transparent below cal_min and fading in above it) show the
  // values well above the median: the uptake, not the tissue background.
  const auto [median, hi] = intensity_range(v.data, 0.5, 0.998);
  l["cal_min"] = median + 0.3 * (hi - median);
  l["cal_max"] = hi > median ? hi : median + 1;
  l["opacity"] = 0.8;
  l["colormap"] = name == "ADC" ? "fusion_cool" : "fusion_hot";
  l["visible"] = name == "PET" || name == "HBV";
  return l;
}

struct CaseRank {
  std::string id;
  double score = NAN;  // mean Dice over models and seeds
  std::map<std::string, double> dice;
};

std::vector<CaseRank> rank_cases(const ExperimentFolder& f, const Json& per_case) {
  std::map<std::string, std::map<std::string, std::pair<double, int>>> sums;
  for (const auto& r : per_case)
    if (r["dice"].is_number()) {
      auto& s = sums[r["case"].get<std::string>()][r["model"].get<std::string>()];
      s.first += r["dice"].get<double>();
      s.second += 1;
    }
  std::vector<CaseRank> ranks;
  for (const auto& c : f.cases) {
    CaseRank cr{c.id};
    double total = 0;
    int n = 0;
    for (const auto& [model, s] : sums[c.id]) {
      cr.dice[model] = s.first / s.second;
      total += cr.dice[model];
      ++n;
    }
    if (n) cr.score = total / n;
    ranks.push_back(cr);
  }
  std::stable_sort(ranks.begin(), ranks.end(), [](const CaseRank& a, const CaseRank& b) {
    const double x = std::isnan(a.score) ? 2.0 : a.score, y = std::isnan(b.score) ? 2.0 : b.score;
    return x < y;
  });
  return ranks;
}

fs::path prediction_file(const ModelEntry& m, const std::string& id) {
  for (const auto& dir : m.prediction_dirs)
    for (const auto& ext : io::supported_image_extensions())
      if (!dir.empty() && fs::exists(dir / (id + ext))) return dir / (id + ext);
  return {};
}

// Writes one case's viewer script and returns its description for the page.
Json write_case(const ExperimentFolder& f, const ReportCase& c, const CaseRank& rank, int index, const fs::path& out) {
  Scan scan = load_scan(c);
  VolumeScript script(out / ".scratch");
  Json layers = Json::array();
  auto crop = [&](io::Volume v) { return c.bbox ? crop_to_box(v, *c.bbox, kCropMarginMm) : v; };
  for (size_t i = 0; i < scan.channels.size(); ++i) {
    io::Volume v = crop(scan.channels[i]);
    script.add(scan.names[i], v, image_type(v));
    layers.push_back(image_layer(scan.names[i], v, i == 0));
  }
  std::optional<Vec3> centre;
  std::optional<io::Volume> gt;
  if (c.label) gt = io::read_label(*c.label);
  else if (scan.label) gt = scan.label;
  if (gt) {
    io::Volume v = crop(*gt);
    centre = label_centroid_ras(v);
    script.add("ground truth", v, io::PixelType::UInt8);
    layers.push_back({{"name", "ground truth"}, {"kind", "label"}, {"model", nullptr}, {"visible", true}, {"opacity", 0.45}});
  }
  const std::string primary = [&] {
    for (const auto& m : f.models)
      if (m.role == "student" && m.name != "student:student_alone") return m.name;
    return f.models.empty() ? std::string() : f.models.front().name;
  }();
  for (const auto& m : f.models) {
    const fs::path p = prediction_file(m, c.id);
    if (p.empty()) continue;
    script.add(m.name, crop(io::read_label(p)), io::PixelType::UInt8);
    layers.push_back({{"name", m.name}, {"kind", "label"}, {"model", m.name}, {"visible", m.name == primary}, {"opacity", 0.45}});
  }
  char file[32];
  std::snprintf(file, sizeof file, "case_%03d.js", index);
  script.write(out / "volumes" / file, c.id);
  Json dice = Json::object();
  for (const auto& [model, d] : rank.dice) dice[model] = d;
  return {{"id", c.id}, {"rank", index + 1}, {"mean_dice", std::isnan(rank.score) ? Json() : Json(rank.score)},
          {"dice", dice}, {"script", std::string("volumes/") + file}, {"layers", layers},
          {"crosshair", centre ? Json::array({(*centre)[0], (*centre)[1], (*centre)[2]}) : Json()}};
}

// The case shown in the distillation section: asked for, else the distilled student's median case.
const ReportCase* attention_case(const ExperimentFolder& f, const std::vector<CaseRank>& ranks, const Json& per_case,
                                 const std::string& wanted) {
  auto has_scan = [](const ReportCase& c) { return !c.channel_files.empty() || c.preprocessed.has_value(); };
  if (!wanted.empty()) {
    for (const auto& c : f.cases)
      if (c.id == wanted) {
        TF_CHECK(has_scan(c), IoError, "report: case '", wanted, "' has no scan to compute attention maps on");
        return &c;
      }
    std::vector<std::string> ids;
    for (const auto& c : f.cases) ids.push_back(c.id);
    TF_THROW(InvalidArgument, "report: --attention-case '", wanted, "' is not a held-out case; cases: ", ids);
  }
  std::string student;
  for (const auto& m : f.models)
    if (m.role == "student" && m.name != "student:student_alone") { student = m.name; break; }
  std::vector<std::pair<double, std::string>> scores;
  for (const auto& r : per_case)
    if (r["model"] == student && r["dice"].is_number()) scores.emplace_back(r["dice"].get<double>(), r["case"].get<std::string>());
  std::sort(scores.begin(), scores.end());
  std::vector<std::string> order;
  if (!scores.empty()) order.push_back(scores[(scores.size() - 1) / 2].second);
  for (const auto& r : ranks) order.push_back(r.id);
  for (const auto& id : order)
    for (const auto& c : f.cases)
      if (c.id == id && has_scan(c)) return &c;
  return nullptr;
}

// Exponent p of the attention maps: the first distilled student's, else 2.
int attention_p(const ExperimentFolder& f) {
  for (const auto& m : f.models) {
    const fs::path cfg = m.model_dirs.empty() ? fs::path() : m.model_dirs.front() / "config.json";
    if (cfg.empty() || !fs::exists(cfg)) continue;
    const Json c = read_json(cfg);
    if (c.contains("distill") && c["distill"].contains("attention")) return c["distill"]["attention"].value("p", 2);
  }
  return 2;
}

Json write_attention(const ExperimentFolder& f, const ReportCase& c, const fs::path& out, const std::string& device) {
  const int p = attention_p(f);
  VolumeScript script(out / ".scratch");
  Scan scan = load_scan(c);
  auto crop = [&](io::Volume v) { return c.bbox ? crop_to_box(v, *c.bbox, kCropMarginMm) : v; };
  const io::Volume background = crop(scan.channels.front());
  script.add("background", background, image_type(background));
  Json models = Json::array();
  for (const auto& m : f.models) {
    const fs::path dir = m.model_dirs.empty() ? fs::path() : m.model_dirs.front();
    if (dir.empty() || !fs::exists(dir / "config.json")) continue;
    const auto folder = models::open_model_folder(dir);
    if (folder.folds.empty()) continue;
    const int fold = std::count(folder.folds.begin(), folder.folds.end(), f.fold) ? f.fold : folder.folds.front();
    AttentionMaps maps;
    if (!c.channel_files.empty()) {
      maps = attention_maps(dir, fold, raw_case(c), p, device);
    } else {
      maps = attention_maps_preprocessed(dir, fold, *c.preprocessed, c.id, p, device);
    }
    for (auto* level : {&maps.coarse, &maps.fine}) level->data = (level->data.clamp(0, 1) * 255).round();
    script.add(m.name + "|coarse", crop(maps.coarse), io::PixelType::UInt8);
    script.add(m.name + "|fine", crop(maps.fine), io::PixelType::UInt8);
    models.push_back({{"name", m.name}, {"role", m.role}, {"coarse", m.name + "|coarse"}, {"fine", m.name + "|fine"}});
  }
  if (models.empty()) return Json();
  script.write(out / "volumes" / "attention.js", "attention");
  std::optional<Vec3> centre;
  if (c.label) centre = label_centroid_ras(crop(io::read_label(*c.label)));
  Json bg = image_layer(scan.names.front(), background, true);
  bg["name"] = "background";
  bg["channel"] = scan.names.front();
  return {{"case", c.id}, {"script", "volumes/attention.js"}, {"background", bg}, {"models", models}, {"p", p},
          {"crosshair", centre ? Json::array({(*centre)[0], (*centre)[1], (*centre)[2]}) : Json()}};
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size()))
    text.replace(pos, from.size(), to);
  return text;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

int64_t folder_bytes(const fs::path& dir) {
  int64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) total += int64_t(e.file_size());
  return total;
}

std::string shell_quote(const std::string& s) { return "'" + replace_all(s, "'", "'\\''") + "'"; }

std::vector<fs::path> export_pngs(const WebAssets& assets, const fs::path& index, const fs::path& png_dir) {
  const fs::path chromium = find_chromium();
  TF_CHECK(!chromium.empty(), IoError,
           "report --png: Chromium is not installed; install it with `bash scripts/install_deps.sh` (or set "
           "TEACHFORMER_CHROMIUM)");
  const fs::path tool = assets.tools_dir() / "export_png.cjs";
  TF_CHECK(fs::exists(assets.node_modules() / "puppeteer-core" / "package.json"), IoError,
           "report --png: puppeteer-core is not installed in '", assets.root.string(),
           "'; install it with `bash scripts/install_deps.sh`");
  TF_CHECK(std::system("node --version > /dev/null 2>&1") == 0, IoError,
           "report --png: Node.js is not installed; install it with `bash scripts/install_deps.sh`");
  fs::create_directories(png_dir);
  const fs::path log = png_dir / "export.log";
  const std::string cmd = "node " + shell_quote(tool.string()) + " --chromium " + shell_quote(chromium.string()) +
                          " --page " + shell_quote(index.string()) + " --out " + shell_quote(png_dir.string()) + " > " +
                          shell_quote(log.string()) + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::string tail = fs::exists(log) ? read_file(log) : "";
  if (tail.size() > 600) tail = "..." + tail.substr(tail.size() - 600);
  TF_CHECK(rc == 0, IoError, "report --png: the export in headless Chromium failed (", tail, ")");
  fs::remove(log);
  std::vector<fs::path> pngs;
  for (const auto& e : fs::directory_iterator(png_dir))
    if (e.path().extension() == ".png") pngs.push_back(e.path());
  std::sort(pngs.begin(), pngs.end());
  return pngs;
}

}  // namespace

ReportResult write_report(const fs::path& dir, const ReportOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const WebAssets assets = locate_web_assets();
  const ExperimentFolder f = read_experiment_folder(dir, options.ref);
  const fs::path out = fs::absolute(options.output ? *options.output : f.root / "report");
  TF_CHECK(options.max_cases >= 0, InvalidArgument, "report: --max-cases must be >= 0, got ", options.max_cases);
  // Built beside the target and swapped in when complete.
  const fs::path tmp = out.parent_path() / (".tmp-report-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp / "volumes");
  fs::create_directories(tmp / "data");
  int64_t viewers = 0;
  try {
    std::vector<std::string> channels;
    for (const auto& c : f.cases)
      if (!c.channel_names.empty()) { channels = c.channel_names; break; }
    if (channels.empty())
      for (const auto& c : f.cases)
        if (c.preprocessed) { channels = data::open_preprocessed(*c.preprocessed).channel_names(); break; }
    const std::string modality = modality_of(channels);

    Json report;
    report["title"] = f.kind == SourceKind::Experiment ? "TeachFormer experiment: " + f.root.filename().string()
                                                       : "TeachFormer " + to_string(f.kind) + ": " + f.root.filename().string();
    report["source"] = {{"kind", to_string(f.kind)}, {"path", f.root.string()}};
    report["tool_version"] = kVersion;
    report["experiment"] = f.experiment;
    report["seeds"] = f.seeds;
    report["modality"] = modality;
    report["channels"] = channels;
    Json models = Json::array();
    for (const auto& m : f.models) models.push_back({{"name", m.name}, {"role", m.role}});
    report["models"] = models;
    report["table"] = table_json(f);
    report["cost"] = cost_json(f);
    const Json per_case = per_case_json(f);
    report["per_case"] = per_case;
    report["paired"] = paired_json(f, per_case);
    report["curves"] = curves_json(f);
    if (fs::exists(f.root / "results.md")) report["results_md"] = read_file(f.root / "results.md");

    const auto ranks = rank_cases(f, per_case);
    Json cases = Json::array();
    const size_t limit = options.max_cases == 0 ? ranks.size() : std::min(ranks.size(), size_t(options.max_cases));
    for (size_t i = 0; i < limit; ++i) {
      const auto it = std::find_if(f.cases.begin(), f.cases.end(), [&](const ReportCase& c) { return c.id == ranks[i].id; });
      spdlog::info("report: case {} ({}/{})", ranks[i].id, i + 1, limit);
      cases.push_back(write_case(f, *it, ranks[i], int(i), tmp));
    }
    report["cases"] = cases;
    viewers = int64_t(cases.size());
    report["cases_total"] = f.cases.size();
    report["attention"] = nullptr;
    if (options.attention)
      if (const ReportCase* c = attention_case(f, ranks, per_case, options.attention_case)) {
        spdlog::info("report: attention maps of every model on case {}", c->id);
        report["attention"] = write_attention(f, *c, tmp, options.device);
      }
    fs::remove_all(tmp / ".scratch");
    write_file_atomic(tmp / "data" / "report.js", "window.TF_REPORT = " + report.dump() + ";\n");

    std::string html = read_file(assets.template_dir() / "index.html");
    html = replace_all(html, "@TITLE@", html_escape(report["title"].get<std::string>()));
    std::string libs;
    for (const auto& lib : report_libraries())
      libs += "<script src=\"lib/" + fs::path(lib.source).filename().string() + "\"></script>\n";
    html = replace_all(html, "<!-- @LIBRARIES@ -->\n", libs);
    write_file_atomic(tmp / "index.html", html);
    for (const char* name : {"report.js", "report.css"})
      fs::copy_file(assets.template_dir() / name, tmp / name, fs::copy_options::overwrite_existing);
    copy_libraries(assets, tmp / "lib");
  } catch (...) {
    fs::remove_all(tmp);
    throw;
  }
  fs::remove_all(out);
  fs::rename(tmp, out);

  ReportResult r;
  r.index = out / "index.html";
  r.viewers = viewers;
  if (options.png) r.pngs = export_pngs(assets, r.index, out / "png");
  r.bytes = folder_bytes(out);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::optional<fs::path> write_experiment_report(const fs::path& dir) {
  try {
    (void)locate_web_assets();
  } catch (const IoError& e) {
    spdlog::warn("{}; then run `teachformer report {}`", e.what(), dir.string());
    return std::nullopt;
  }
  const auto r = write_report(dir);
  return r.index;
}

}  // namespace teachformer::report
