// The preprocessed dataset on disk, written once by `teachformer preprocess` and read by training and prediction:
//   <dir>/cases/<id>.safetensors  tensors `image` float32 [C, Z, Y, X] and (labelled cases) `label` uint8
//                                 [1, Z, Y, X]; __metadata__: case_id, patient_id, plan_digest, channels,
//                                 geometry (CaseGeometry JSON), stats (CaseStats JSON of the raw intensities)
//   <dir>/plan.json               the PreprocessPlan (written before any case)
//   <dir>/dataset.json            name, format, channel names, labels, plan, cases [{id, patient_id, labelled, file}]
//   <dir>/fingerprint.json        DatasetFingerprint, aggregated from the written cases' stats
// Every file is written atomically, so a case file that exists and carries the current plan digest is finished.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "teachformer/data/dataset.hpp"
#include "teachformer/data/fingerprint.hpp"
#include "teachformer/data/plan.hpp"
#include "teachformer/data/preprocess.hpp"

namespace teachformer::data {

/// Settings of preprocess_dataset.
struct PreprocessOptions {
  /// How the plan is made.
  PlanOptions plan;
  /// Use this plan as it is instead of making one (e.g. another dataset's plan, so that extra cases are
  /// preprocessed exactly like the training data); its channels must be the dataset's.
  std::optional<PreprocessPlan> fixed_plan;
  /// Cases processed at once, each worker with 1 torch thread (<= 1: one case at a time with all threads).
  int workers = 1;
};

/// What preprocess_dataset did.
struct PreprocessSummary {
  /// The plan used (also in <dir>/plan.json).
  PreprocessPlan plan;
  /// Cases written now.
  int64_t written = 0;
  /// Finished cases found and left alone.
  int64_t skipped = 0;
  /// Warnings raised while processing (lesion-count changes), one line each.
  std::vector<std::string> warnings;
  /// Wall time in seconds.
  double seconds = 0.0;
};

/// Preprocesses every case (labelled and unlabelled) of `dataset` into `out_dir` (see the file comment). A dataset
/// with scanning errors is refused (DatasetError: run verify). An existing <dir>/plan.json must equal the new plan
/// (with --ct-window fingerprint its window is reused), otherwise DatasetError. Finished cases are skipped. With
/// CtWindow::Fingerprint and no existing plan, a first pass computes the CT foreground percentiles. Cases that
/// fail are reported one line each and make the call throw DatasetError after the others are written;
/// dataset.json and fingerprint.json are written only when every case is finished.
PreprocessSummary preprocess_dataset(const Dataset& dataset, const std::filesystem::path& out_dir,
                                     const PreprocessOptions& options);

/// True when `file` is a complete case file written with the plan whose digest is `plan_digest`.
bool is_finished_case(const std::filesystem::path& file, const std::string& plan_digest);

/// One case of a preprocessed dataset.
struct PreprocessedEntry {
  /// Case id.
  std::string id;
  /// Patient id (for grouped splits).
  std::string patient_id;
  /// True when the case file holds a label.
  bool labelled = false;
};

/// Reader of a preprocessed dataset (see open_preprocessed).
class PreprocessedDataset {
 public:
  /// Use open_preprocessed.
  PreprocessedDataset(std::filesystem::path root, std::string name, std::string format,
                      std::vector<LabelClass> labels, PreprocessPlan plan, std::vector<PreprocessedEntry> cases);
  /// The folder.
  const std::filesystem::path& root() const { return root_; }
  /// Dataset name.
  const std::string& name() const { return name_; }
  /// Source layout name ("hecktor2021", ...).
  const std::string& format() const { return format_; }
  /// Channel names in order.
  std::vector<std::string> channel_names() const { return plan_.channel_names(); }
  /// Label classes (background first).
  const std::vector<LabelClass>& labels() const { return labels_; }
  /// The plan the cases were made with.
  const PreprocessPlan& plan() const { return plan_; }
  /// All cases, sorted by id.
  const std::vector<PreprocessedEntry>& cases() const { return cases_; }
  /// Case ids in order.
  std::vector<std::string> case_ids() const;
  /// Patient ids aligned with case_ids().
  std::vector<std::string> patient_ids() const;
  /// Ids of the labelled cases.
  std::vector<std::string> labelled_case_ids() const;
  /// Path of a case file.
  std::filesystem::path case_file(const std::string& id) const;
  /// Loads one case: image [C, Z, Y, X] float32, label [1, Z, Y, X] uint8 (undefined when unlabelled), geometry.
  /// InvalidArgument for an unknown id; FormatError when the file does not match dataset.json.
  PreprocessedCase load_case(const std::string& id) const;
  /// The raw-intensity statistics stored with a case.
  CaseStats case_stats(const std::string& id) const;

 private:
  const PreprocessedEntry& entry(const std::string& id) const;
  std::filesystem::path root_;
  std::string name_;
  std::string format_;
  std::vector<LabelClass> labels_;
  PreprocessPlan plan_;
  std::vector<PreprocessedEntry> cases_;
};

/// Opens <dir>/dataset.json (strict keys), checks plan.json agrees and that every case file exists.
PreprocessedDataset open_preprocessed(const std::filesystem::path& dir);

}  // namespace teachformer::data
