#include "teachformer/io/dicom.hpp"

#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "test_checks.hpp"
#include "test_support.hpp"

namespace teachformer::io {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

#define SKIP_WITHOUT_DCMTK() \
  if (!dicom_available()) GTEST_SKIP() << "built without DCMTK"

PetSuvTags start_tags() {
  PetSuvTags t;
  t.units = "BQML";
  t.decay_correction = "START";
  t.weight_kg = 75;
  t.injected_dose_bq = 370e6;
  t.half_life_s = 6586.2;
  t.injection_time_s = *dicom_date_time_seconds("20240101", "090000");
  t.reference_time_s = *dicom_date_time_seconds("20240101", "100500");
  return t;
}

// Hand computation: 65 min after injection, F-18 has decayed to 2^(-3900 / 6586.2) = 0.66335488; the factor is
// 75000 g / (370e6 Bq * 0.66335488) = 3.0557204e-4 g/Bq.
TEST(DicomSuv, DecayCorrectedToStartMatchesHandComputation) {
  EXPECT_NEAR(suv_factor(start_tags(), "f.dcm"), 3.0557204e-4, 1e-10);
}

// ADMIN: the images are already decay corrected to the injection: 75000 / 370e6 = 2.0270270e-4.
TEST(DicomSuv, DecayCorrectedToAdministrationIgnoresTheTimes) {
  auto t = start_tags();
  t.decay_correction = "ADMIN";
  t.reference_time_s.reset();
  EXPECT_NEAR(suv_factor(t, "f.dcm"), 2.0270270e-4, 1e-11);
}

TEST(DicomSuv, PhilipsCountsUseTheScaleFactorAndGmlIsKept) {
  auto t = start_tags();
  t.units = "CNTS";
  t.philips_suv_factor = 0.000123;
  EXPECT_DOUBLE_EQ(suv_factor(t, "f.dcm"), 0.000123);
  t.philips_suv_factor.reset();
  EXPECT_NE(test::message_of([&] { suv_factor(t, "f.dcm"); }).find("(7053,1000)"), std::string::npos);
  t.units = "GML";
  EXPECT_DOUBLE_EQ(suv_factor(t, "f.dcm"), 1.0);
}

TEST(DicomSuv, MissingOrImplausibleTagsNameTheTagTheFileAndTheOverride) {
  auto t = start_tags();
  t.weight_kg.reset();
  std::string m = test::message_of([&] { suv_factor(t, "pet/IM1.dcm"); });
  EXPECT_NE(m.find("PatientWeight (0010,1030)"), std::string::npos) << m;
  EXPECT_NE(m.find("pet/IM1.dcm"), std::string::npos) << m;
  EXPECT_NE(m.find("--suv-scale"), std::string::npos) << m;
  t = start_tags();
  t.injected_dose_bq = 370;  // MBq written where Bq belong
  m = test::message_of([&] { suv_factor(t, "f.dcm"); });
  EXPECT_NE(m.find("RadionuclideTotalDose (0018,1074)"), std::string::npos) << m;
  t = start_tags();
  t.half_life_s.reset();
  EXPECT_NE(test::message_of([&] { suv_factor(t, "f.dcm"); }).find("RadionuclideHalfLife"), std::string::npos);
  t = start_tags();
  std::swap(t.injection_time_s, t.reference_time_s);
  EXPECT_NE(test::message_of([&] { suv_factor(t, "f.dcm"); }).find("injection"), std::string::npos);
  t = start_tags();
  t.units = "PROPCPS";
  EXPECT_NE(test::message_of([&] { suv_factor(t, "f.dcm"); }).find("Units (0054,1001)"), std::string::npos);
}

TEST(DicomTime, ParsesDateTimeAndDateTimeStrings) {
  EXPECT_DOUBLE_EQ(*dicom_date_time_seconds("19700102", "010203.5"), 86400 + 3723.5);
  EXPECT_DOUBLE_EQ(*dicom_date_time_seconds("19700101", "01:02:03"), 3723);
  EXPECT_DOUBLE_EQ(*dicom_datetime_seconds("19700101010203+0100"), 3723);
  EXPECT_FALSE(dicom_date_time_seconds("2024011", "100000"));
  EXPECT_FALSE(dicom_date_time_seconds("20240101", "1x0000"));
}

TEST(DicomSegment, CodesForTheKnownLabelNames) {
  EXPECT_EQ(segment_for_label(1, "GTVp").type.value, "86049000");
  EXPECT_EQ(segment_for_label(1, "tumor").type.value, "86049000");
  EXPECT_EQ(segment_for_label(2, "GTVn").type.value, "14799000");
  EXPECT_EQ(segment_for_label(1, "lesion").type.value, "399068003");
  EXPECT_EQ(segment_for_label(3, "other").type.value, "52988006");
  EXPECT_EQ(segment_for_label(1, "GTVp").category.value, "49755003");
}

// A small volume with a gradient, on an oblique-free grid with a non-trivial origin.
Volume phantom(float scale, float offset, Size3 size = {12, 10, 6}) {
  Volume v;
  v.data = torch::arange(size[0] * size[1] * size[2], torch::kFloat).reshape({1, size[2], size[1], size[0]}) * scale +
           offset;
  v.geometry.spacing = {0.8, 0.9, 3.0};
  v.geometry.origin = {-40.0, 25.5, 100.0};
  return v;
}

DicomSeriesHeader header(const std::string& modality) {
  DicomSeriesHeader h;
  h.modality = modality;
  h.description = modality + " test";
  h.patient_id = "P1";
  h.study_uid = "2.25.1";
  h.frame_of_reference_uid = "2.25.2";
  h.series_uid = "2.25.3" + std::to_string(modality.size() + modality[0]);
  h.series_time = "100500";
  return h;
}

TEST(DicomSeries, PetRoundTripGivesSuvAndTheGrid) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  const Volume suv = phantom(0.01f, 0.0f);
  write_dicom_series(dir / "pt", suv, header("PT"));
  // Files named against their position: order must come from ImagePositionPatient.
  fs::rename(dir / "pt" / "IM00001.dcm", dir / "pt" / "ZZZ.dcm");
  const Volume back = read_dicom_series(dir / "pt");
  ASSERT_EQ(back.data.sizes(), suv.data.sizes());
  EXPECT_TRUE(back.geometry.approx_equal(suv.geometry, 1e-4)) << back.geometry.to_string();
  // int16 with a per-slice slope: error below 1/32767 of the slice maximum.
  EXPECT_LT((back.data - suv.data).abs().max().item<float>(), 1e-3f * suv.data.max().item<float>());
  // --suv-scale: the Bq/mL values times the given factor.
  const Volume raw = read_dicom_series(dir / "pt", DicomReadOptions{1.0});
  const double factor = suv_factor(start_tags(), "x");
  EXPECT_NEAR(raw.data.max().item<float>() * factor, suv.data.max().item<float>(), 1e-2);
}

TEST(DicomSeries, AdminDecayCorrectionAndPhilipsCountsReadBackAsSuv) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  const Volume suv = phantom(0.01f, 0.0f);
  auto h = header("PT");
  h.decay_correction = "ADMIN";
  write_dicom_series(dir / "admin", suv, h);
  Volume back = read_dicom_series(dir / "admin");
  EXPECT_LT((back.data - suv.data).abs().max().item<float>(), 1e-3f * suv.data.max().item<float>());
  // Bq/mL = SUV * 370e6 / 75000 with ADMIN (no decay term).
  const Volume raw = read_dicom_series(dir / "admin", DicomReadOptions{1.0});
  EXPECT_NEAR(raw.data.max().item<float>(), suv.data.max().item<float>() * 370e6 / 75000.0, 1.0);

  // Philips: Units CNTS with the private SUV factor (7053,1000) = the START factor of the header.
  write_dicom_series(dir / "philips", suv, header("PT"));
  const std::string exe = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const auto r = test::run_command(
      exe + " -c \"import pydicom, glob\nfor f in glob.glob('" + (dir / "philips").string() +
      "/*.dcm'):\n d = pydicom.dcmread(f); d.Units = 'CNTS'; b = d.private_block(0x7053, 'Philips PET Private Group', "
      "create=True); b.add_new(0x00, 'DS', '0.00030557204'); d.save_as(f)\"");
  if (r.exit_code != 0) GTEST_SKIP() << "python3-pydicom is not installed: " << r.output;
  back = read_dicom_series(dir / "philips");
  EXPECT_LT((back.data - suv.data).abs().max().item<float>(), 1e-3f * suv.data.max().item<float>());
}

TEST(DicomSeries, RleCompressedCtIsDecoded) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  const Volume ct = phantom(1.0f, -500.0f);
  auto h = header("CT");
  h.transfer_syntax = "1.2.840.10008.1.2.5";
  write_dicom_series(dir / "ct", ct, h);
  const Volume back = read_dicom_series(dir / "ct");
  EXPECT_TRUE(torch::equal(back.data, ct.data));
  const ImageInfo info = read_image_info(dir / "ct");
  EXPECT_EQ(info.size, (Size3{12, 10, 6}));
}

TEST(DicomSeries, MissingSliceIsRefusedWithTheGap) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  write_dicom_series(dir / "ct", phantom(1.0f, 0.0f), header("CT"));
  fs::remove(dir / "ct" / "IM00003.dcm");
  const std::string m = test::message_of([&] { read_dicom_series(dir / "ct"); });
  EXPECT_NE(m.find("missing slices: a gap of 6 mm"), std::string::npos) << m;
}

TEST(DicomSeries, GantryTiltIsRefused) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  Volume v = phantom(1.0f, 0.0f);
  const double t = 15.0 * M_PI / 180.0;
  v.geometry.direction = {1, 0, 0, 0, 1, std::sin(t), 0, 0, std::cos(t)};  // slices step along a tilted axis
  write_dicom_series(dir / "ct", v, header("CT"));
  const std::string m = test::message_of([&] { read_dicom_series(dir / "ct"); });
  EXPECT_NE(m.find("gantry tilt"), std::string::npos) << m;
  EXPECT_NE(m.find("15 degrees"), std::string::npos) << m;
}

TEST(DicomSeries, InconsistentOrientationIsRefused) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  write_dicom_series(dir / "ct", phantom(1.0f, 0.0f), header("CT"));
  Volume rotated = phantom(1.0f, 0.0f);
  rotated.geometry.direction = {0, 1, 0, 1, 0, 0, 0, 0, -1};
  auto h = header("CT");  // same series UID
  write_dicom_series(dir / "other", rotated, h);
  fs::copy_file(dir / "other" / "IM00002.dcm", dir / "ct" / "extra.dcm");
  const std::string m = test::message_of([&] { read_dicom_series(dir / "ct"); });
  EXPECT_NE(m.find("inconsistent orientation"), std::string::npos) << m;
}

// pydicom edits files the way other software writes them (Debian's python3, where python3-pydicom lives).
bool python(const std::string& script) {
  const std::string exe = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const auto r = test::run_command(exe + " -c \"" + script + "\"");
  return r.exit_code == 0;
}

TEST(DicomSeries, UnevenSpacingAndUndecodableSyntaxAreRefusedByName) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  write_dicom_series(dir / "ct", phantom(1.0f, 0.0f), header("CT"));
  const std::string f = (dir / "ct" / "IM00004.dcm").string();
  if (!python("import pydicom; d = pydicom.dcmread('" + f + "'); d.ImagePositionPatient[2] += 1.0; d.save_as('" + f +
              "')"))
    GTEST_SKIP() << "python3-pydicom is not installed";
  std::string m = test::message_of([&] { read_dicom_series(dir / "ct"); });
  EXPECT_NE(m.find("uneven slice spacing"), std::string::npos) << m;

  write_dicom_series(dir / "j2k", phantom(1.0f, 0.0f), header("CT"));
  const std::string g = (dir / "j2k" / "IM00002.dcm").string();
  ASSERT_TRUE(
      python("import pydicom; from pydicom.encaps import encapsulate; from pydicom.uid import "
             "JPEG2000Lossless; d = pydicom.dcmread('" +
             g +
             "'); d.PixelData = encapsulate([bytes(64)]); "
             "d.file_meta.TransferSyntaxUID = JPEG2000Lossless; d.is_implicit_VR = False; "
             "d.is_little_endian = True; d['PixelData'].is_undefined_length = True; d.save_as('" +
             g + "')"));
  m = test::message_of([&] { read_dicom_series(dir / "j2k"); });
  EXPECT_NE(m.find("JPEG 2000"), std::string::npos) << m;
  EXPECT_NE(m.find("IM00002.dcm"), std::string::npos) << m;
}

TEST(DicomScan, MixedSeriesAndNonImageObjectsAreReported) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  write_dicom_series(dir / "study" / "ct", phantom(1.0f, 0.0f), header("CT"));
  write_dicom_series(dir / "study" / "pt", phantom(0.01f, 0.0f), header("PT"));
  write_dicom_series(dir / "tmp", phantom(1.0f, 0.0f, {12, 10, 2}), header("MR"));
  fs::create_directories(dir / "mixed");
  fs::copy_file(dir / "study" / "ct" / "IM00001.dcm", dir / "mixed" / "a.dcm");
  fs::copy_file(dir / "tmp" / "IM00001.dcm", dir / "mixed" / "b.dcm");
  fs::remove_all(dir / "tmp");
  const std::string sr = (dir / "study" / "report.dcm").string();
  const bool have_pydicom = python(
      "import pydicom; from pydicom.dataset import Dataset, FileMetaDataset; from pydicom.uid import "
      "ExplicitVRLittleEndian, generate_uid; m = FileMetaDataset(); m.MediaStorageSOPClassUID = "
      "'1.2.840.10008.5.1.4.1.1.88.11'; m.MediaStorageSOPInstanceUID = generate_uid(); m.TransferSyntaxUID = "
      "ExplicitVRLittleEndian; d = Dataset(); d.file_meta = m; d.SOPClassUID = m.MediaStorageSOPClassUID; "
      "d.SOPInstanceUID = m.MediaStorageSOPInstanceUID; d.Modality = 'SR'; d.SeriesInstanceUID = generate_uid(); "
      "d.StudyInstanceUID = '2.25.1'; d.is_little_endian = True; d.is_implicit_VR = False; "
      "d.save_as('" +
      sr + "', write_like_original=False)");
  const DicomScan scan = scan_dicom(dir.path());
  ASSERT_EQ(scan.series.size(), 2u);
  EXPECT_EQ(scan.series[0].modality, "CT");
  EXPECT_EQ(scan.series[0].files.size(), 6u);
  EXPECT_EQ(scan.series[1].modality, "PT");
  ASSERT_EQ(scan.errors.size(), 1u);
  EXPECT_NE(scan.errors[0].message.find("mixed series in one folder: 2 series"), std::string::npos)
      << scan.errors[0].message;
  if (have_pydicom) {
    ASSERT_EQ(scan.skipped.size(), 1u);
    EXPECT_NE(scan.skipped[0].message.find("not an image (Modality SR"), std::string::npos);
  }
  EXPECT_NE(test::message_of([&] { read_dicom_series(dir / "mixed"); }).find("mixed series"), std::string::npos);
}

TEST(DicomSeg, WritesOneSegmentPerLabelAndReadsBackVoxelForVoxel) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  const Volume ct = phantom(1.0f, -500.0f);
  write_dicom_series(dir / "ct", ct, header("CT"));
  const DicomSeriesInfo ref = dicom_series_in(dir / "ct");
  Volume labels{torch::zeros({1, 6, 10, 12}, torch::kUInt8), read_dicom_grid(ref).geometry};
  labels.data.index_put_({0, torch::indexing::Slice(1, 3), torch::indexing::Slice(2, 5), torch::indexing::Slice(3, 9)},
                         1);
  labels.data.index_put_({0, 4, 7, torch::indexing::Slice(0, 2)}, 2);
  DicomSegOptions o;
  o.segments = {segment_for_label(1, "GTVp"), segment_for_label(2, "GTVn"), segment_for_label(3, "other")};
  o.algorithm_version = "0.1.0";
  write_dicom_seg(dir / "seg.dcm", labels, ref, o);
  const Volume back = read_dicom_seg(dir / "seg.dcm", ref, {1, 2, 3});
  EXPECT_TRUE(torch::equal(back.data, labels.data));
  // The standard's own checker, where installed.
  const auto which = test::run_command("command -v dciodvfy");
  if (which.exit_code == 0) {
    const auto r = test::run_command("dciodvfy " + (dir / "seg.dcm").string());
    EXPECT_EQ(r.output.find("Error"), std::string::npos) << r.output;
  }
  // Off the reference grid: refused.
  Volume moved = labels;
  moved.geometry.origin[0] += 5;
  EXPECT_NE(test::message_of([&] { write_dicom_seg(dir / "bad.dcm", moved, ref, o); }).find("not on the grid"),
            std::string::npos);
}

}  // namespace
}  // namespace teachformer::io
