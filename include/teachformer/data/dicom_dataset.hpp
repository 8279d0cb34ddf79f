// DICOM studies as a dataset: a folder of patients (any depth, any file names) whose image series are found by
// their headers and matched to channels by Modality and, for MR, by SeriesDescription. One case per study
// (StudyInstanceUID); its id is the first folder under the root that holds the study, else the root's name.
// See docs/dicom.md.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "teachformer/data/dataset.hpp"
#include "teachformer/io/dicom.hpp"

namespace teachformer::data {

/// How the series of a channel are recognised.
struct DicomChannelRule {
  /// Channel name ("CT", "PET", "T2W", ...).
  std::string channel;
  /// Modality the series must have ("CT", "PT", "MR").
  std::string modality;
  /// ECMAScript regular expression searched in SeriesDescription, case-insensitive; empty matches any.
  std::string description_pattern;
};

/// Default rules for channel names: CT -> CT; PET/PT -> PT; T2W/T2 -> MR 't2' (not ADC/b-value series);
/// ADC -> MR 'adc|apparent'; HBV/DWI -> MR 'hbv|calc_bval|b-?1[0-9]{3}|high.?b' (PI-CAI's sequence names);
/// any other name -> MR with the name itself as the pattern.
std::vector<DicomChannelRule> default_dicom_channel_rules(const std::vector<std::string>& channel_names);

/// Settings of open_dicom_dataset.
struct DicomDatasetOptions {
  /// Channels to match, in order; empty: CT and PET when the studies hold CT/PT, else T2W, ADC and HBV for MR.
  std::vector<std::string> channel_names;
  /// Pattern overrides "CHANNEL=REGEX" (or "CHANNEL=MODALITY:REGEX"), applied to the default rules.
  std::vector<std::string> series_patterns;
  /// How series are read (PET SUV override) by the cases' load().
  io::DicomReadOptions read;
};

/// Applies "CHANNEL=REGEX" / "CHANNEL=MODALITY:REGEX" overrides; InvalidArgument for a malformed one, an unknown
/// channel or a bad regular expression.
void apply_series_patterns(std::vector<DicomChannelRule>& rules, const std::vector<std::string>& overrides);

/// Scans `root` and matches each study's series to the channels. Non-image objects (SR, RTSTRUCT, SEG) become
/// warnings ("skipped"); a folder mixing series, a study without a series for a channel or with several that match
/// one (listing the series found with their descriptions) become errors and the case is left out. Cases are
/// unlabelled; a *bbox*.csv at the root gives HECKTOR bounding boxes by case id.
Dataset open_dicom_dataset(const std::filesystem::path& root, const DicomDatasetOptions& options = {});

/// What convert_dicom wrote.
struct DicomConversion {
  /// Cases written, in id order.
  std::vector<std::string> cases;
  /// Problems of the scan (skipped objects, studies that could not be matched: those are not written).
  std::vector<Problem> problems;
};

/// Writes every complete study under `input` as nnU-Net files: `out`/imagesTs/{case}_{XXXX}.nii.gz (float32; PET in
/// SUVbw; each channel on its own grid) and `out`/dataset.json with the channel names in order.
DicomConversion convert_dicom(const std::filesystem::path& input, const std::filesystem::path& out,
                              const DicomDatasetOptions& options = {});

/// True when `root` holds a DICOM Part 10 file at any depth.
bool contains_dicom(const std::filesystem::path& root);

}  // namespace teachformer::data
