// One case of a raw dataset: where its channel images, label and (HECKTOR) bounding box are, and how to load them.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "teachformer/core/geometry.hpp"
#include "teachformer/io/dicom.hpp"
#include "teachformer/io/volume.hpp"
#include "teachformer/transforms/case_geometry.hpp"

namespace teachformer::data {

/// A case loaded into memory.
struct LoadedCase {
  /// One Volume per channel, float32 [1, Z, Y, X], each on its own grid, in channel order.
  std::vector<io::Volume> channels;
  /// uint8 [1, Z, Y, X] (binarised when the case says so); absent for unlabelled cases.
  std::optional<io::Volume> label;
  /// Index of the reference channel (see reference_channel_index).
  int reference_index = 0;
  /// Grid of the reference channel.
  Grid reference_grid() const { return channels.at(size_t(reference_index)).grid(); }
};

/// A case of a raw dataset (files only; nothing is read until load()).
struct Case {
  /// Case identifier, unique in the dataset (file-name stem, e.g. "CHGJ007" or "10000_1000000").
  std::string id;
  /// Patient identifier: cases of one patient stay in one fold. Equal to `id` where the layout has no patients.
  std::string patient_id;
  /// Channel names in order (e.g. {"CT", "PET"}, {"T2W", "ADC", "HBV"}).
  std::vector<std::string> channel_names;
  /// One image file per channel, or a single 4D file holding all channels (MSD) when there are several names; a
  /// folder is a DICOM series (read with `dicom`).
  std::vector<std::filesystem::path> channel_files;
  /// Label map file (absent for unlabelled / test cases).
  std::optional<std::filesystem::path> label_file;
  /// HECKTOR bounding box (world mm, LPS).
  std::optional<transforms::BoundingBox> bbox;
  /// True when label values >= 1 are all foreground (PI-CAI: 1 = AI-derived lesion, 2..5 = ISUP grade).
  bool binarize_label = false;
  /// How channels that are DICOM series folders are read (PET SUV override).
  io::DicomReadOptions dicom;

  /// True when a label file is known.
  bool labelled() const { return label_file.has_value(); }
  /// True when all channels live in one 4D file.
  bool multichannel_file() const { return channel_files.size() == 1 && channel_names.size() > 1; }
  /// Reads every channel (float32) and the label (uint8, binarised if asked). Errors name the file; a 4D file
  /// with the wrong number of channels is a DatasetError.
  LoadedCase load() const;
};

/// Index of the reference channel among `channel_names`: the first named CT, else the first named T2W (or T2),
/// else 0. Every other channel and the label are resampled onto its grid.
int reference_channel_index(const std::vector<std::string>& channel_names);

}  // namespace teachformer::data
