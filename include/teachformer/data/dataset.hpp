// Raw dataset layouts users already have, read into one Dataset description:
//   nnunet       nnU-Net v2 raw: dataset.json + imagesTr/{case}_{XXXX}{ext}, labelsTr/{case}{ext}, imagesTs/
//   msd          Medical Segmentation Decathlon: dataset.json (modality, labels, training [{image, label}], test)
//                with multichannel images as 4D NIfTI
//   hecktor2021  hecktor_nii/{PID}_ct.nii.gz, _pt.nii.gz, _gtvt.nii.gz + *bbox*.csv (PatientID,x1,x2,y1,y2,z1,z2);
//                also the 2020 per-patient folders hecktor_nii/{PID}/{PID}_ct.nii.gz, _pt, _ct_gtvt
//   hecktor2022  imagesTr/{Centre}-{NNN}__CT.nii.gz, __PT.nii.gz, labelsTr/{Centre}-{NNN}.nii.gz (GTVp 1, GTVn 2)
//   picai        picai_public_images_fold*/{patient}/{patient}_{study}_{t2w,adc,hbv}.mha +
//                picai_labels/csPCa_lesion_delineations/human_expert/resampled/{patient}_{study}.nii.gz
//   dicom        DICOM studies: a folder per patient with its series at any depth (see data/dicom_dataset.hpp and
//                docs/dicom.md); detected when no other layout matches and a DICOM file is found
// See docs/datasets.md for how each is detected.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "teachformer/data/case.hpp"

namespace teachformer::data {

/// The supported raw layouts.
enum class DatasetFormat { NnUNet, Msd, Hecktor2021, Hecktor2022, Picai, Dicom };

/// "nnunet", "msd", "hecktor2021", "hecktor2022", "picai" or "dicom".
std::string to_string(DatasetFormat format);
/// Parses the names of to_string (InvalidArgument listing them otherwise).
DatasetFormat format_from_string(const std::string& name);
/// All format names, for help texts.
std::vector<std::string> format_names();

/// How serious a dataset problem is.
enum class Severity {
  Warning,  ///< suspicious but usable (e.g. an empty label)
  Error,    ///< the case or dataset cannot be used as it is
};

/// One problem found in a dataset: printed as one line "<severity>: <file>: <message> (hint: <hint>)".
struct Problem {
  /// Error or warning.
  Severity severity = Severity::Error;
  /// The file (relative to the dataset root when inside it) or folder concerned.
  std::string file;
  /// What is wrong, with expected and found values.
  std::string message;
  /// How to fix it (may be empty).
  std::string hint;
  /// The one-line form.
  std::string to_string() const;
};

/// A label class: name and value in the label maps.
struct LabelClass {
  /// Name ("background", "tumor", ...).
  std::string name;
  /// Value in the label maps (after binarisation for PI-CAI).
  int value = 0;
};

/// What a raw dataset holds.
struct Dataset {
  /// The layout.
  DatasetFormat format = DatasetFormat::NnUNet;
  /// Dataset name (dataset.json "name", else the folder name).
  std::string name;
  /// Root folder.
  std::filesystem::path root;
  /// Channel names in order.
  std::vector<std::string> channel_names;
  /// Label classes by increasing value, background first.
  std::vector<LabelClass> labels;
  /// Values the label files may contain before binarisation (PI-CAI: 0..5); equal to the label values otherwise.
  std::vector<int> raw_label_values;
  /// Image file ending (".nii.gz", ".mha", ...).
  std::string file_ending;
  /// Complete cases with a label file, sorted by id.
  std::vector<Case> training;
  /// Complete cases without a label (test cases, PI-CAI cases without a human-expert delineation), sorted by id.
  std::vector<Case> unlabelled;
  /// Problems found while scanning (incomplete cases are listed here and left out of the case lists).
  std::vector<Problem> problems;

  /// Name of the reference channel (CT, else T2W/T2, else channel 0; see reference_channel_index).
  std::string reference_channel() const;
  /// Number of problems with Severity::Error.
  int error_count() const;
  /// Training then unlabelled cases.
  std::vector<Case> all_cases() const;
};

/// Detects the layout of `root` (see docs/datasets.md); throws DatasetError saying what was looked for when no
/// layout matches.
DatasetFormat detect_format(const std::filesystem::path& root);

/// Scans a dataset (file names and dataset.json/CSV only; images are not opened). `format` overrides detection.
/// A missing root, an unreadable dataset.json or bbox CSV throw; everything else becomes a Problem.
Dataset open_dataset(const std::filesystem::path& root, std::optional<DatasetFormat> format = std::nullopt);

}  // namespace teachformer::data
