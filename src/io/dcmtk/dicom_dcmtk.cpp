// io/dicom.hpp through DCMTK: series headers and pixels (dcmdata with the JPEG, JPEG-LS and RLE decoders),
// Segmentation objects (dcmseg/dcmfg/dcmiod). DCMTK's headers stay in this file.
#include "dcmtk/config/osconfig.h"

#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcrleerg.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmfg/fgderimg.h"
#include "dcmtk/dcmfg/fgfracon.h"
#include "dcmtk/dcmfg/fgpixmsr.h"
#include "dcmtk/dcmfg/fgplanor.h"
#include "dcmtk/dcmfg/fgplanpo.h"
#include "dcmtk/dcmfg/fgseg.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/dcmseg/segdoc.h"
#include "dcmtk/dcmseg/segment.h"
#include "dcmtk/dcmseg/segutils.h"
#include "dcmtk/oflog/oflog.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/io/dicom.hpp"

namespace teachformer::io {
namespace fs = std::filesystem;
namespace {

void init_dcmtk() {
  static std::once_flag once;
  std::call_once(once, [] {
    // DCMTK logs warnings about every odd header to stderr; TeachFormer reports what matters itself.
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
    DcmRLEEncoderRegistration::registerCodecs();
  });
}

std::string get_string(DcmItem& item, const DcmTagKey& tag) {
  OFString s;
  if (item.findAndGetOFStringArray(tag, s).good()) {
    std::string out = s.c_str();
    while (!out.empty() && out.back() == ' ') out.pop_back();
    while (!out.empty() && out.front() == ' ') out.erase(out.begin());
    return out;
  }
  return {};
}

std::optional<double> get_double(DcmItem& item, const DcmTagKey& tag, unsigned long pos = 0) {
  Float64 v = 0;
  if (item.findAndGetFloat64(tag, v, pos).good() && std::isfinite(v)) return v;
  OFString s;
  if (item.findAndGetOFString(tag, s, pos).good() && !s.empty()) {
    try {
      // "nan", "inf" and 1e999 are text stod accepts (or rejects by throwing) but no DICOM value means.
      const double d = std::stod(s.c_str());
      if (std::isfinite(d)) return d;
    } catch (const std::exception&) {
    }
  }
  return std::nullopt;
}

// Header of a file, pixel data not loaded.
std::unique_ptr<DcmFileFormat> load_header(const fs::path& file) {
  init_dcmtk();
  auto ff = std::make_unique<DcmFileFormat>();
  const OFCondition c =
      ff->loadFileUntilTag(file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect, DCM_PixelData);
  TF_CHECK(c.good(), FormatError, "'", file.string(), "': cannot read the DICOM header: ", c.text());
  return ff;
}

std::unique_ptr<DcmFileFormat> load_full(const fs::path& file) {
  init_dcmtk();
  auto ff = std::make_unique<DcmFileFormat>();
  const OFCondition c = ff->loadFile(file.c_str());
  TF_CHECK(c.good(), FormatError, "'", file.string(), "': cannot read the DICOM file: ", c.text());
  return ff;
}

const std::set<std::string>& non_image_modalities() {
  static const std::set<std::string> m{"SR",  "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SEG", "PR",   "KO",
                                       "REG", "DOC",      "AU",     "ECG",    "HD",       "RWV", "PLAN", "FID"};
  return m;
}

// One slice's header values.
struct Slice {
  fs::path file;
  std::string sop_instance_uid, sop_class_uid;
  std::array<double, 3> ipp{};
  std::array<double, 6> iop{};
  bool has_ipp = false, has_iop = false;
  uint16_t rows = 0, cols = 0;
  std::array<double, 2> pixel_spacing{1, 1};  // row spacing (between rows), column spacing
  double slice_thickness = 0;
  std::string ipp_text[3];
  int frames = 1;
};

Slice read_slice(const fs::path& file, DcmDataset& ds) {
  Slice s;
  s.file = file;
  s.sop_instance_uid = get_string(ds, DCM_SOPInstanceUID);
  s.sop_class_uid = get_string(ds, DCM_SOPClassUID);
  ds.findAndGetUint16(DCM_Rows, s.rows);
  ds.findAndGetUint16(DCM_Columns, s.cols);
  s.has_ipp = true;
  for (int a = 0; a < 3; ++a) {
    const auto v = get_double(ds, DCM_ImagePositionPatient, unsigned(a));
    if (!v)
      s.has_ipp = false;
    else
      s.ipp[size_t(a)] = *v;
    OFString t;
    if (ds.findAndGetOFString(DCM_ImagePositionPatient, t, unsigned(a)).good()) s.ipp_text[a] = t.c_str();
  }
  s.has_iop = true;
  for (int a = 0; a < 6; ++a) {
    const auto v = get_double(ds, DCM_ImageOrientationPatient, unsigned(a));
    if (!v)
      s.has_iop = false;
    else
      s.iop[size_t(a)] = *v;
  }
  for (int a = 0; a < 2; ++a)
    if (const auto v = get_double(ds, DCM_PixelSpacing, unsigned(a))) s.pixel_spacing[size_t(a)] = *v;
  if (const auto v = get_double(ds, DCM_SliceThickness)) s.slice_thickness = *v;
  // Clamped before the cast: a huge NumberOfFrames is as unsupported as any count above one.
  if (const auto v = get_double(ds, DCM_NumberOfFrames)) s.frames = int(std::clamp(*v, -1.0, 1e6));
  return s;
}

Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// Slices in position order plus the grid they span; throws for every geometry the grid model cannot hold.
struct SortedSeries {
  std::vector<Slice> slices;
  Grid grid;
};

SortedSeries sort_slices(std::vector<Slice> slices, const fs::path& folder) {
  TF_CHECK(!slices.empty(), FormatError, "'", folder.string(), "': no image slice");
  const std::string where = "'" + folder.string() + "'";
  const Slice& first = slices.front();
  for (const auto& s : slices) {
    TF_CHECK(s.frames <= 1, FormatError, "'", s.file.string(), "': multi-frame images (NumberOfFrames ", s.frames,
             ") are not supported; expected one slice per file");
    TF_CHECK(s.has_ipp && s.has_iop, FormatError, "'", s.file.string(),
             "': ImagePositionPatient (0020,0032) or ImageOrientationPatient (0020,0037) is missing; cannot place "
             "the slice");
    TF_CHECK(s.rows == first.rows && s.cols == first.cols, FormatError, where, ": slices of different size: '",
             first.file.filename().string(), "' is ", first.cols, "x", first.rows, ", '", s.file.filename().string(),
             "' is ", s.cols, "x", s.rows, " (hint: the folder may mix series or acquisitions)");
    for (int a = 0; a < 6; ++a)
      TF_CHECK(std::abs(s.iop[size_t(a)] - first.iop[size_t(a)]) < 1e-4, FormatError, where,
               ": inconsistent orientation: ImageOrientationPatient of '", s.file.filename().string(), "' differs ",
               "from '", first.file.filename().string(), "' (hint: the folder may mix series or localizers)");
    TF_CHECK(std::abs(s.pixel_spacing[0] - first.pixel_spacing[0]) < 1e-4 &&
                 std::abs(s.pixel_spacing[1] - first.pixel_spacing[1]) < 1e-4,
             FormatError, where, ": PixelSpacing differs between slices ('", s.file.filename().string(), "')");
  }
  TF_CHECK(first.rows > 0 && first.cols > 0, FormatError, "'", first.file.string(), "': Rows x Columns is ",
           first.rows, "x", first.cols, "; expected a non-empty image");
  TF_CHECK(first.pixel_spacing[0] > 0 && first.pixel_spacing[1] > 0, FormatError, "'", first.file.string(),
           "': PixelSpacing (0028,0030) is ", first.pixel_spacing[0], "\\", first.pixel_spacing[1],
           "; expected positive numbers (mm)");
  const Vec3 r{first.iop[0], first.iop[1], first.iop[2]}, c{first.iop[3], first.iop[4], first.iop[5]};
  TF_CHECK(std::abs(dot(r, r) - 1) < 1e-3 && std::abs(dot(c, c) - 1) < 1e-3 && std::abs(dot(r, c)) < 1e-3, FormatError,
           "'", first.file.string(), "': ImageOrientationPatient is not two orthogonal unit vectors");
  const Vec3 n = cross(r, c);
  auto pos = [&](const Slice& s) { return dot(Vec3{s.ipp[0], s.ipp[1], s.ipp[2]}, n); };
  std::stable_sort(slices.begin(), slices.end(), [&](const Slice& a, const Slice& b) { return pos(a) < pos(b); });
  double dz = first.slice_thickness > 0 ? first.slice_thickness : 1.0;
  if (slices.size() > 1) {
    std::vector<double> gaps;
    for (size_t k = 1; k < slices.size(); ++k) {
      const double g = pos(slices[k]) - pos(slices[k - 1]);
      TF_CHECK(g > 1e-3, FormatError, where, ": two slices at the same position ", fmt(pos(slices[k])), " mm ('",
               slices[k - 1].file.filename().string(), "' and '", slices[k].file.filename().string(),
               "') (hint: the folder may mix acquisitions or time points)");
      gaps.push_back(g);
      Vec3 d{slices[k].ipp[0] - slices[k - 1].ipp[0], slices[k].ipp[1] - slices[k - 1].ipp[1],
             slices[k].ipp[2] - slices[k - 1].ipp[2]};
      const Vec3 lateral{d[0] - g * n[0], d[1] - g * n[1], d[2] - g * n[2]};
      const double off = std::sqrt(dot(lateral, lateral));
      TF_CHECK(off <= 1e-3 * g + 1e-3, FormatError, where, ": gantry tilt or sheared slices: consecutive slices ('",
               slices[k - 1].file.filename().string(), "', '", slices[k].file.filename().string(), "') are offset ",
               fmt(off), " mm across the slice normal (", fmt(std::atan2(off, g) * 180 / M_PI),
               " degrees); resample the series to an orthogonal grid first");
    }
    std::vector<double> sorted = gaps;
    std::sort(sorted.begin(), sorted.end());
    dz = sorted[sorted.size() / 2];
    for (size_t k = 0; k < gaps.size(); ++k) {
      const double g = gaps[k];
      if (g > 1.5 * dz) {
        TF_THROW(FormatError, where, ": missing slices: a gap of ", fmt(g), " mm between '",
                 slices[k].file.filename().string(), "' and '", slices[k + 1].file.filename().string(),
                 "' where the spacing is ", fmt(dz), " mm (about ", long(std::lround(g / dz)) - 1,
                 " slice(s) missing)");
      }
      TF_CHECK(std::abs(g - dz) <= std::max(0.01, 0.01 * dz), FormatError, where, ": uneven slice spacing: ", fmt(g),
               " mm between '", slices[k].file.filename().string(), "' and '", slices[k + 1].file.filename().string(),
               "', ", fmt(dz), " mm elsewhere");
    }
  }
  SortedSeries out;
  out.grid.size = {int64_t(first.cols), int64_t(first.rows), int64_t(slices.size())};
  // PixelSpacing is (between rows, between columns): x (along a row) uses the column spacing.
  out.grid.geometry.spacing = {first.pixel_spacing[1], first.pixel_spacing[0], dz};
  out.grid.geometry.origin = {slices.front().ipp[0], slices.front().ipp[1], slices.front().ipp[2]};
  out.grid.geometry.direction = {r[0], c[0], n[0], r[1], c[1], n[1], r[2], c[2], n[2]};
  out.slices = std::move(slices);
  return out;
}

SortedSeries sorted_headers(const DicomSeriesInfo& series) {
  std::vector<Slice> slices;
  for (const auto& f : series.files) {
    auto ff = load_header(f);
    slices.push_back(read_slice(f, *ff->getDataset()));
  }
  return sort_slices(std::move(slices), series.folder);
}

// SUV factor of one PET slice.
double slice_suv_factor(DcmDataset& ds, const fs::path& file, double earliest_acquisition) {
  PetSuvTags t;
  t.units = get_string(ds, DCM_Units);
  t.decay_correction = get_string(ds, DCM_DecayCorrection);
  t.weight_kg = get_double(ds, DCM_PatientWeight);
  const std::string series_date = get_string(ds, DCM_SeriesDate);
  const std::string study_date = get_string(ds, DCM_StudyDate);
  const std::string acq_date = get_string(ds, DCM_AcquisitionDate);
  DcmItem* rp = nullptr;
  if (ds.findAndGetSequenceItem(DCM_RadiopharmaceuticalInformationSequence, rp, 0).good() && rp) {
    t.injected_dose_bq = get_double(*rp, DCM_RadionuclideTotalDose);
    t.half_life_s = get_double(*rp, DCM_RadionuclideHalfLife);
    const std::string start_dt = get_string(*rp, DCM_RadiopharmaceuticalStartDateTime);
    if (!start_dt.empty()) t.injection_time_s = dicom_datetime_seconds(start_dt);
    if (!t.injection_time_s) {
      const std::string day = !series_date.empty() ? series_date : !study_date.empty() ? study_date : acq_date;
      t.injection_time_s = dicom_date_time_seconds(day, get_string(*rp, DCM_RadiopharmaceuticalStartTime));
    }
  }
  const auto series_time = dicom_date_time_seconds(series_date, get_string(ds, DCM_SeriesTime));
  const auto acq_time =
      dicom_date_time_seconds(acq_date.empty() ? series_date : acq_date, get_string(ds, DCM_AcquisitionTime));
  const std::string dc = get_string(ds, DCM_DecayCorrection);
  if (dc == "NONE") {
    t.reference_time_s = acq_time;
  } else {
    t.reference_time_s = series_time;
    // Some scanners rewrite SeriesTime after the scan: the acquisition start is then the time decay refers to.
    if ((!series_time || *series_time > earliest_acquisition) && std::isfinite(earliest_acquisition))
      t.reference_time_s = earliest_acquisition;
  }
  // A start time without a date that reads as later than the scan was the evening before (scan after midnight).
  if (t.injection_time_s && t.reference_time_s && *t.injection_time_s > *t.reference_time_s &&
      get_string(*rp, DCM_RadiopharmaceuticalStartDateTime).empty())
    *t.injection_time_s -= 86400;
  const DcmTagKey philips(0x7053, 0x1000);
  t.philips_suv_factor = get_double(ds, philips);
  return suv_factor(t, file.string());
}

// Decodes one slice's stored values into `out` (rows*cols floats, rescaled).
void decode_slice(DcmDataset& ds, const fs::path& file, float* out, size_t count) {
  const E_TransferSyntax xfer = ds.getOriginalXfer();
  if (!ds.chooseRepresentation(EXS_LittleEndianExplicit, nullptr).good() ||
      !ds.canWriteXfer(EXS_LittleEndianExplicit)) {
    const DcmXfer x(xfer);
    TF_THROW(FormatError, "'", file.string(), "': transfer syntax '", x.getXferName(), "' (", x.getXferID(),
             ") cannot be decoded by this build (DCMTK decodes uncompressed, RLE, JPEG and JPEG-LS; hint: convert "
             "with gdcmconv --raw or dcmdjpeg)");
  }
  Uint16 spp = 1, bits_alloc = 0, bits_stored = 0, repr = 0;
  ds.findAndGetUint16(DCM_SamplesPerPixel, spp);
  ds.findAndGetUint16(DCM_BitsAllocated, bits_alloc);
  ds.findAndGetUint16(DCM_BitsStored, bits_stored);
  ds.findAndGetUint16(DCM_PixelRepresentation, repr);
  TF_CHECK(spp == 1, FormatError, "'", file.string(), "': SamplesPerPixel is ", spp,
           "; only greyscale images (1) are supported");
  if (bits_stored == 0) bits_stored = bits_alloc;
  const double slope = get_double(ds, DCM_RescaleSlope).value_or(1.0);
  const double intercept = get_double(ds, DCM_RescaleIntercept).value_or(0.0);
  auto convert = [&](int64_t raw) {
    if (repr == 1 && bits_stored < 32) {
      const int64_t sign = int64_t(1) << (bits_stored - 1);
      raw &= (int64_t(1) << bits_stored) - 1;
      raw = (raw ^ sign) - sign;
    } else if (bits_stored < 32) {
      raw &= (int64_t(1) << bits_stored) - 1;
    }
    return float(double(raw) * slope + intercept);
  };
  unsigned long n = 0;
  if (bits_alloc == 8) {
    const Uint8* p = nullptr;
    TF_CHECK(ds.findAndGetUint8Array(DCM_PixelData, p, &n).good() && p && n >= count, FormatError, "'", file.string(),
             "': pixel data missing or shorter than Rows x Columns");
    for (size_t i = 0; i < count; ++i) out[i] = convert(p[i]);
  } else if (bits_alloc == 16) {
    const Uint16* p = nullptr;
    TF_CHECK(ds.findAndGetUint16Array(DCM_PixelData, p, &n).good() && p && n >= count, FormatError, "'", file.string(),
             "': pixel data missing or shorter than Rows x Columns");
    for (size_t i = 0; i < count; ++i) out[i] = convert(p[i]);
  } else if (bits_alloc == 32) {
    DcmElement* e = nullptr;
    Uint32* p = nullptr;
    TF_CHECK(ds.findAndGetElement(DCM_PixelData, e).good() && e && e->getUint32Array(p).good() && p &&
                 e->getLength() / 4 >= count,
             FormatError, "'", file.string(), "': pixel data missing or shorter than Rows x Columns");
    for (size_t i = 0; i < count; ++i) out[i] = convert(repr == 1 ? int64_t(int32_t(p[i])) : int64_t(p[i]));
  } else {
    TF_THROW(FormatError, "'", file.string(), "': BitsAllocated ", bits_alloc, " is not supported (8, 16 or 32)");
  }
}

std::string uid() {
  char buf[100];
  dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
  return buf;
}

void check_ok(const OFCondition& c, const std::string& what) { TF_CHECK(c.good(), IoError, what, ": ", c.text()); }

std::string ds_text(double v) {
  // DS values hold at most 16 characters.
  char buf[32];
  for (int prec = 10; prec > 1; --prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strlen(buf) <= 16) break;
  }
  return buf;
}

// sRGB (0..255) -> DICOM scaled CIELab (0..65535), D65.
std::array<Uint16, 3> dicom_lab(const std::array<int, 3>& rgb) {
  double lin[3];
  for (int i = 0; i < 3; ++i) {
    const double c = rgb[size_t(i)] / 255.0;
    lin[i] = c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
  }
  const double X = (0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047;
  const double Y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  const double Z = (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883;
  auto f = [](double t) { return t > 0.008856 ? std::cbrt(t) : 7.787 * t + 16.0 / 116.0; };
  const double L = 116 * f(Y) - 16, a = 500 * (f(X) - f(Y)), b = 200 * (f(Y) - f(Z));
  auto clamp16 = [](double v) { return Uint16(std::clamp(std::lround(v), 0L, 65535L)); };
  return {clamp16(L * 65535.0 / 100.0), clamp16((a + 128) * 65535.0 / 255.0), clamp16((b + 128) * 65535.0 / 255.0)};
}

}  // namespace

bool dicom_available() { return true; }
std::string dcmtk_version() { return OFFIS_DCMTK_VERSION_STRING; }
std::string new_dicom_uid() { return uid(); }

DicomScan scan_dicom(const fs::path& root) {
  require_exists(root, "DICOM folder");
  DicomScan scan;
  std::map<fs::path, std::vector<fs::path>> by_folder;
  std::error_code ec;
  if (fs::is_regular_file(root) && is_dicom_file(root)) by_folder[root.parent_path()].push_back(root);
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec) && is_dicom_file(it->path())) by_folder[it->path().parent_path()].push_back(it->path());
  }
  for (auto& [folder, files] : by_folder) {
    std::sort(files.begin(), files.end());
    std::map<std::string, DicomSeriesInfo> series;
    for (const auto& f : files) {
      std::unique_ptr<DcmFileFormat> ff;
      try {
        ff = load_header(f);
      } catch (const Error& e) {
        scan.errors.push_back({f, e.what()});
        continue;
      }
      DcmDataset& ds = *ff->getDataset();
      const std::string modality = get_string(ds, DCM_Modality);
      Uint16 rows = 0;
      const bool image =
          ds.findAndGetUint16(DCM_Rows, rows).good() && rows > 0 && !non_image_modalities().count(modality);
      if (!image) {
        scan.skipped.push_back({f, "not an image (Modality " + (modality.empty() ? std::string("none") : modality) +
                                       ", SOP class " + get_string(ds, DCM_SOPClassUID) + "); skipped"});
        continue;
      }
      const std::string su = get_string(ds, DCM_SeriesInstanceUID);
      DicomSeriesInfo& s = series[su];
      if (s.files.empty()) {
        s.folder = folder;
        s.series_uid = su;
        s.study_uid = get_string(ds, DCM_StudyInstanceUID);
        s.frame_of_reference_uid = get_string(ds, DCM_FrameOfReferenceUID);
        s.modality = modality;
        s.description = get_string(ds, DCM_SeriesDescription);
        s.patient_id = get_string(ds, DCM_PatientID);
        s.series_number = get_string(ds, DCM_SeriesNumber);
      }
      s.files.push_back(f);
    }
    if (series.size() > 1) {
      std::string list;
      for (const auto& [u, s] : series)
        list += (list.empty() ? "" : "; ") + s.modality + " '" + s.description + "' (" +
                std::to_string(s.files.size()) + " files, series " + s.series_number + ")";
      scan.errors.push_back({folder, "mixed series in one folder: " + std::to_string(series.size()) + " series (" +
                                         list + "); put each series in its own folder"});
      continue;
    }
    if (series.size() == 1) scan.series.push_back(std::move(series.begin()->second));
  }
  return scan;
}

DicomSeriesInfo dicom_series_in(const fs::path& folder) {
  TF_CHECK(fs::is_directory(folder), IoError, "'", folder.string(), "' is not a folder of DICOM files");
  DicomScan scan;
  {
    // Only this folder, not its sub-folders.
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(folder))
      if (e.is_regular_file() && is_dicom_file(e.path())) files.push_back(e.path());
    TF_CHECK(!files.empty(), IoError, "'", folder.string(), "' holds no DICOM file");
  }
  const DicomScan found = scan_dicom(folder);
  for (const auto& s : found.series)
    if (s.folder == folder) scan.series.push_back(s);
  for (const auto& e : found.errors)
    if (e.file == folder || e.file.parent_path() == folder)
      TF_THROW(FormatError, "'", e.file.string(), "': ", e.message);
  TF_CHECK(scan.series.size() == 1, FormatError, "'", folder.string(), "' holds no DICOM image series");
  return scan.series.front();
}

Grid read_dicom_grid(const DicomSeriesInfo& series) { return sorted_headers(series).grid; }

Volume read_dicom_series(const fs::path& folder, const DicomReadOptions& options) {
  return read_dicom_series(dicom_series_in(folder), options);
}

Volume read_dicom_series(const DicomSeriesInfo& series, const DicomReadOptions& options) {
  const SortedSeries sorted = sorted_headers(series);
  const Size3 size = sorted.grid.size;
  const bool pet = series.modality == "PT";
  double earliest = std::numeric_limits<double>::infinity();
  if (pet) {
    for (const auto& s : sorted.slices) {
      auto ff = load_header(s.file);
      DcmDataset& ds = *ff->getDataset();
      const std::string d = get_string(ds, DCM_AcquisitionDate);
      const auto t =
          dicom_date_time_seconds(d.empty() ? get_string(ds, DCM_SeriesDate) : d, get_string(ds, DCM_AcquisitionTime));
      if (t) earliest = std::min(earliest, *t);
    }
  }
  torch::Tensor data = torch::empty({1, size[2], size[1], size[0]}, torch::kFloat);
  float* out = data.data_ptr<float>();
  const size_t per_slice = size_t(size[0] * size[1]);
  for (size_t k = 0; k < sorted.slices.size(); ++k) {
    const fs::path& file = sorted.slices[k].file;
    auto ff = load_full(file);
    DcmDataset& ds = *ff->getDataset();
    float* dst = out + k * per_slice;
    decode_slice(ds, file, dst, per_slice);
    if (pet) {
      const double f = options.suv_scale ? *options.suv_scale : slice_suv_factor(ds, file, earliest);
      if (!options.suv_scale && get_string(ds, DCM_Units) == "GML") continue;
      for (size_t i = 0; i < per_slice; ++i) dst[i] = float(double(dst[i]) * f);
    }
  }
  return Volume{data, sorted.grid.geometry};
}

std::vector<fs::path> write_dicom_series(const fs::path& folder, const Volume& volume, const DicomSeriesHeader& h) {
  init_dcmtk();
  TF_CHECK(volume.channels() == 1, InvalidArgument, "write_dicom_series: expected one channel, got ",
           volume.channels());
  TF_CHECK(h.modality == "CT" || h.modality == "PT" || h.modality == "MR", InvalidArgument,
           "write_dicom_series: modality must be CT, PT or MR, got '", h.modality, "'");
  fs::create_directories(folder);
  const Size3 size = volume.size();
  const Geometry& g = volume.geometry;
  const auto data = volume.data.to(torch::kFloat).contiguous();
  const float* src = data.data_ptr<float>();
  const std::string series_uid = h.series_uid.empty() ? uid() : h.series_uid;
  const char* sop_class = h.modality == "CT"   ? UID_CTImageStorage
                          : h.modality == "PT" ? UID_PositronEmissionTomographyImageStorage
                                               : UID_MRImageStorage;
  const bool rle = h.transfer_syntax == UID_RLELosslessTransferSyntax;
  // PET: SUV -> Bq/mL with the decay from injection to the series start.
  double bqml_per_suv = 1.0;
  if (h.modality == "PT") {
    const auto inj = dicom_date_time_seconds(h.date, h.injection_time);
    const auto ref = dicom_date_time_seconds(h.date, h.series_time);
    TF_CHECK(inj && ref, InvalidArgument, "write_dicom_series: bad date/time");
    const double decay = h.decay_correction == "ADMIN" ? 1.0 : std::exp2(-(*ref - *inj) / h.half_life_s);
    bqml_per_suv = h.injected_dose_bq * decay / (h.weight_kg * 1000.0);
  }
  const Vec3 r{g.direction[0], g.direction[3], g.direction[6]}, c{g.direction[1], g.direction[4], g.direction[7]};
  std::vector<fs::path> files;
  const size_t per_slice = size_t(size[0] * size[1]);
  for (int64_t k = 0; k < size[2]; ++k) {
    DcmFileFormat ff;
    DcmDataset* ds = ff.getDataset();
    const std::string sop_uid = uid();
    auto put = [&](const DcmTagKey& tag, const std::string& v) {
      check_ok(ds->putAndInsertString(tag, v.c_str()), "write_dicom_series: " + DcmTag(tag).toString().substr(0));
    };
    put(DCM_SpecificCharacterSet, "ISO_IR 100");
    put(DCM_ImageType, "ORIGINAL\\PRIMARY\\AXIAL");
    put(DCM_SOPClassUID, sop_class);
    put(DCM_SOPInstanceUID, sop_uid);
    put(DCM_StudyDate, h.date);
    put(DCM_SeriesDate, h.date);
    put(DCM_AcquisitionDate, h.date);
    put(DCM_ContentDate, h.date);
    put(DCM_StudyTime, h.series_time);
    put(DCM_SeriesTime, h.series_time);
    put(DCM_AcquisitionTime, h.series_time);
    put(DCM_ContentTime, h.series_time);
    put(DCM_AccessionNumber, "");
    put(DCM_Modality, h.modality);
    put(DCM_Manufacturer, "TeachFormer synth");
    put(DCM_ReferringPhysicianName, "");
    put(DCM_SeriesDescription, h.description);
    put(DCM_PatientName, h.patient_name.empty() ? h.patient_id : h.patient_name);
    put(DCM_PatientID, h.patient_id);
    put(DCM_PatientBirthDate, "");
    put(DCM_PatientSex, "O");
    put(DCM_PatientWeight, ds_text(h.weight_kg));
    put(DCM_StudyInstanceUID, h.study_uid);
    put(DCM_SeriesInstanceUID, series_uid);
    put(DCM_StudyID, "1");
    put(DCM_SeriesNumber, std::to_string(h.series_number));
    put(DCM_InstanceNumber, std::to_string(k + 1));
    put(DCM_FrameOfReferenceUID, h.frame_of_reference_uid);
    put(DCM_PositionReferenceIndicator, "");
    put(DCM_PatientPosition, "HFS");
    const Vec3 p = g.index_to_world({0, 0, double(k)});
    put(DCM_ImagePositionPatient, ds_text(p[0]) + "\\" + ds_text(p[1]) + "\\" + ds_text(p[2]));
    put(DCM_ImageOrientationPatient, ds_text(r[0]) + "\\" + ds_text(r[1]) + "\\" + ds_text(r[2]) + "\\" +
                                         ds_text(c[0]) + "\\" + ds_text(c[1]) + "\\" + ds_text(c[2]));
    put(DCM_PixelSpacing, ds_text(g.spacing[1]) + "\\" + ds_text(g.spacing[0]));
    put(DCM_SliceThickness, ds_text(g.spacing[2]));
    put(DCM_SliceLocation, ds_text(p[2]));
    put(DCM_PhotometricInterpretation, "MONOCHROME2");
    ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
    ds->putAndInsertUint16(DCM_Rows, Uint16(size[1]));
    ds->putAndInsertUint16(DCM_Columns, Uint16(size[0]));
    ds->putAndInsertUint16(DCM_BitsAllocated, 16);
    ds->putAndInsertUint16(DCM_BitsStored, 16);
    ds->putAndInsertUint16(DCM_HighBit, 15);
    const float* slice = src + size_t(k) * per_slice;
    std::vector<Uint16> pixels(per_slice);
    double slope = 1.0, intercept = 0.0;
    bool is_signed = false;
    if (h.modality == "CT") {
      intercept = -1024;
      for (size_t i = 0; i < per_slice; ++i)
        pixels[i] = Uint16(std::clamp(std::lround(slice[i] - intercept), 0L, 65535L));
      put(DCM_KVP, "120");
    } else if (h.modality == "PT") {
      is_signed = true;
      double mx = 0;
      for (size_t i = 0; i < per_slice; ++i) mx = std::max(mx, std::abs(double(slice[i]) * bqml_per_suv));
      slope = mx > 0 ? mx / 32767.0 : 1.0;
      slope = std::stod(ds_text(slope));  // what the header will hold
      for (size_t i = 0; i < per_slice; ++i)
        pixels[i] = Uint16(int16_t(std::clamp(std::lround(double(slice[i]) * bqml_per_suv / slope), -32768L, 32767L)));
      put(DCM_Units, "BQML");
      put(DCM_DecayCorrection, h.decay_correction);
      put(DCM_CorrectedImage, "ATTN\\DECY");
      put(DCM_SeriesType, "STATIC\\IMAGE");
      put(DCM_CountsSource, "EMISSION");
      put(DCM_FrameReferenceTime, "0");
      put(DCM_ActualFrameDuration, "300000");
      put(DCM_ImageIndex, std::to_string(k + 1));
      ds->putAndInsertUint16(DCM_NumberOfSlices, Uint16(size[2]));
      DcmItem* item = nullptr;
      check_ok(ds->findOrCreateSequenceItem(DCM_RadiopharmaceuticalInformationSequence, item, -2), "write PET");
      item->putAndInsertString(DCM_Radiopharmaceutical, "Fluorodeoxyglucose");
      item->putAndInsertString(DCM_RadiopharmaceuticalStartTime, h.injection_time.c_str());
      item->putAndInsertString(DCM_RadiopharmaceuticalStartDateTime, (h.date + h.injection_time).c_str());
      item->putAndInsertString(DCM_RadionuclideTotalDose, ds_text(h.injected_dose_bq).c_str());
      item->putAndInsertString(DCM_RadionuclideHalfLife, ds_text(h.half_life_s).c_str());
      item->putAndInsertString(DCM_RadionuclidePositronFraction, "0.97");
    } else {
      // MR values as they are when integral (T2W, ADC), else scaled to int16 with a per-slice slope (b-value maps).
      bool integral = true;
      double mx = 0;
      for (size_t i = 0; i < per_slice; ++i) {
        integral = integral && slice[i] == std::round(slice[i]) && std::abs(slice[i]) <= 32767;
        mx = std::max(mx, std::abs(double(slice[i])));
      }
      is_signed = true;
      if (!integral && mx > 0) slope = std::stod(ds_text(mx / 32767.0));
      for (size_t i = 0; i < per_slice; ++i)
        pixels[i] = Uint16(int16_t(std::clamp(std::lround(double(slice[i]) / slope), -32768L, 32767L)));
      put(DCM_ScanningSequence, "SE");
      put(DCM_SequenceVariant, "NONE");
      put(DCM_ScanOptions, "");
      put(DCM_MRAcquisitionType, "2D");
      put(DCM_EchoTime, "100");
      put(DCM_EchoTrainLength, "1");
    }
    ds->putAndInsertUint16(DCM_PixelRepresentation, is_signed ? 1 : 0);
    put(DCM_RescaleIntercept, ds_text(intercept));
    put(DCM_RescaleSlope, ds_text(slope));
    if (h.modality != "MR") put(DCM_RescaleType, h.modality == "CT" ? "HU" : "BQML");
    check_ok(ds->putAndInsertUint16Array(DCM_PixelData, pixels.data(), (unsigned long)per_slice), "pixel data");
    E_TransferSyntax xfer = EXS_LittleEndianExplicit;
    if (rle) {
      xfer = EXS_RLELossless;
      check_ok(ds->chooseRepresentation(xfer, nullptr), "write_dicom_series: RLE encoding");
    }
    char name[32];
    std::snprintf(name, sizeof name, "IM%05lld.dcm", (long long)(k + 1));
    const fs::path file = folder / name;
    check_ok(ff.saveFile(file.c_str(), xfer), "'" + file.string() + "': cannot write");
    files.push_back(file);
  }
  return files;
}

void write_dicom_seg(const fs::path& path, const Volume& labels, const DicomSeriesInfo& reference,
                     const DicomSegOptions& options) {
  init_dcmtk();
  const SortedSeries ref = sorted_headers(reference);
  TF_CHECK(labels.channels() == 1, InvalidArgument, "write_dicom_seg: expected a label map with one channel");
  TF_CHECK(labels.grid().approx_equal(ref.grid, 1e-3, 1e-4), FormatError, "'", path.string(),
           "': the label map is not on the grid of the reference series ", reference.to_string(), ": ",
           labels.grid().to_string(), " vs ", ref.grid.to_string());
  TF_CHECK(!options.segments.empty(), InvalidArgument, "write_dicom_seg: no segment to write");
  const Size3 size = ref.grid.size;
  const Uint16 rows = Uint16(size[1]), cols = Uint16(size[0]);
  const std::string what = "'" + path.string() + "'";

  const std::string version = options.algorithm_version.empty() ? "unknown" : options.algorithm_version;
  IODGeneralEquipmentModule::EquipmentInfo eq("TeachFormer", options.algorithm_name.c_str(), "1", version.c_str());
  ContentIdentificationMacro ci("1", "SEGMENTATION", options.series_description.c_str(), "TeachFormer^Algorithm");
  DcmSegmentation* raw = nullptr;
  check_ok(DcmSegmentation::createBinarySegmentation(raw, rows, cols, eq, ci), what + ": cannot create the object");
  std::unique_ptr<DcmSegmentation> seg(raw);

  {
    auto ff = load_header(ref.slices.front().file);
    check_ok(seg->importFromSourceImage(*ff->getDataset(), OFTrue), what + ": cannot take over the patient/study");
  }
  check_ok(seg->getSeries().setSeriesInstanceUID(uid().c_str()), what);
  check_ok(seg->getSeries().setSeriesNumber("900"), what);
  check_ok(seg->getSeries().setSeriesDescription(options.series_description.c_str()), what);

  FGPixelMeasures measures;
  check_ok(measures.setPixelSpacing(
               (ds_text(ref.grid.geometry.spacing[1]) + "\\" + ds_text(ref.grid.geometry.spacing[0])).c_str()),
           what);
  check_ok(measures.setSliceThickness(ds_text(ref.grid.geometry.spacing[2]).c_str()), what);
  check_ok(measures.setSpacingBetweenSlices(ds_text(ref.grid.geometry.spacing[2]).c_str()), what);
  check_ok(seg->addForAllFrames(measures), what);
  FGPlaneOrientationPatient orient;
  const auto& d = ref.grid.geometry.direction;
  check_ok(orient.setImageOrientationPatient(ds_text(d[0]).c_str(), ds_text(d[3]).c_str(), ds_text(d[6]).c_str(),
                                             ds_text(d[1]).c_str(), ds_text(d[4]).c_str(), ds_text(d[7]).c_str()),
           what);
  check_ok(seg->addForAllFrames(orient), what);

  const std::string dim_uid = uid();
  IODMultiframeDimensionModule& dims = seg->getDimensions();
  check_ok(dims.addDimensionIndex(DCM_ReferencedSegmentNumber, dim_uid.c_str(), DCM_SegmentIdentificationSequence,
                                  "ReferencedSegmentNumber"),
           what);
  check_ok(dims.addDimensionIndex(DCM_ImagePositionPatient, dim_uid.c_str(), DCM_PlanePositionSequence,
                                  "ImagePositionPatient"),
           what);

  const auto lab = labels.data.to(torch::kUInt8).contiguous();
  const uint8_t* lp = lab.data_ptr<uint8_t>();
  const size_t per_slice = size_t(rows) * cols;
  std::vector<Uint8> frame(per_slice);
  for (const auto& s : options.segments) {
    DcmSegment* segment = nullptr;
    check_ok(DcmSegment::create(
                 segment, s.name.c_str(),
                 CodeSequenceMacro(s.category.value.c_str(), s.category.scheme.c_str(), s.category.meaning.c_str()),
                 CodeSequenceMacro(s.type.value.c_str(), s.type.scheme.c_str(), s.type.meaning.c_str()),
                 DcmSegTypes::SAT_AUTOMATIC, (options.algorithm_name + " " + version).c_str()),
             what + ": segment '" + s.name + "'");
    std::unique_ptr<DcmSegment> owned(segment);
    if (!s.description.empty()) check_ok(segment->setSegmentDescription(s.description.c_str()), what);
    const auto lab3 = dicom_lab(s.rgb);
    check_ok(segment->setRecommendedDisplayCIELabValue(lab3[0], lab3[1], lab3[2]), what);
    Uint16 number = 0;
    check_ok(seg->addSegment(segment, number), what + ": segment '" + s.name + "'");
    owned.release();
    bool any = false;
    for (int64_t k = 0; k < size[2]; ++k) {
      const uint8_t* sl = lp + size_t(k) * per_slice;
      bool has = false;
      for (size_t i = 0; i < per_slice; ++i) {
        frame[i] = sl[i] == s.label ? 1 : 0;
        has = has || frame[i];
      }
      // An empty segment keeps one all-zero frame so that the object still lists it.
      const bool last_chance = !any && k == size[2] - 1;
      if (!has && !last_chance) continue;
      any = true;
      const Slice& src = ref.slices[size_t(k)];
      const Vec3 p = ref.grid.geometry.index_to_world({0, 0, double(k)});
      FGPlanePosPatient pos;
      check_ok(pos.setImagePositionPatient(ds_text(p[0]).c_str(), ds_text(p[1]).c_str(), ds_text(p[2]).c_str()), what);
      FGFrameContent content;
      check_ok(content.setDimensionIndexValues(number, 0), what);
      check_ok(content.setDimensionIndexValues(Uint32(k + 1), 1), what);
      OFVector<ImageSOPInstanceReferenceMacro> sources(1);
      check_ok(sources[0].setReferencedSOPClassUID(src.sop_class_uid.c_str()), what);
      check_ok(sources[0].setReferencedSOPInstanceUID(src.sop_instance_uid.c_str()), what);
      std::unique_ptr<FGDerivationImage> derivation(DcmSegmentation::createDerivationImageFG(
          sources, "Segmentation of the source image by " + OFString(options.algorithm_name.c_str())));
      TF_CHECK(derivation, IoError, what, ": cannot create the derivation image reference");
      OFVector<FGBase*> per_frame;
      per_frame.push_back(&pos);
      per_frame.push_back(&content);
      per_frame.push_back(derivation.get());
      check_ok(seg->addFrame(frame.data(), number, per_frame), what + ": frame of segment '" + s.name + "'");
    }
  }

  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  check_ok(seg->writeDataset(*ds), what + ": cannot encode the Segmentation object");
  // Common Instance Reference module: the source series and each of its instances (same study).
  DcmItem* series_item = nullptr;
  check_ok(ds->findOrCreateSequenceItem(DCM_ReferencedSeriesSequence, series_item, 0), what);
  check_ok(series_item->putAndInsertString(DCM_SeriesInstanceUID, reference.series_uid.c_str()), what);
  for (size_t k = 0; k < ref.slices.size(); ++k) {
    DcmItem* inst = nullptr;
    check_ok(series_item->findOrCreateSequenceItem(DCM_ReferencedInstanceSequence, inst, -2), what);
    check_ok(inst->putAndInsertString(DCM_ReferencedSOPClassUID, ref.slices[k].sop_class_uid.c_str()), what);
    check_ok(inst->putAndInsertString(DCM_ReferencedSOPInstanceUID, ref.slices[k].sop_instance_uid.c_str()), what);
  }
  fs::create_directories(path.parent_path().empty() ? fs::path(".") : path.parent_path());
  const fs::path tmp = path.string() + ".tmp";
  check_ok(ff.saveFile(tmp.c_str(), EXS_LittleEndianExplicit), what + ": cannot write the Segmentation object");
  fs::rename(tmp, path);
}

Volume read_dicom_seg(const fs::path& path, const DicomSeriesInfo& reference,
                      const std::vector<int>& labels_of_segments) {
  init_dcmtk();
  const SortedSeries ref = sorted_headers(reference);
  DcmSegmentation* raw = nullptr;
  check_ok(DcmSegmentation::loadFile(path.c_str(), raw),
           "'" + path.string() + "': cannot read the Segmentation object");
  std::unique_ptr<DcmSegmentation> seg(raw);
  const Size3 size = ref.grid.size;
  const Uint16 rows = Uint16(size[1]), cols = Uint16(size[0]);
  torch::Tensor out = torch::zeros({1, size[2], size[1], size[0]}, torch::kUInt8);
  uint8_t* op = out.data_ptr<uint8_t>();
  const size_t per_slice = size_t(rows) * cols;
  const Mat3 inv = invert(ref.grid.geometry.direction);
  for (size_t f = 0; f < seg->getNumberOfFrames(); ++f) {
    OFBool per_frame = OFFalse;
    auto* segfg = dynamic_cast<FGSegmentation*>(
        seg->getFunctionalGroups().get(Uint32(f), DcmFGTypes::EFG_SEGMENTATION, per_frame));
    auto* posfg = dynamic_cast<FGPlanePosPatient*>(
        seg->getFunctionalGroups().get(Uint32(f), DcmFGTypes::EFG_PLANEPOSPATIENT, per_frame));
    TF_CHECK(segfg && posfg, FormatError, "'", path.string(), "': frame ", f + 1, " lacks its segment or position");
    Uint16 number = 0;
    segfg->getReferencedSegmentNumber(number);
    Float64 x = 0, y = 0, z = 0;
    posfg->getImagePositionPatient(x, y, z);
    const Vec3 idx = ref.grid.geometry.world_to_index({x, y, z});
    const long k = std::lround(idx[2]);
    TF_CHECK(k >= 0 && k < size[2] && std::abs(idx[2] - double(k)) < 1e-2 && std::abs(idx[0]) < 1e-2 &&
                 std::abs(idx[1]) < 1e-2,
             FormatError, "'", path.string(), "': frame ", f + 1, " at (", x, ", ", y, ", ", z,
             ") is not on a slice of the reference series");
    (void)inv;
    const DcmIODTypes::Frame* packed = seg->getFrame(f);
    TF_CHECK(packed, FormatError, "'", path.string(), "': frame ", f + 1, " is missing");
    std::unique_ptr<DcmIODTypes::Frame> unpacked(DcmSegUtils::unpackBinaryFrame(packed, rows, cols));
    TF_CHECK(unpacked && unpacked->length >= per_slice, FormatError, "'", path.string(), "': frame ", f + 1,
             " cannot be unpacked");
    const uint8_t value =
        uint8_t(number >= 1 && size_t(number) <= labels_of_segments.size() ? labels_of_segments[number - 1] : number);
    uint8_t* dst = op + size_t(k) * per_slice;
    for (size_t i = 0; i < per_slice; ++i)
      if (unpacked->pixData[i]) dst[i] = value;
  }
  return Volume{out, ref.grid.geometry};
}

}  // namespace teachformer::io

namespace teachformer::io {
ImageInfo dicom_image_info(const std::filesystem::path& folder) {
  ImageInfo info;
  const Grid g = read_dicom_grid(dicom_series_in(folder));
  info.size = g.size;
  info.geometry = g.geometry;
  info.channels = 1;
  info.pixel_type = PixelType::Float32;
  info.dimensions = 3;
  return info;
}
}  // namespace teachformer::io
