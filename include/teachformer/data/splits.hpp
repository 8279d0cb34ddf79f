// Cross-validation splits grouped by patient, in nnU-Net's splits_final.json format.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace teachformer::data {

/// One fold: training and validation case ids.
struct Fold {
  std::vector<std::string> train;
  std::vector<std::string> val;
};

/// Splits cases into `n_folds` folds such that all cases of one patient land in the same validation fold.
/// Patients are shuffled with `seed` (deterministic), then assigned largest group first to the fold with the
/// fewest validation cases. Requires at least `n_folds` patients (InvalidArgument otherwise).
std::vector<Fold> make_grouped_folds(const std::vector<std::string>& case_ids,
                                     const std::vector<std::string>& patient_ids, int n_folds = 5,
                                     uint64_t seed = 12345);

/// Writes `[{"train": [...], "val": [...]}, ...]` atomically (nnU-Net's splits_final.json).
void write_splits(const std::filesystem::path& path, const std::vector<Fold>& folds);
/// Reads splits_final.json; errors name the file and the malformed entry.
std::vector<Fold> read_splits(const std::filesystem::path& path);

/// Checks a fold against the available cases: every id known, no case in both train and val, and no patient in
/// both (when patient ids are given). Throws DatasetError naming the offending ids.
void validate_fold(const Fold& fold, const std::vector<std::string>& case_ids,
                   const std::vector<std::string>& patient_ids = {});

}  // namespace teachformer::data
