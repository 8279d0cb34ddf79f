#include "teachformer/data/dicom_dataset.hpp"

#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "data/detail/scan.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/io/image_io.hpp"

namespace teachformer::data {
namespace {

std::string upper(std::string s) {
  for (auto& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string sanitize_id(const std::string& s) {
  std::string out;
  for (char c : s) out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ? c : '_');
  return out;
}

bool matches(const DicomChannelRule& rule, const io::DicomSeriesInfo& s) {
  if (upper(s.modality) != upper(rule.modality)) return false;
  if (rule.description_pattern.empty()) return true;
  const std::regex re(rule.description_pattern, std::regex::ECMAScript | std::regex::icase);
  return std::regex_search(s.description, re);
}

std::string list_series(const std::vector<const io::DicomSeriesInfo*>& series, const fs::path& root) {
  std::string out;
  for (const auto* s : series)
    out += std::string(out.empty() ? "" : "; ") + s->modality + " '" + s->description + "' in " +
           detail::display_path(root, s->folder);
  return "[" + out + "]";
}

}  // namespace

std::vector<DicomChannelRule> default_dicom_channel_rules(const std::vector<std::string>& channel_names) {
  std::vector<DicomChannelRule> rules;
  for (const auto& name : channel_names) {
    const std::string n = upper(name);
    if (n == "CT")
      rules.push_back({name, "CT", ""});
    else if (n == "PET" || n == "PT")
      rules.push_back({name, "PT", ""});
    else if (n == "T2W" || n == "T2")
      rules.push_back({name, "MR", "^(?!.*(adc|apparent|bval|hbv|diff|dwi)).*t2"});
    else if (n == "ADC")
      rules.push_back({name, "MR", "adc|apparent"});
    else if (n == "HBV" || n == "DWI")
      rules.push_back({name, "MR", "hbv|calc_?bval|b-?1[0-9]{3}|high.?b"});
    else
      rules.push_back({name, "MR", name});
  }
  return rules;
}

void apply_series_patterns(std::vector<DicomChannelRule>& rules, const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    TF_CHECK(eq != std::string::npos && eq > 0, InvalidArgument, "--series-pattern: expected CHANNEL=REGEX or ",
             "CHANNEL=MODALITY:REGEX, got '", o, "'");
    const std::string channel = o.substr(0, eq);
    std::string pattern = o.substr(eq + 1), modality;
    const auto colon = pattern.find(':');
    if (colon != std::string::npos && colon <= 2 && colon > 0) {
      modality = upper(pattern.substr(0, colon));
      pattern = pattern.substr(colon + 1);
    }
    try {
      (void)std::regex(pattern, std::regex::ECMAScript | std::regex::icase);
    } catch (const std::regex_error& e) {
      TF_THROW(InvalidArgument, "--series-pattern '", o, "': bad regular expression (", e.what(), ")");
    }
    auto it = std::find_if(rules.begin(), rules.end(), [&](const DicomChannelRule& r) { return r.channel == channel; });
    std::vector<std::string> names;
    for (const auto& r : rules) names.push_back(r.channel);
    TF_CHECK(it != rules.end(), InvalidArgument, "--series-pattern '", o, "': unknown channel '", channel,
             "'; the channels are ", names);
    it->description_pattern = pattern;
    if (!modality.empty()) it->modality = modality;
  }
}

DicomConversion convert_dicom(const fs::path& input, const fs::path& out, const DicomDatasetOptions& options) {
  const Dataset ds = open_dicom_dataset(input, options);
  DicomConversion result;
  result.problems = ds.problems;
  for (const auto& c : ds.all_cases()) {
    const LoadedCase loaded = c.load();
    for (size_t k = 0; k < loaded.channels.size(); ++k) {
      char suffix[16];
      std::snprintf(suffix, sizeof suffix, "_%04d", int(k));
      io::write_image(out / "imagesTs" / (c.id + suffix + ".nii.gz"), loaded.channels[k], io::PixelType::Float32);
    }
    result.cases.push_back(c.id);
  }
  TF_CHECK(!result.cases.empty(), DatasetError, "'", input.string(), "': no complete DICOM study to convert",
           ds.problems.empty() ? std::string() : "; " + ds.problems.front().to_string());
  Json channel_names = Json::object();
  for (size_t k = 0; k < ds.channel_names.size(); ++k) channel_names[std::to_string(k)] = ds.channel_names[k];
  write_json(out / "dataset.json", {{"name", ds.name},
                                    {"description", "converted from DICOM by teachformer convert (PET in SUVbw)"},
                                    {"channel_names", channel_names},
                                    {"labels", {{"background", 0}}},
                                    {"numTraining", 0},
                                    {"file_ending", ".nii.gz"}});
  return result;
}

bool contains_dicom(const fs::path& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return false;
  int looked = 0;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator() && looked < 100000; it.increment(ec), ++looked) {
    if (ec) break;
    if (it->is_regular_file(ec) && io::is_dicom_file(it->path())) return true;
  }
  return false;
}

Dataset open_dicom_dataset(const fs::path& root, const DicomDatasetOptions& options) {
  require_exists(root, "DICOM folder");
  Dataset ds;
  ds.format = DatasetFormat::Dicom;
  ds.root = root;
  ds.name = fs::absolute(root).lexically_normal().filename().string();
  if (ds.name.empty()) ds.name = fs::absolute(root).lexically_normal().parent_path().filename().string();
  ds.file_ending = "";
  ds.labels = {{"background", 0}};
  ds.raw_label_values = {0};
  const io::DicomScan scan = io::scan_dicom(root);
  for (const auto& n : scan.skipped) detail::add_problem(ds, Severity::Warning, n.file, n.message);
  for (const auto& n : scan.errors) detail::add_problem(ds, Severity::Error, n.file, n.message);

  std::vector<std::string> channels = options.channel_names;
  if (channels.empty()) {
    std::set<std::string> modalities;
    for (const auto& s : scan.series) modalities.insert(upper(s.modality));
    if (modalities.count("CT")) channels.push_back("CT");
    if (modalities.count("PT")) channels.push_back("PET");
    if (channels.empty() && modalities.count("MR")) channels = {"T2W", "ADC", "HBV"};
  }
  ds.channel_names = channels;
  auto rules = default_dicom_channel_rules(channels);
  apply_series_patterns(rules, options.series_patterns);

  // Studies, in folder order.
  std::vector<std::string> order;
  std::map<std::string, std::vector<const io::DicomSeriesInfo*>> studies;
  for (const auto& s : scan.series) {
    const std::string key = s.study_uid.empty() ? s.folder.string() : s.study_uid;
    if (!studies.count(key)) order.push_back(key);
    studies[key].push_back(&s);
  }
  std::map<std::string, transforms::BoundingBox> boxes;
  if (const auto csvs = detail::find_bbox_csvs({root}); !csvs.empty()) boxes = detail::read_bbox_csvs(csvs, ds);
  std::set<std::string> used_ids;
  const fs::path norm_root = fs::absolute(root).lexically_normal();
  for (const auto& key : order) {
    const auto& series = studies[key];
    // Id: the first folder under the root shared by every series folder of the study (root/patient/.../series);
    // series folders directly under the root make the root itself the study: its PatientID, else its name.
    std::string id;
    {
      std::optional<std::string> head;
      bool shared = true;
      for (const auto* s : series) {
        const fs::path rel = fs::absolute(s->folder).lexically_normal().lexically_relative(norm_root);
        const auto n = std::distance(rel.begin(), rel.end());
        const std::string h = n >= 2 ? rel.begin()->string() : std::string();
        if (h.empty() || (head && *head != h)) shared = false;
        head = h;
      }
      if (shared && head)
        id = *head;
      else
        id = series.front()->patient_id.empty() ? ds.name : series.front()->patient_id;
    }
    id = sanitize_id(id);
    if (used_ids.count(id)) {
      int k = 2;
      while (used_ids.count(id + "_" + std::to_string(k))) ++k;
      id += "_" + std::to_string(k);
    }
    used_ids.insert(id);

    Case c;
    c.id = id;
    c.patient_id = series.front()->patient_id.empty() ? id : sanitize_id(series.front()->patient_id);
    c.dicom = options.read;
    bool complete = true;
    std::vector<const io::DicomSeriesInfo*> all(series.begin(), series.end());
    for (const auto& rule : rules) {
      std::vector<const io::DicomSeriesInfo*> hits;
      for (const auto* s : series)
        if (matches(rule, *s)) hits.push_back(s);
      const std::string want =
          rule.modality + (rule.description_pattern.empty()
                               ? std::string()
                               : " with SeriesDescription matching /" + rule.description_pattern + "/");
      if (hits.empty()) {
        detail::add_problem(ds, Severity::Error, series.front()->folder.parent_path(),
                            "case '" + id + "': no series for channel '" + rule.channel + "' (" + want +
                                "); series found: " + list_series(all, root),
                            "--series-pattern " + rule.channel + "=REGEX chooses it by description");
        complete = false;
      } else if (hits.size() > 1) {
        detail::add_problem(ds, Severity::Error, series.front()->folder.parent_path(),
                            "case '" + id + "': " + std::to_string(hits.size()) + " series match channel '" +
                                rule.channel + "' (" + want + "): " + list_series(hits, root),
                            "remove the extra series or give --series-pattern " + rule.channel + "=REGEX");
        complete = false;
      } else {
        c.channel_names.push_back(rule.channel);
        c.channel_files.push_back(hits.front()->folder);
      }
    }
    if (!complete) continue;
    if (auto it = boxes.find(id); it != boxes.end()) c.bbox = it->second;
    ds.unlabelled.push_back(std::move(c));
  }
  detail::finish_cases(ds);
  if (ds.unlabelled.empty())
    detail::add_problem(ds, Severity::Error, root,
                        scan.series.empty() ? "no DICOM image series found" : "no complete DICOM study found",
                        "see docs/dicom.md for how series are matched to channels");
  return ds;
}

}  // namespace teachformer::data
