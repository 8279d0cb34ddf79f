#include "teachformer/data/preprocessed.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <mutex>

#include "data/detail/parallel.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/folder_lock.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/interrupt.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/log.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/io/safetensors.hpp"

namespace teachformer::data {
namespace {

constexpr const char* kCaseKind = "teachformer-preprocessed-case/1";

fs::path case_path(const fs::path& dir, const std::string& id) { return dir / "cases" / (id + ".safetensors"); }

// Top-level keys whose values differ, for the "different plan" message.
std::vector<std::string> differing_keys(const Json& a, const Json& b) {
  std::vector<std::string> keys;
  for (auto it = a.begin(); it != a.end(); ++it)
    if (!b.contains(it.key()) || b[it.key()] != it.value()) keys.push_back(it.key());
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!a.contains(it.key())) keys.push_back(it.key());
  return keys;
}

// With --ct-window fingerprint the new plan's window is unresolved: take it from an existing plan made the same way.
void adopt_fingerprint_window(PreprocessPlan& plan, const PreprocessPlan& existing) {
  for (auto& c : plan.channels) {
    if (c.normalization.source != "fingerprint" || std::isfinite(c.normalization.lower)) continue;
    for (const auto& e : existing.channels)
      if (e.name == c.name && e.normalization.scheme == transforms::NormScheme::Window &&
          e.normalization.source == "fingerprint")
        c.normalization = e.normalization;
  }
}

struct CaseResult {
  bool ok = false;
  std::string error;
  std::vector<std::string> warnings;
  CaseStats stats;
};

// The CT window from the foreground percentiles of the labelled cases (first pass of --ct-window fingerprint).
void resolve_fingerprint_window(PreprocessPlan& plan, const Dataset& ds, int workers) {
  std::vector<Case> cases = ds.training;
  TF_CHECK(!cases.empty(), DatasetError, "--ct-window fingerprint needs labelled cases to find the foreground; '",
           ds.root.string(), "' has none (hint: use --ct-window fixed)");
  std::vector<CaseResult> results(cases.size());
  ProgressBar bar("fingerprint", int64_t(cases.size()));
  int64_t done = 0;
  detail::run_parallel(
      int64_t(cases.size()), workers,
      [&](int64_t i) {
        auto& r = results[size_t(i)];
        try {
          const ResampledCase rc = resample_case(cases[size_t(i)], plan);
          r.stats = compute_case_stats(rc.data.id, rc.data.geometry.patient_id, rc.data.image, rc.data.label);
          r.ok = true;
        } catch (const std::exception& e) {
          r.error = e.what();
        }
      },
      [&] { bar.update(++done); });
  bar.finish();
  std::vector<CaseStats> stats;
  for (size_t i = 0; i < results.size(); ++i) {
    TF_CHECK(results[i].ok, DatasetError, "fingerprint of case '", cases[i].id, "' failed: ", results[i].error);
    stats.push_back(std::move(results[i].stats));
  }
  const DatasetFingerprint f = aggregate_fingerprint(plan.channel_names(), stats);
  for (size_t c = 0; c < plan.channels.size(); ++c) {
    auto& n = plan.channels[c].normalization;
    if (n.source != "fingerprint" || std::isfinite(n.lower)) continue;
    const IntensitySummary& fg = f.foreground[c];
    TF_CHECK(fg.count > 0 && std::isfinite(fg.p00_5) && fg.p99_5 > fg.p00_5, DatasetError, "channel '",
             plan.channels[c].name, "': the foreground percentiles [", fg.p00_5, ", ", fg.p99_5,
             "] give no usable window (empty labels?) (hint: use --ct-window fixed)");
    n = transforms::Normalization::window(fg.p00_5, fg.p99_5, "fingerprint");
    spdlog::info("{} window from the fingerprint: [{:.1f}, {:.1f}]", plan.channels[c].name, fg.p00_5, fg.p99_5);
  }
}

// The plan (given, or made from the dataset), checked against one already in `out_dir`, with the fingerprint window
// resolved; written to out_dir/plan.json.
PreprocessPlan settle_plan(const Dataset& ds, const fs::path& out_dir, const PreprocessOptions& options) {
  PreprocessPlan plan = options.fixed_plan ? *options.fixed_plan : make_plan(ds, options.plan);
  TF_CHECK(plan.channel_names() == ds.channel_names, DatasetError, "dataset '", ds.root.string(), "' has channels ",
           ds.channel_names, " but the plan is for ", plan.channel_names());
  const fs::path plan_file = out_dir / "plan.json";
  if (fs::exists(plan_file)) {
    const PreprocessPlan existing = read_plan(plan_file);
    adopt_fingerprint_window(plan, existing);
    if (plan.digest() != existing.digest())
      TF_THROW(DatasetError, "'", out_dir.string(), "' holds cases made with a different plan (keys ",
               differing_keys(plan.to_json(), existing.to_json()),
               " differ) (hint: use another output folder or delete it)");
  }
  if (plan.needs_fingerprint()) resolve_fingerprint_window(plan, ds, options.workers);
  plan.validate("plan");
  write_json(plan_file, plan.to_json());
  return plan;
}

// Reads, resamples, normalises and writes one case (with its statistics in the header); returns the resampling
// warnings.
std::vector<std::string> preprocess_one(const Case& c, const PreprocessPlan& plan, const std::string& digest,
                                        const fs::path& out_dir) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const LoadedCase loaded = c.load();
  const auto t1 = clock::now();
  ResampledCase rc = resample_case(c, loaded, plan);
  const auto t2 = clock::now();
  CaseStats stats = compute_case_stats(c.id, c.patient_id, rc.data.image, rc.data.label);
  stats.original_shape = rc.data.geometry.reference.size;
  stats.original_spacing = rc.data.geometry.reference.geometry.spacing;
  stats.spacing = rc.data.geometry.preprocessed.geometry.spacing;
  const auto t3 = clock::now();
  const torch::Tensor image = normalize_image(rc.data.image, plan);
  const auto t4 = clock::now();
  std::map<std::string, torch::Tensor> tensors{{"image", image}};
  if (rc.data.label.defined()) tensors["label"] = rc.data.label;
  std::map<std::string, std::string> meta{{"teachformer", kCaseKind},
                                          {"case_id", c.id},
                                          {"patient_id", c.patient_id},
                                          {"plan_digest", digest},
                                          {"channels", Json(plan.channel_names()).dump()},
                                          {"geometry", rc.data.geometry.to_json().dump()},
                                          {"stats", stats.to_json().dump()}};
  io::write_safetensors(case_path(out_dir, c.id), tensors, meta);
  auto sec = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  spdlog::debug("case '{}': read {:.3f} s, resample {:.3f} s, statistics {:.3f} s, normalise {:.3f} s, write {:.3f} s",
                c.id, sec(t0, t1), sec(t1, t2), sec(t2, t3), sec(t3, t4), sec(t4, clock::now()));
  return std::move(rc.warnings);
}

// Everything is on disk: fingerprint.json from the written cases' stored statistics, and dataset.json listing them.
void write_dataset_description(const Dataset& ds, const PreprocessPlan& plan, const std::vector<Case>& cases,
                               const fs::path& out_dir) {
  std::vector<CaseStats> stats;
  Json list = Json::array();
  int64_t labelled = 0;
  for (const auto& c : cases) {
    const fs::path file = case_path(out_dir, c.id);
    const io::SafeTensors header = io::read_safetensors_header(file);
    stats.push_back(CaseStats::from_json(Json::parse(header.metadata.at("stats")), "stats of '" + file.string() + "'"));
    labelled += header.contains("label") ? 1 : 0;
    list.push_back({{"id", c.id},
                    {"patient_id", c.patient_id},
                    {"labelled", header.contains("label")},
                    {"file", "cases/" + c.id + ".safetensors"}});
  }
  write_json(out_dir / "fingerprint.json", aggregate_fingerprint(plan.channel_names(), stats).to_json());
  Json labels = Json::object();
  for (const auto& l : ds.labels) labels[l.name] = l.value;
  write_json(out_dir / "dataset.json", {{"format_version", 1},
                                        {"name", ds.name},
                                        {"format", to_string(ds.format)},
                                        {"source", ds.root.string()},
                                        {"channel_names", plan.channel_names()},
                                        {"reference_channel", plan.reference_channel},
                                        {"labels", labels},
                                        {"plan", plan.to_json()},
                                        {"num_cases", cases.size()},
                                        {"num_labelled", labelled},
                                        {"cases", list}});
}

}  // namespace

bool is_finished_case(const fs::path& file, const std::string& plan_digest) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return false;
  try {
    const io::SafeTensors header = io::read_safetensors_header(file);
    const auto kind = header.metadata.find("teachformer");
    const auto digest = header.metadata.find("plan_digest");
    return header.contains("image") && kind != header.metadata.end() && kind->second == kCaseKind &&
           digest != header.metadata.end() && digest->second == plan_digest;
  } catch (const Error& e) {
    spdlog::debug("'{}' is not a finished case ({}); it is written again", file.string(), e.what());
    return false;
  }
}

PreprocessSummary preprocess_dataset(const Dataset& ds, const fs::path& out_dir, const PreprocessOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (ds.error_count() > 0) {
    std::string first;
    for (const auto& p : ds.problems)
      if (p.severity == Severity::Error) {
        first = p.to_string();
        break;
      }
    TF_THROW(DatasetError, "dataset '", ds.root.string(), "' has ", ds.error_count(), " error(s), first: ", first,
             " (hint: run teachformer verify for the full list)");
  }
  for (const auto& c : ds.all_cases()) {
    const std::string why = unsafe_name_reason(c.id);
    TF_CHECK(why.empty(), DatasetError, "dataset '", ds.root.string(), "': case id '", c.id, "' ", why,
             "; a case id must be a plain file name");
  }
  // One writer per output folder; a second preprocessing of the same folder waits, then finds the cases done.
  const FolderLock lock(out_dir, "preprocessed dataset", FolderLock::Mode::Wait);
  remove_stale_temporaries(out_dir);
  PreprocessSummary summary;
  PreprocessPlan plan = settle_plan(ds, out_dir, options);
  const std::string digest = plan.digest();
  summary.plan = plan;

  const std::vector<Case> cases = ds.all_cases();
  std::vector<int64_t> todo;
  for (size_t i = 0; i < cases.size(); ++i) {
    if (is_finished_case(case_path(out_dir, cases[i].id), digest)) ++summary.skipped;
    else todo.push_back(int64_t(i));
  }
  std::vector<CaseResult> results(todo.size());
  {
    ProgressBar bar("preprocess", int64_t(cases.size()));
    int64_t done = summary.skipped;
    bar.update(done, summary.skipped ? std::to_string(summary.skipped) + " finished before" : std::string());
    detail::run_parallel(
        int64_t(todo.size()), options.workers,
        [&](int64_t t) {
          const Case& c = cases[size_t(todo[size_t(t)])];
          auto& r = results[size_t(t)];
          if (stop_requested()) {
            r.error = "stopped";
            return;
          }
          try {
            r.warnings = preprocess_one(c, plan, digest, out_dir);
            r.ok = true;
          } catch (const std::exception& e) {
            r.error = e.what();
          }
        },
        [&] { bar.update(++done); });
  }
  std::vector<std::string> failures;
  if (stop_requested()) {
    int64_t written = 0;
    for (const auto& r : results) written += r.ok ? 1 : 0;
    throw_if_stop_requested(std::to_string(summary.skipped + written) + " of " + std::to_string(cases.size()) +
                            " case(s) are in '" + out_dir.string() + "'; the rest are preprocessed when the same "
                            "command runs again");
  }
  for (size_t t = 0; t < todo.size(); ++t) {
    auto& r = results[t];
    for (const auto& w : r.warnings) {
      spdlog::warn("{}", w);
      summary.warnings.push_back(w);
    }
    if (r.ok) {
      ++summary.written;
    } else {
      const std::string line = "case '" + cases[size_t(todo[t])].id + "': " + r.error;
      spdlog::error("{}", line);
      failures.push_back(line);
    }
  }
  TF_CHECK(failures.empty(), DatasetError, failures.size(), " of ", cases.size(), " case(s) failed, first: ",
           failures.front(), " (the others are written; re-running redoes only the failed ones)");

  write_dataset_description(ds, plan, cases, out_dir);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

PreprocessedDataset::PreprocessedDataset(fs::path root, std::string name, std::string format,
                                         std::vector<LabelClass> labels, PreprocessPlan plan,
                                         std::vector<PreprocessedEntry> cases)
    : root_(std::move(root)),
      name_(std::move(name)),
      format_(std::move(format)),
      labels_(std::move(labels)),
      plan_(std::move(plan)),
      cases_(std::move(cases)) {}

std::vector<std::string> PreprocessedDataset::case_ids() const {
  std::vector<std::string> ids;
  for (const auto& c : cases_) ids.push_back(c.id);
  return ids;
}

std::vector<std::string> PreprocessedDataset::patient_ids() const {
  std::vector<std::string> ids;
  for (const auto& c : cases_) ids.push_back(c.patient_id);
  return ids;
}

std::vector<std::string> PreprocessedDataset::labelled_case_ids() const {
  std::vector<std::string> ids;
  for (const auto& c : cases_)
    if (c.labelled) ids.push_back(c.id);
  return ids;
}

fs::path PreprocessedDataset::case_file(const std::string& id) const { return case_path(root_, entry(id).id); }

const PreprocessedEntry& PreprocessedDataset::entry(const std::string& id) const {
  for (const auto& c : cases_)
    if (c.id == id) return c;
  std::vector<std::string> some;
  for (size_t i = 0; i < cases_.size() && i < 5; ++i) some.push_back(cases_[i].id);
  TF_THROW(InvalidArgument, "preprocessed dataset '", root_.string(), "': unknown case id '", id, "' (", cases_.size(),
           " cases, e.g. ", some, ")");
}

PreprocessedCase PreprocessedDataset::load_case(const std::string& id) const {
  const PreprocessedEntry& e = entry(id);
  const fs::path file = case_path(root_, e.id);
  const io::SafeTensors st = io::read_safetensors(file);
  const std::string where = "'" + file.string() + "'";
  const auto geom = st.metadata.find("geometry");
  TF_CHECK(geom != st.metadata.end(), FormatError, where, ": metadata 'geometry' is missing (not a preprocessed case?)");
  PreprocessedCase c;
  c.id = e.id;
  try {
    c.geometry = transforms::CaseGeometry::from_json(Json::parse(geom->second), where + " geometry");
  } catch (const nlohmann::json::exception& ex) {
    TF_THROW(FormatError, where, ": metadata 'geometry' is not valid JSON: ", ex.what());
  }
  c.image = st.at("image");
  const Size3& s = c.geometry.preprocessed.size;
  const int64_t channels = int64_t(plan_.channels.size());
  TF_CHECK(c.image.scalar_type() == torch::kFloat && c.image.dim() == 4 && c.image.size(0) == channels &&
               c.image.size(1) == s[2] && c.image.size(2) == s[1] && c.image.size(3) == s[0],
           FormatError, where, ": tensor 'image' must be float32 [", channels, ", ", s[2], ", ", s[1], ", ", s[0],
           "], got ", c.image.sizes().vec());
  if (e.labelled) {
    TF_CHECK(st.contains("label"), FormatError, where, ": dataset.json says the case is labelled but 'label' is missing");
    c.label = st.at("label");
    TF_CHECK(c.label.scalar_type() == torch::kUInt8 && c.label.dim() == 4 && c.label.size(0) == 1 &&
                 c.label.sizes().slice(1) == c.image.sizes().slice(1),
             FormatError, where, ": tensor 'label' must be uint8 [1, ", s[2], ", ", s[1], ", ", s[0], "], got ",
             c.label.sizes().vec());
  }
  return c;
}

CaseStats PreprocessedDataset::case_stats(const std::string& id) const {
  const fs::path file = case_path(root_, entry(id).id);
  const io::SafeTensors header = io::read_safetensors_header(file);
  const auto it = header.metadata.find("stats");
  TF_CHECK(it != header.metadata.end(), FormatError, "'", file.string(), "': metadata 'stats' is missing");
  return CaseStats::from_json(Json::parse(it->second), "stats of '" + file.string() + "'");
}

PreprocessedDataset open_preprocessed(const fs::path& dir) {
  const fs::path dj = dir / "dataset.json";
  require_exists(dj, "preprocessed dataset file");
  const Json j = read_json(dj);
  const std::string context = "'" + dj.string() + "'";
  int version = 0;
  std::string name, format, source, reference;
  std::vector<std::string> channel_names;
  Json labels, plan_json, cases;
  int64_t num_cases = 0, num_labelled = 0;
  JsonReader r(j, context);
  r.require("format_version", version).require("name", name).require("format", format).get("source", source);
  r.require("channel_names", channel_names).require("reference_channel", reference).require("labels", labels);
  r.require("plan", plan_json).require("num_cases", num_cases).get("num_labelled", num_labelled);
  r.require("cases", cases);
  r.finish();
  TF_CHECK(version == 1, FormatError, context, ": format_version must be 1, got ", version);
  PreprocessPlan plan = PreprocessPlan::from_json(plan_json, context + " plan");
  TF_CHECK(plan.channel_names() == channel_names, FormatError, context, ": channel_names ", channel_names,
           " differ from the plan's ", plan.channel_names());
  const fs::path plan_file = dir / "plan.json";
  if (fs::exists(plan_file))
    TF_CHECK(read_plan(plan_file).digest() == plan.digest(), FormatError, "'", plan_file.string(),
             "' differs from the plan in ", context, " (hint: preprocess again into a fresh folder)");
  std::vector<LabelClass> label_list;
  TF_CHECK(labels.is_object(), FormatError, context, ": 'labels' must map names to values");
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    TF_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 0 && it.value().get<int64_t>() <= 255,
             FormatError, context, ": label '", it.key(), "' must have an integer value from 0 to 255");
    label_list.push_back({it.key(), it.value().get<int>()});
  }
  std::sort(label_list.begin(), label_list.end(), [](const LabelClass& a, const LabelClass& b) { return a.value < b.value; });
  std::vector<PreprocessedEntry> entries;
  std::vector<std::string> missing;
  TF_CHECK(cases.is_array(), FormatError, context, ": 'cases' must be a list");
  for (const auto& c : cases) {
    PreprocessedEntry e;
    std::string file;
    JsonReader cr(c, context + " case");
    cr.require("id", e.id).require("patient_id", e.patient_id).require("labelled", e.labelled).get("file", file);
    cr.finish();
    // Case ids name files in cases/: a copied or edited dataset.json must not point outside it.
    const std::string unsafe = unsafe_name_reason(e.id);
    TF_CHECK(unsafe.empty(), FormatError, context, ": case id '", e.id, "' ", unsafe);
    std::error_code ec;
    if (!fs::exists(case_path(dir, e.id), ec)) missing.push_back(e.id);
    entries.push_back(std::move(e));
  }
  TF_CHECK(int64_t(entries.size()) == num_cases, FormatError, context, ": num_cases is ", num_cases, " but ",
           entries.size(), " cases are listed");
  TF_CHECK(missing.empty(), DatasetError, "preprocessed dataset '", dir.string(), "': ", missing.size(),
           " case file(s) are missing from cases/, e.g. '", missing.empty() ? "" : missing.front(),
           ".safetensors' (hint: run teachformer preprocess again)");
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return PreprocessedDataset(dir, name, format, std::move(label_list), std::move(plan), std::move(entries));
}

}  // namespace teachformer::data
