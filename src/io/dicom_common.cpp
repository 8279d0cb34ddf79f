// The DCMTK-free part of io/dicom.hpp: SUV arithmetic, DICOM date/time parsing, segment codes, file sniffing.
#include <cmath>
#include <cstdio>
#include <fstream>

#include "teachformer/core/error.hpp"
#include "teachformer/io/dicom.hpp"

namespace teachformer::io {
namespace {

std::string lower(std::string s) {
  for (auto& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// Days from 1970-01-01 to a civil date (proleptic Gregorian).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = unsigned(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + int64_t(doe) - 719468;
}

bool all_digits(const std::string& s) {
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return !s.empty();
}

std::optional<double> date_seconds(std::string date) {
  while (!date.empty() && date.back() == ' ') date.pop_back();
  if (date.size() == 10 && date[4] == '.' && date[7] == '.')
    date = date.substr(0, 4) + date.substr(5, 2) + date.substr(8, 2);
  if (date.size() != 8 || !all_digits(date)) return std::nullopt;
  const int y = std::stoi(date.substr(0, 4)), m = std::stoi(date.substr(4, 2)), d = std::stoi(date.substr(6, 2));
  if (m < 1 || m > 12 || d < 1 || d > 31) return std::nullopt;
  return double(days_from_civil(y, unsigned(m), unsigned(d))) * 86400.0;
}

std::optional<double> time_seconds(std::string t) {
  while (!t.empty() && t.back() == ' ') t.pop_back();
  std::string digits;
  for (char c : t)
    if (c != ':') digits.push_back(c);
  const auto dot = digits.find('.');
  const std::string whole = digits.substr(0, dot);
  if (whole.size() < 2 || whole.size() > 6 || whole.size() % 2 || !all_digits(whole)) return std::nullopt;
  const int h = std::stoi(whole.substr(0, 2));
  const int m = whole.size() >= 4 ? std::stoi(whole.substr(2, 2)) : 0;
  const int s = whole.size() >= 6 ? std::stoi(whole.substr(4, 2)) : 0;
  if (h > 23 || m > 59 || s > 60) return std::nullopt;
  double frac = 0;
  if (dot != std::string::npos) {
    const std::string f = digits.substr(dot + 1);
    if (!f.empty()) {
      if (!all_digits(f)) return std::nullopt;
      frac = std::stod("0." + f);
    }
  }
  return h * 3600.0 + m * 60.0 + s + frac;
}

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

std::optional<double> dicom_date_time_seconds(const std::string& date, const std::string& time) {
  const auto d = date_seconds(date);
  const auto t = time_seconds(time);
  if (!d || !t) return std::nullopt;
  return *d + *t;
}

std::optional<double> dicom_datetime_seconds(const std::string& datetime) {
  std::string dt = datetime;
  const auto tz = dt.find_first_of("+-");
  if (tz != std::string::npos) dt = dt.substr(0, tz);
  while (!dt.empty() && dt.back() == ' ') dt.pop_back();
  if (dt.size() < 8) return std::nullopt;
  const std::string time = dt.size() > 8 ? dt.substr(8) : "000000";
  return dicom_date_time_seconds(dt.substr(0, 8), time);
}

double suv_factor(const PetSuvTags& tags, const std::string& where) {
  const std::string hint = " (hint: fix the header, or give --suv-scale with the factor from Bq/mL to SUV)";
  const std::string units = lower(tags.units);
  if (units == "gml") return 1.0;
  if (units == "cnts") {
    TF_CHECK(tags.philips_suv_factor && *tags.philips_suv_factor > 0 && std::isfinite(*tags.philips_suv_factor),
             FormatError, "'", where, "': PET Units (0054,1001) is CNTS and the Philips SUV scale factor (7053,1000) ",
             "is missing or not positive; cannot compute SUV", hint);
    return *tags.philips_suv_factor;
  }
  TF_CHECK(units == "bqml", FormatError, "'", where, "': PET Units (0054,1001) must be BQML (Bq/mL), GML (SUVbw) or ",
           "CNTS with a Philips SUV factor, got '", tags.units, "'", hint);
  TF_CHECK(tags.weight_kg, FormatError, "'", where, "': PatientWeight (0010,1030) is missing; SUVbw needs it", hint);
  TF_CHECK(*tags.weight_kg >= 1 && *tags.weight_kg <= 500, FormatError, "'", where,
           "': PatientWeight (0010,1030) must be in 1..500 kg, got ", fmt(*tags.weight_kg), hint);
  TF_CHECK(tags.injected_dose_bq, FormatError, "'", where,
           "': RadionuclideTotalDose (0018,1074) in RadiopharmaceuticalInformationSequence is missing", hint);
  TF_CHECK(*tags.injected_dose_bq >= 1e6 && *tags.injected_dose_bq <= 5e10, FormatError, "'", where,
           "': RadionuclideTotalDose (0018,1074) must be in 1 MBq..50 GBq (given in Bq), got ",
           fmt(*tags.injected_dose_bq), hint);
  const double weight_g = *tags.weight_kg * 1000.0;
  const std::string dc = lower(tags.decay_correction);
  if (dc == "admin") return weight_g / *tags.injected_dose_bq;
  TF_CHECK(dc == "start" || dc == "none", FormatError, "'", where,
           "': DecayCorrection (0054,1102) must be START, ADMIN or NONE, got '", tags.decay_correction, "'", hint);
  TF_CHECK(tags.half_life_s, FormatError, "'", where, "': RadionuclideHalfLife (0018,1075) is missing", hint);
  TF_CHECK(*tags.half_life_s >= 60 && *tags.half_life_s <= 100 * 86400.0, FormatError, "'", where,
           "': RadionuclideHalfLife (0018,1075) must be in 60 s..100 days, got ", fmt(*tags.half_life_s), hint);
  TF_CHECK(tags.injection_time_s, FormatError, "'", where,
           "': RadiopharmaceuticalStartDateTime (0018,1078) and RadiopharmaceuticalStartTime (0018,1072) are missing "
           "or malformed",
           hint);
  TF_CHECK(tags.reference_time_s, FormatError, "'", where, "': ",
           dc == "start" ? "SeriesDate/SeriesTime (0008,0021/0031) and AcquisitionDate/Time"
                         : "AcquisitionDate/AcquisitionTime (0008,0022/0032)",
           " are missing or malformed", hint);
  const double dt = *tags.reference_time_s - *tags.injection_time_s;
  TF_CHECK(dt >= 0 && dt <= 86400, FormatError, "'", where, "': the injection (RadiopharmaceuticalStartTime) must ",
           "be 0..24 h before the ", dc == "start" ? "series start (SeriesTime)" : "acquisition (AcquisitionTime)",
           ", got ", fmt(dt), " s", hint);
  const double decay = std::exp2(-dt / *tags.half_life_s);
  return weight_g / (*tags.injected_dose_bq * decay);
}

DicomSegment segment_for_label(int label, const std::string& name) {
  const std::string n = lower(name);
  DicomSegment s;
  s.label = label;
  s.name = name;
  s.category = {"49755003", "SCT", "Morphologically Altered Structure"};
  auto has = [&](const char* w) { return n.find(w) != std::string::npos; };
  if (has("gtvn") || has("node")) {
    s.type = {"14799000", "SCT", "Neoplasm, Metastatic"};
    s.description = "Lymph node metastasis (GTVn)";
    s.rgb = {0, 160, 255};
  } else if (has("gtvp") || has("gtvt") || has("tumor") || has("tumour") || has("primary")) {
    s.type = {"86049000", "SCT", "Neoplasm, Primary"};
    s.description = "Primary tumour (GTVp)";
    s.rgb = {255, 60, 40};
  } else if (has("lesion") || has("cspca") || has("prostate")) {
    s.type = {"399068003", "SCT", "Malignant tumor of prostate"};
    s.description = "Clinically significant prostate cancer lesion";
    s.rgb = {255, 200, 0};
  } else {
    s.type = {"52988006", "SCT", "Lesion"};
    s.description = "Label " + std::to_string(label) + " (" + name + ")";
    s.rgb = {200, 0, 200};
  }
  return s;
}

bool is_dicom_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char buf[132];
  if (!in.read(buf, sizeof buf)) return false;
  return buf[128] == 'D' && buf[129] == 'I' && buf[130] == 'C' && buf[131] == 'M';
}

bool is_dicom_folder(const std::filesystem::path& folder) {
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) return false;
  for (const auto& e : std::filesystem::directory_iterator(folder, ec))
    if (e.is_regular_file(ec) && is_dicom_file(e.path())) return true;
  return false;
}

std::string DicomSeriesInfo::to_string() const {
  return modality + " '" + description + "' (series " + series_number + ", " + std::to_string(files.size()) +
         " files) in " + folder.string();
}

}  // namespace teachformer::io
