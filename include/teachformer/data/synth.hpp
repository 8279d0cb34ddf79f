// Built-in multimodal phantoms, written in the raw layouts users have, deterministic by seed.
//   petct: head-and-neck-like CT (HU, int16, ~1x1x3 mm, 96x96x32 by default) and PET (SUV, float32, 4 mm, its own
//          grid with another origin); tumour label on the CT grid; bbox CSV (64 mm edge by default). One modality
//          alone is ambiguous: PET-hot brain and bilateral glands without a CT mass, enhancing CT masses without
//          uptake; only the tumour is both.
//   mri:   prostate-like T2W (0.5x0.5x3 mm, 128x128x16 by default), ADC and HBV (2x2x3 mm, offset origins, some
//          slightly rotated); csPCa lesions dark on T2W and ADC and bright on HBV, with mimics that fool one
//          sequence (BPH nodules dark on T2W only, inflammation dark on ADC only); about half the cases negative;
//          label value = ISUP grade 2..5 (binarised to 1 in the nnunet and msd layouts, which need consecutive labels).
// Randomness: std::mt19937_64 (its output is fixed by the C++ standard) with hand-written uniform/normal
// transforms, one generator per case seeded from (seed, case index), so results do not depend on the standard
// library or on the number of workers.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "teachformer/data/dataset.hpp"
#include "teachformer/io/volume.hpp"
#include "teachformer/transforms/case_geometry.hpp"

namespace teachformer::data {

/// Which phantom.
enum class PhantomKind { PetCt, Mri };
/// "petct" or "mri".
std::string to_string(PhantomKind kind);
/// Parses "petct" or "mri" (InvalidArgument otherwise).
PhantomKind phantom_kind_from_string(const std::string& name);

/// How hard the phantoms are to segment.
///  - Normal: the tumour (lesion) stands out in every channel; each channel has one kind of look-alike.
///  - Hard: lower tumour contrast, noisier PET (DWI), look-alikes whose CT contrast and PET uptake (T2W and ADC
///    values) overlap the tumour's, placed next to it: only the combination of the channels tells them apart.
enum class PhantomDifficulty { Normal, Hard };
/// "normal" or "hard".
std::string to_string(PhantomDifficulty difficulty);
/// Parses the names of to_string (InvalidArgument listing them otherwise).
PhantomDifficulty phantom_difficulty_from_string(const std::string& name);

/// Settings of synthesize / make_phantom.
struct SynthOptions {
  /// Phantom kind. Default petct.
  PhantomKind kind = PhantomKind::PetCt;
  /// Layout written: petct: nnunet, msd, hecktor2021 (default) or dicom; mri: nnunet, msd, picai (default) or dicom.
  /// dicom writes {id}/{channel}/IM*.dcm studies (PET in Bq/mL with its decay tags), labels/{id}.nii.gz and, for
  /// petct, bbox.csv.
  std::optional<DatasetFormat> layout;
  /// Number of cases. Default 8.
  int cases = 8;
  /// Difficulty. Default normal.
  PhantomDifficulty difficulty = PhantomDifficulty::Normal;
  /// Seed of every random choice.
  uint64_t seed = 0;
  /// Reference grid size (x, y, z) in voxels: CT for petct (default 96x96x32, grown to fit the bbox), T2W for mri
  /// (default 128x128x16).
  std::optional<Size3> size;
  /// petct: bbox edge in mm (default 64, so a 1 mm preprocessing gives 64^3; 144 for the real HECKTOR size).
  double bbox_mm = 64.0;
  /// The last `unlabelled` cases get no label file (test cases). Default 0.
  int unlabelled = 0;
  /// Cases generated at once. Default 1.
  int workers = 1;

  /// The layout to write (the explicit one or the kind's default).
  DatasetFormat resolved_layout() const;
  /// The reference grid size after defaults.
  Size3 resolved_size() const;
  /// Throws InvalidArgument naming the option for a bad combination or value.
  void validate() const;
};

/// One generated case in memory.
struct Phantom {
  /// Case id ("CHGJ001"-like for petct, "{patient}_{study}" for mri).
  std::string id;
  /// Patient id (mri: several studies of one patient share it).
  std::string patient_id;
  /// Channel names: {"CT", "PET"} or {"T2W", "ADC", "HBV"}.
  std::vector<std::string> channel_names;
  /// One Volume per channel [1, Z, Y, X] float32, each on its own grid (CT values are integral HU).
  std::vector<io::Volume> channels;
  /// Label on the reference grid, uint8 [1, Z, Y, X]: 1 = tumour (petct), ISUP 2..5 (mri).
  io::Volume label;
  /// petct: the bounding box (world mm, LPS) that contains the tumour.
  std::optional<transforms::BoundingBox> bbox;
  /// Masks [Z, Y, X] bool on the reference grid of the structures: petct "tumour", "pet_only", "ct_only";
  /// mri "lesion", "t2w_only", "adc_only".
  std::map<std::string, torch::Tensor> structures;
  /// Number of lesions drawn (tumours or csPCa lesions).
  int lesions = 0;
};

/// Generates case `index` (0-based) of the dataset `options` describes.
Phantom make_phantom(const SynthOptions& options, int index);

/// What synthesize wrote for one case.
struct SynthCase {
  /// Case id.
  std::string id;
  /// Patient id.
  std::string patient_id;
  /// True when a label file was written.
  bool labelled = false;
  /// Channel names in order.
  std::vector<std::string> channel_names;
  /// Grid of each channel as written (nnunet/msd: every channel on the reference grid).
  std::vector<Grid> channel_grids;
  /// Grid of the label (the reference grid).
  Grid label_grid;
  /// petct: the bounding box written to the CSV (hecktor2021 layout only).
  std::optional<transforms::BoundingBox> bbox;
  /// Number of lesions.
  int lesions = 0;
};

/// What synthesize wrote.
struct SynthResult {
  /// Dataset root (= the output folder).
  std::filesystem::path root;
  /// The layout.
  DatasetFormat layout = DatasetFormat::Hecktor2021;
  /// Cases in index order.
  std::vector<SynthCase> cases;
};

/// Writes a phantom dataset into `out` (created; existing files of the same names are replaced atomically).
SynthResult synthesize(const std::filesystem::path& out, const SynthOptions& options);

}  // namespace teachformer::data
