#include "teachformer/data/splits.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/random.hpp"

namespace teachformer::data {

std::vector<Fold> make_grouped_folds(const std::vector<std::string>& case_ids,
                                     const std::vector<std::string>& patient_ids, int n_folds, uint64_t seed) {
  TF_CHECK(n_folds >= 2, InvalidArgument, "splits: number of folds must be at least 2, got ", n_folds);
  TF_CHECK(patient_ids.empty() || patient_ids.size() == case_ids.size(), InvalidArgument,
           "splits: ", case_ids.size(), " case ids but ", patient_ids.size(), " patient ids");
  std::map<std::string, std::vector<std::string>> groups;
  for (size_t i = 0; i < case_ids.size(); ++i)
    groups[patient_ids.empty() ? case_ids[i] : patient_ids[i]].push_back(case_ids[i]);
  TF_CHECK(int(groups.size()) >= n_folds, InvalidArgument, "splits: ", groups.size(), " patients (", case_ids.size(),
           " cases) cannot fill ", n_folds, " folds; use fewer folds (--folds) or more cases");
  std::vector<std::pair<std::string, std::vector<std::string>>> order(groups.begin(), groups.end());
  Rng rng(seed);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[size_t(rng.below(int64_t(i)))]);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
  std::vector<std::vector<std::string>> val(static_cast<size_t>(n_folds));
  for (const auto& [patient, cases] : order) {
    size_t best = 0;
    for (size_t f = 1; f < val.size(); ++f)
      if (val[f].size() < val[best].size()) best = f;
    val[best].insert(val[best].end(), cases.begin(), cases.end());
  }
  std::vector<Fold> folds(static_cast<size_t>(n_folds));
  for (size_t f = 0; f < folds.size(); ++f) {
    std::sort(val[f].begin(), val[f].end());
    folds[f].val = val[f];
    for (size_t g = 0; g < val.size(); ++g)
      if (g != f) folds[f].train.insert(folds[f].train.end(), val[g].begin(), val[g].end());
    std::sort(folds[f].train.begin(), folds[f].train.end());
  }
  return folds;
}

void write_splits(const std::filesystem::path& path, const std::vector<Fold>& folds) {
  Json j = Json::array();
  for (const auto& f : folds) j.push_back({{"train", f.train}, {"val", f.val}});
  write_json(path, j, 4);
}

std::vector<Fold> read_splits(const std::filesystem::path& path) {
  const Json j = read_json(path);
  TF_CHECK(j.is_array() && !j.empty(), FormatError, "'", path.string(),
           "' must be a non-empty list of {\"train\": [...], \"val\": [...]}");
  std::vector<Fold> folds;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& e = j[i];
    TF_CHECK(e.is_object() && e.contains("train") && e.contains("val") && e["train"].is_array() &&
                 e["val"].is_array(),
             FormatError, "'", path.string(), "': fold ", i, " must be {\"train\": [...], \"val\": [...]}");
    Fold f;
    try {
      f.train = e["train"].get<std::vector<std::string>>();
      f.val = e["val"].get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception&) {
      TF_THROW(FormatError, "'", path.string(), "': fold ", i, " must list case ids as strings");
    }
    folds.push_back(std::move(f));
  }
  return folds;
}

void validate_fold(const Fold& fold, const std::vector<std::string>& case_ids,
                   const std::vector<std::string>& patient_ids) {
  const std::set<std::string> known(case_ids.begin(), case_ids.end());
  std::vector<std::string> unknown, both;
  const std::set<std::string> val(fold.val.begin(), fold.val.end());
  for (const auto* list : {&fold.train, &fold.val})
    for (const auto& id : *list)
      if (!known.count(id)) unknown.push_back(id);
  for (const auto& id : fold.train)
    if (val.count(id)) both.push_back(id);
  TF_CHECK(unknown.empty(), DatasetError, "splits: unknown case id(s) ", unknown,
           " (splits_final.json does not match this dataset)");
  TF_CHECK(both.empty(), DatasetError, "splits: case(s) ", both, " are in both train and val");
  if (patient_ids.size() == case_ids.size()) {
    std::map<std::string, std::string> patient_of;
    for (size_t i = 0; i < case_ids.size(); ++i) patient_of[case_ids[i]] = patient_ids[i];
    std::set<std::string> val_patients;
    for (const auto& id : fold.val) val_patients.insert(patient_of[id]);
    std::vector<std::string> leaked;
    for (const auto& id : fold.train)
      if (val_patients.count(patient_of[id])) leaked.push_back(id + " (patient " + patient_of[id] + ")");
    TF_CHECK(leaked.empty(), DatasetError, "splits: training case(s) ", leaked,
             " share a patient with validation cases (patient leakage)");
  }
}

}  // namespace teachformer::data
