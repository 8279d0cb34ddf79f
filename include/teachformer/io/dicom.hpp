// DICOM: image series in (CT, PT, MR; PET converted to SUVbw), Segmentation objects out, phantom series for tests.
// This header is free of DCMTK; DCMTK stays inside src/io/dicom_*.cpp. A build without DCMTK (TEACHFORMER_WITH_DCMTK
// OFF or DCMTK not found) keeps these functions; they throw IoError saying so.
//
// A series is read from its own folder (one SeriesInstanceUID per folder, any file names, any number of files).
// Geometry follows DICOM's patient frame, which is LPS like the rest of TeachFormer: index axis x runs along a row
// (ImageOrientationPatient's first vector), y down the columns, z along the slice normal; slices are ordered by
// their position along the normal, never by file name or InstanceNumber.
#pragma once
#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "teachformer/io/image_io.hpp"
#include "teachformer/io/volume.hpp"

namespace teachformer::io {

/// True when this build reads and writes DICOM (DCMTK found at configure time).
bool dicom_available();
/// DCMTK version string, or "none (built without DCMTK)".
std::string dcmtk_version();

/// True when `path` is a DICOM Part 10 file ("DICM" after the 128-byte preamble). Reads 132 bytes.
bool is_dicom_file(const std::filesystem::path& path);
/// True when `folder` directly holds at least one DICOM Part 10 file (sub-folders are not looked at).
bool is_dicom_folder(const std::filesystem::path& folder);

/// What the headers of one image series say (read without pixel data).
struct DicomSeriesInfo {
  /// The folder holding the series (one series per folder).
  std::filesystem::path folder;
  /// Its image files, sorted by name (not by position).
  std::vector<std::filesystem::path> files;
  /// Series, study and frame-of-reference UIDs.
  std::string series_uid, study_uid, frame_of_reference_uid;
  /// Modality (CT, PT, MR, ...), SeriesDescription, PatientID and SeriesNumber as written.
  std::string modality, description, patient_id, series_number;
  /// "CT 'desc' (N files) in <folder>" for messages.
  std::string to_string() const;
};

/// A DICOM file that was not used, with the reason (non-image objects such as SR or RTSTRUCT, unreadable files).
struct DicomNote {
  /// The file or folder concerned.
  std::filesystem::path file;
  /// Why it was skipped.
  std::string message;
};

/// The image series found under a folder.
struct DicomScan {
  /// One entry per folder that holds image files of exactly one series, sorted by folder.
  std::vector<DicomSeriesInfo> series;
  /// Files skipped (non-image objects) with a note; not errors.
  std::vector<DicomNote> skipped;
  /// Folders that cannot be used as they are (several series in one folder, unreadable headers): one line each.
  std::vector<DicomNote> errors;
};

/// Scans `root` (any depth, any file names) for DICOM image series by reading headers only. Files that are not
/// DICOM Part 10 are ignored silently; non-image DICOM objects (SR, RTSTRUCT, SEG, presentation states, ...) are
/// listed in `skipped`; a folder mixing several series is listed in `errors`.
DicomScan scan_dicom(const std::filesystem::path& root);
/// The single series held directly in `folder` (IoError/FormatError naming the folder otherwise).
DicomSeriesInfo dicom_series_in(const std::filesystem::path& folder);

/// How PET is converted when reading.
struct DicomReadOptions {
  /// When set, PET voxels in Bq/mL are multiplied by this factor (g/Bq, i.e. weight / decayed dose) instead of the
  /// factor computed from the header: the documented override for a header with missing or implausible tags.
  std::optional<double> suv_scale;
};

/// The PET header values SUVbw needs. Times are seconds since 1970-01-01 (local clock as written in the file).
struct PetSuvTags {
  /// Units (0054,1001): "BQML" is converted, "GML" (already SUVbw) is kept, "CNTS" needs a Philips SUV factor.
  std::string units;
  /// DecayCorrection (0054,1102): "START" (decay corrected to the scan start), "ADMIN" (to the injection), "NONE".
  std::string decay_correction;
  /// PatientWeight (0010,1030) in kg.
  std::optional<double> weight_kg;
  /// RadionuclideTotalDose (0018,1074) in Bq, at the injection time.
  std::optional<double> injected_dose_bq;
  /// RadionuclideHalfLife (0018,1075) in s.
  std::optional<double> half_life_s;
  /// RadiopharmaceuticalStartDateTime (0018,1078), else StartTime (0018,1072) on the series date.
  std::optional<double> injection_time_s;
  /// The time the data are decay corrected to: SeriesDate/Time for START (AcquisitionDate/Time when the series
  /// time is missing or later than the acquisition); the slice's AcquisitionDate/Time for NONE.
  std::optional<double> reference_time_s;
  /// Philips private SUV scale factor (7053,1000), used when Units is CNTS.
  std::optional<double> philips_suv_factor;
};

/// Factor that turns the rescaled stored values of a PET slice into SUVbw:
///   BQML:  weight [g] / (dose [Bq] * 2^(-(t_ref - t_inj) / T_half))   (START, NONE)
///          weight [g] / dose [Bq]                                        (ADMIN)
///   GML:   1
///   CNTS:  the Philips factor (7053,1000)
/// Throws FormatError naming the tag, its value and `where` (the file) for a missing or implausible value
/// (weight outside 1..500 kg, dose outside 1 MBq..50 GBq, half-life outside 1 min..100 days, an injection after the
/// reference time or more than 24 h before it); the message names --suv-scale as the override.
double suv_factor(const PetSuvTags& tags, const std::string& where);

/// Seconds since 1970-01-01 of a DICOM DA ("YYYYMMDD") and TM ("HHMMSS.FFFFFF", "HH:MM:SS" accepted) pair;
/// nullopt when either is malformed.
std::optional<double> dicom_date_time_seconds(const std::string& date, const std::string& time);
/// Seconds since 1970-01-01 of a DICOM DT ("YYYYMMDDHHMMSS.FFFFFF", a "+HHMM" offset is ignored); nullopt if bad.
std::optional<double> dicom_datetime_seconds(const std::string& datetime);

/// Reads a series as float32 [1, Z, Y, X] with its geometry: stored values rescaled per slice (slope/intercept);
/// CT in HU, MR as stored, PET in SUVbw. Decodes the transfer syntaxes DCMTK decodes (uncompressed, RLE, JPEG,
/// JPEG-LS); refuses others naming the syntax. FormatError naming the file for: gantry tilt or non-orthogonal
/// orientation, orientations that differ between slices, a gap in the slice positions (missing slices), uneven
/// spacing, two slices at one position, slices of different size, multi-frame or colour images.
Volume read_dicom_series(const DicomSeriesInfo& series, const DicomReadOptions& options = {});
/// read_dicom_series(dicom_series_in(folder), options).
Volume read_dicom_series(const std::filesystem::path& folder, const DicomReadOptions& options = {});
/// The grid of a series (size and geometry) from the headers alone, with the same checks as read_dicom_series.
Grid read_dicom_grid(const DicomSeriesInfo& series);

/// A coded concept (code value, coding scheme designator, code meaning), e.g. {"86049000", "SCT", "Neoplasm, Primary"}.
struct DicomCode {
  std::string value, scheme, meaning;
};

/// One segment of a Segmentation object: the voxels of the label map equal to `label`.
struct DicomSegment {
  /// Label value in the label map (>= 1); the segment number is its position in the list (1-based).
  int label = 1;
  /// SegmentLabel, e.g. "GTVp".
  std::string name;
  /// SegmentDescription.
  std::string description;
  /// SegmentedPropertyCategoryCodeSequence (CID 7150) and SegmentedPropertyTypeCodeSequence (CID 7151).
  DicomCode category, type;
  /// Recommended display colour, sRGB 0..255.
  std::array<int, 3> rgb{255, 0, 0};
};

/// The segment description TeachFormer uses for a label name: "tumor"/"tumour"/"GTVt"/"GTVp" -> primary tumour
/// (SCT 86049000 "Neoplasm, Primary"), "GTVn"/"node" -> lymph node metastasis (SCT 14799000 "Neoplasm, Metastatic"),
/// "lesion"/"csPCa"/"prostate" -> prostate lesion (SCT 399068003 "Malignant tumor of prostate"), anything else ->
/// SCT 52988006 "Lesion"; category SCT 49755003 "Morphologically Altered Structure" throughout.
DicomSegment segment_for_label(int label, const std::string& name);

/// Settings of write_dicom_seg.
struct DicomSegOptions {
  /// One segment per label value, in segment-number order.
  std::vector<DicomSegment> segments;
  /// Algorithm name and version (SegmentAlgorithmName, SoftwareVersions, content creator).
  std::string algorithm_name = "TeachFormer";
  std::string algorithm_version;
  /// SeriesDescription of the new series.
  std::string series_description = "TeachFormer segmentation";
};

/// Writes a binary DICOM Segmentation object for `labels` (uint8 [1, Z, Y, X]) computed on `reference`: the
/// patient, study and frame of reference of the reference series, its own grid (labels must lie on it, FormatError
/// otherwise), one frame per segment and slice holding that segment, each frame referencing its source SOP
/// instance (derivation image) and the series in the Common Instance Reference module. A segment with no voxel
/// keeps its description and gets one empty frame, so the object still lists every label. Written atomically.
void write_dicom_seg(const std::filesystem::path& path, const Volume& labels, const DicomSeriesInfo& reference,
                     const DicomSegOptions& options);
/// Reads a Segmentation object back onto `reference`'s grid as uint8 [1, Z, Y, X] holding each segment's label
/// (segment number k -> `labels_of_segments[k-1]`, or k when empty); frames are mapped to slices by position.
Volume read_dicom_seg(const std::filesystem::path& path, const DicomSeriesInfo& reference,
                      const std::vector<int>& labels_of_segments = {});

/// read_image_info for a folder holding one series: its grid, one channel, float32 after rescaling.
ImageInfo dicom_image_info(const std::filesystem::path& folder);

/// Header values of a series written by write_dicom_series.
struct DicomSeriesHeader {
  /// "CT", "PT" or "MR".
  std::string modality;
  /// SeriesDescription.
  std::string description;
  /// Patient and study.
  std::string patient_id, patient_name, study_uid, frame_of_reference_uid;
  /// Series UID (generated when empty) and SeriesNumber.
  std::string series_uid;
  int series_number = 1;
  /// StudyDate/SeriesDate (YYYYMMDD), SeriesTime/AcquisitionTime (HHMMSS).
  std::string date = "20240101", series_time = "100000";
  /// PET only: weight (kg), injected dose (Bq), half-life (s), injection time (HHMMSS on `date`), DecayCorrection.
  double weight_kg = 75, injected_dose_bq = 370e6, half_life_s = 6586.2;
  std::string injection_time = "090000", decay_correction = "START";
  /// Written with this transfer syntax UID (default explicit VR little endian); "1.2.840.10008.1.2.5" = RLE.
  std::string transfer_syntax;
};

/// Writes `volume` (float32 [1, Z, Y, X]) as one file per slice into `folder`: CT as int16 HU, MR as uint16,
/// PET (given in SUVbw) converted to Bq/mL with the header's weight, dose and decay from injection to the series
/// time, stored as int16 with a per-slice rescale slope. Returns the files written.
std::vector<std::filesystem::path> write_dicom_series(const std::filesystem::path& folder, const Volume& volume,
                                                      const DicomSeriesHeader& header);

/// A new globally unique DICOM UID.
std::string new_dicom_uid();

}  // namespace teachformer::io
