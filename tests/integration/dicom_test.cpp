// DICOM end to end through the CLI: a model trained on HECKTOR-layout phantoms segments a DICOM PET/CT study
// (synth --layout dicom); the DICOM SEG validates with dciodvfy and reads back equal to the NIfTI prediction with
// DCMTK and with pydicom; convert, verify and the one-line errors for ambiguous input.
#include <algorithm>
#include <fstream>

#include <gtest/gtest.h>

#include "teachformer/io/dicom.hpp"
#include "teachformer/io/image_io.hpp"
#include "test_support.hpp"

namespace teachformer::test {
namespace {

namespace fs = std::filesystem;

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }
std::string python_exe() { return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; }

class Dicom : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!io::dicom_available()) return;
    dir_ = new TempDir();
    const auto& d = *dir_;
    auto r = run_cli("-q synth -o " + q(d / "raw") + " --cases 4 --size 56,56,20 --bbox-mm 48 --seed 3");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_cli("-q preprocess " + q(d / "raw") + " -o " + q(d / "pre") + " --target-spacing 1.5,1.5,1.5");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_cli("-q train -d " + q(d / "pre") +
                " -m teachformer_s --preset tiny -f 0 --folds 2 --epochs 1 "
                "--steps-per-epoch 2 -o " +
                q(d / "model"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = run_cli("-q synth --layout dicom -o " + q(d / "dicom") + " --cases 1 --size 56,56,20 --bbox-mm 48 --seed 5");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    for (const auto& e : fs::directory_iterator(d / "dicom"))
      if (e.is_directory() && e.path().filename() != "labels") case_id_ = e.path().filename().string();
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!io::dicom_available()) GTEST_SKIP() << "built without DCMTK";
    ASSERT_FALSE(case_id_.empty());
  }
  static TempDir* dir_;
  static std::string case_id_;
};
TempDir* Dicom::dir_ = nullptr;
std::string Dicom::case_id_;

TEST_F(Dicom, PredictWritesASegThatValidatesAndReadsBackEqualToTheNifti) {
  const auto& d = *dir_;
  auto r = run_cli("-q predict -i " + q(d / "dicom") + " -o " + q(d / "pred") + " -m " + q(d / "model") +
                   " --format nifti,dicom-seg");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path nii = d / "pred" / (case_id_ + ".nii.gz"), seg = d / "pred" / (case_id_ + ".dcm");
  ASSERT_TRUE(fs::exists(nii));
  ASSERT_TRUE(fs::exists(seg));

  // The standard's checker: no error.
  if (run_command("command -v dciodvfy").exit_code == 0) {
    const auto v = run_command("dciodvfy " + q(seg));
    EXPECT_EQ(v.output.find("Error"), std::string::npos) << v.output;
  }

  // DCMTK read-back onto the CT series: equal to the NIfTI voxel for voxel.
  const io::Volume labels = io::read_label(nii);
  const io::DicomSeriesInfo ct = io::dicom_series_in(d / "dicom" / case_id_ / "CT");
  const io::Volume back = io::read_dicom_seg(seg, ct, {1});
  EXPECT_TRUE(back.grid().approx_equal(labels.grid(), 1e-3));
  EXPECT_TRUE(torch::equal(back.data, labels.data));

  // pydicom read-back: frames mapped to CT slices through their referenced SOP instances.
  const fs::path expected = d / "expected.raw";
  {
    std::ofstream out(expected, std::ios::binary);
    const auto t = labels.data.contiguous();
    out.write(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), std::streamsize(t.numel()));
  }
  const fs::path script = d / "check_seg.py";
  {
    std::ofstream py(script);
    // Plain Python (no numpy): binary SEG frames are bit-packed back to back, least significant bit first.
    py << R"(import sys, glob, pydicom
seg = pydicom.dcmread(sys.argv[1])
cts = [pydicom.dcmread(f) for f in glob.glob(sys.argv[2] + '/*.dcm')]
r, c = [float(v) for v in cts[0].ImageOrientationPatient[:3]], [float(v) for v in cts[0].ImageOrientationPatient[3:]]
n = [r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]]
cts.sort(key=lambda d: sum(a * float(b) for a, b in zip(n, d.ImagePositionPatient)))
index = {d.SOPInstanceUID: k for k, d in enumerate(cts)}
rows, cols = seg.Rows, seg.Columns
plane = rows * cols
vol = bytearray(len(cts) * plane)
assert seg.Modality == 'SEG' and seg.SegmentationType == 'BINARY' and seg.BitsAllocated == 1
assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == cts[0].SeriesInstanceUID
assert seg.FrameOfReferenceUID == cts[0].FrameOfReferenceUID and seg.StudyInstanceUID == cts[0].StudyInstanceUID
bits = seg.PixelData
for f, fg in enumerate(seg.PerFrameFunctionalGroupsSequence):
    number = fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber
    k = index[fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
    for i in range(plane):
        b = f * plane + i
        if (bits[b >> 3] >> (b & 7)) & 1:
            vol[k * plane + i] = number
expected = open(sys.argv[3], 'rb').read()
mismatches = sum(1 for a, b in zip(vol, expected) if a != b) + abs(len(vol) - len(expected))
segments = [(s.SegmentNumber, s.SegmentLabel, s.SegmentedPropertyTypeCodeSequence[0].CodeValue) for s in seg.SegmentSequence]
print('frames', int(seg.NumberOfFrames), 'segments', segments, 'voxels', sum(1 for v in vol if v), 'mismatches', mismatches)
sys.exit(0 if mismatches == 0 else 1)
)";
  }
  const auto p = run_command(python_exe() + " " + q(script) + " " + q(seg) + " " + q(ct.folder) + " " + q(expected));
  if (p.output.find("No module named") != std::string::npos) GTEST_SKIP() << "pydicom missing: " << p.output;
  EXPECT_EQ(p.exit_code, 0) << p.output;
  EXPECT_NE(p.output.find("mismatches 0"), std::string::npos) << p.output;
  EXPECT_NE(p.output.find("86049000"), std::string::npos) << p.output;
}

TEST_F(Dicom, VerifyAndConvertReadTheStudy) {
  const auto& d = *dir_;
  auto r = run_cli("verify " + q(d / "dicom"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(dicom)"), std::string::npos) << r.output;
  r = run_cli("-q convert -i " + q(d / "dicom") + " -o " + q(d / "nn"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(d / "nn" / "imagesTs" / (case_id_ + "_0000.nii.gz")));
  EXPECT_TRUE(fs::exists(d / "nn" / "imagesTs" / (case_id_ + "_0001.nii.gz")));
  EXPECT_TRUE(fs::exists(d / "nn" / "dataset.json"));
}

TEST_F(Dicom, AmbiguousAndNonImageInputGiveOneLineOrANote) {
  const auto& d = *dir_;
  const fs::path bad = d / "bad";
  fs::create_directories(bad);
  fs::copy(d / "dicom", bad, fs::copy_options::recursive);
  // A second CT series in the study: ambiguous, refused with the series listed.
  fs::create_directories(bad / case_id_ / "CT2");
  for (const auto& e : fs::directory_iterator(bad / case_id_ / "CT"))
    fs::copy_file(e.path(), bad / case_id_ / "CT2" / e.path().filename());
  // (a byte copy: a second series folder of the study that matches the CT rule as well)
  auto r = run_cli("-q predict -i " + q(bad) + " -o " + q(d / "pred_bad") + " -m " + q(d / "model"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("2 series match channel 'CT'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("CT head-neck 3mm"), std::string::npos) << r.output;
  // A structured report in the tree: skipped with a note in verify (beside the ambiguity error).
  const auto sr = run_command(
      python_exe() +
      " -c \"import pydicom; from pydicom.dataset import Dataset, FileMetaDataset; from pydicom.uid import "
      "ExplicitVRLittleEndian, generate_uid; m = FileMetaDataset(); m.MediaStorageSOPClassUID = "
      "'1.2.840.10008.5.1.4.1.1.88.11'; m.MediaStorageSOPInstanceUID = generate_uid(); m.TransferSyntaxUID = "
      "ExplicitVRLittleEndian; d = Dataset(); d.file_meta = m; d.SOPClassUID = m.MediaStorageSOPClassUID; "
      "d.SOPInstanceUID = m.MediaStorageSOPInstanceUID; d.Modality = 'SR'; d.is_little_endian = True; "
      "d.is_implicit_VR = False; d.save_as('" +
      (bad / case_id_ / "report.dcm").string() + "', write_like_original=False)\"");
  if (sr.exit_code == 0) {
    r = run_cli("verify " + q(bad));
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("warning: " + case_id_ + "/report.dcm: not an image (Modality SR"), std::string::npos)
        << r.output;
  }
  // --format dicom-seg with NIfTI input is refused in one line.
  r = run_cli("-q predict -i " + q(d / "raw") + " -o " + q(d / "pred_nii") + " -m " + q(d / "model") +
              " --format dicom-seg");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("needs DICOM input"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace teachformer::test
