#include "teachformer/data/verify.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "data_test_util.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/io/image_io.hpp"
#include "test_support.hpp"

namespace teachformer::data {
namespace {

using test::TempDir;
using namespace test_util;
namespace fs = std::filesystem;

// Clean tiny datasets, made once; each test injects one defect into a copy.
class Verify : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    nnunet_ = new TempDir();
    synthesize(nnunet_->path(), tiny_petct(DatasetFormat::NnUNet, 2));
    hecktor_ = new TempDir();
    synthesize(hecktor_->path(), tiny_petct(DatasetFormat::Hecktor2021, 2));
    msd_ = new TempDir();
    synthesize(msd_->path(), tiny_petct(DatasetFormat::Msd, 2));
    picai_ = new TempDir();
    synthesize(picai_->path(), tiny_mri(DatasetFormat::Picai, 2));
  }
  static void TearDownTestSuite() {
    for (auto* d : {nnunet_, hecktor_, msd_, picai_}) delete d;
  }
  // A fresh copy of a clean dataset.
  fs::path copy_of(const TempDir* clean) {
    copy_tree(clean->path(), work_.path());
    return work_.path();
  }
  // Verifies and expects exactly one problem line containing `text`.
  VerifyReport expect_line(const fs::path& root, const std::string& text, Severity severity = Severity::Error) {
    const VerifyReport r = verify_dataset(root, std::nullopt);
    const auto lines = lines_with(r.problems, text);
    EXPECT_EQ(lines.size(), 1u) << "looking for: " << text << "\n" << all_lines(r.problems);
    if (!lines.empty())
      EXPECT_EQ(lines[0].rfind(severity == Severity::Error ? "error: " : "warning: ", 0), 0u) << lines[0];
    return r;
  }
  static TempDir *nnunet_, *hecktor_, *msd_, *picai_;
  TempDir work_;
};
TempDir* Verify::nnunet_ = nullptr;
TempDir* Verify::hecktor_ = nullptr;
TempDir* Verify::msd_ = nullptr;
TempDir* Verify::picai_ = nullptr;

// Rewrites an image through `edit`, keeping its pixel type where it matters for the check.
void edit_image(const fs::path& file, const std::function<void(io::Volume&)>& edit, bool label = false) {
  io::Volume v = label ? io::read_label(file) : io::read_image(file);
  edit(v);
  if (label) io::write_label(file, v);
  else io::write_image(file, v, io::PixelType::Float32);
}

TEST_F(Verify, CleanDatasetsOfEveryLayoutHaveNoProblems) {
  for (const TempDir* d : {nnunet_, hecktor_, msd_, picai_}) {
    const VerifyReport r = verify_dataset(d->path(), std::nullopt);
    EXPECT_EQ(r.errors(), 0) << all_lines(r.problems);
    // Negative prostate cases have empty labels, which is worth a warning and nothing else.
    EXPECT_EQ(size_t(r.warnings()), lines_with(r.problems, "empty label").size()) << all_lines(r.problems);
    EXPECT_EQ(r.labelled, 2);
  }
}

TEST_F(Verify, MissingChannelFilePrintsTheExpectedName) {
  const fs::path root = copy_of(nnunet_);
  fs::remove(root / "imagesTr" / "CHMR001_0001.nii.gz");
  expect_line(root, "imagesTr/CHMR001_0001.nii.gz: missing channel file 'CHMR001_0001.nii.gz' (channel 1 'PET')");
}

TEST_F(Verify, DotChannelSuffixIsAWrongSuffix) {
  const fs::path root = copy_of(nnunet_);
  fs::rename(root / "imagesTr" / "CHGJ001_0000.nii.gz", root / "imagesTr" / "CHGJ001.0000.nii.gz");
  expect_line(root, "wrong channel suffix '.0000'; expected 'CHGJ001_0000.nii.gz'");
}

TEST_F(Verify, DoubledChannelSuffixIsAWrongSuffix) {
  const fs::path root = copy_of(nnunet_);
  fs::rename(root / "imagesTr" / "CHGJ001_0001.nii.gz", root / "imagesTr" / "CHGJ001_0001_0001.nii.gz");
  expect_line(root, "carries the channel suffix twice; expected 'CHGJ001_0001.nii.gz'");
}

TEST_F(Verify, ExtraChannelBeyondDatasetJsonIsAChannelCountError) {
  const fs::path root = copy_of(nnunet_);
  fs::copy(root / "imagesTr" / "CHGJ001_0001.nii.gz", root / "imagesTr" / "CHGJ001_0002.nii.gz");
  expect_line(root, "channel count: suffix _0002 but dataset.json declares 2 channel(s)");
}

TEST_F(Verify, FourDimensionalImageWithTheWrongChannelCountIsReported) {
  const fs::path root = copy_of(msd_);
  edit_image(root / "imagesTr" / "CHGJ001.nii.gz", [](io::Volume& v) { v.data = torch::cat({v.data, v.data.narrow(0, 0, 1)}, 0); });
  expect_line(root, "channel count: the image has 3 channel(s), dataset.json declares 2");
}

TEST_F(Verify, UndeclaredLabelValuesAreListed) {
  const fs::path root = copy_of(hecktor_);
  edit_image(root / "hecktor_nii" / "CHMR001_gtvt.nii.gz", [](io::Volume& v) { v.data.index_put_({0, 0, 0, 0}, 3); }, true);
  expect_line(root, "undeclared label values [3]; declared values are [0, 1]");
}

TEST_F(Verify, NanAndInfVoxelsAreCounted) {
  const fs::path root = copy_of(hecktor_);
  edit_image(root / "hecktor_nii" / "CHGJ001_pt.nii.gz", [](io::Volume& v) {
    v.data.index_put_({0, 0, 0, 0}, std::nanf(""));
    v.data.index_put_({0, 0, 0, 1}, INFINITY);
  });
  expect_line(root, "hecktor_nii/CHGJ001_pt.nii.gz: image has 1 NaN and 1 Inf voxel(s)");
}

TEST_F(Verify, DuplicateIdsAreReported) {
  const fs::path root = copy_of(msd_);
  Json j = read_json(root / "dataset.json");
  j["training"].push_back(j["training"][0]);
  j["numTraining"] = 3;
  write_json(root / "dataset.json", j);
  expect_line(root, "duplicate id 'CHGJ001'");
}

TEST_F(Verify, LabelWithoutImagesIsReported) {
  const fs::path root = copy_of(nnunet_);
  fs::copy(root / "labelsTr" / "CHGJ001.nii.gz", root / "labelsTr" / "ghost.nii.gz");
  expect_line(root, "labelsTr/ghost.nii.gz: label without images");
}

TEST_F(Verify, ImagesWithoutLabelAreReported) {
  const fs::path root = copy_of(nnunet_);
  fs::remove(root / "labelsTr" / "CHMR001.nii.gz");
  expect_line(root, "image without label: case 'CHMR001' has images but no label; expected 'labelsTr/CHMR001.nii.gz'");
}

TEST_F(Verify, EmptyLabelIsOnlyAWarning) {
  const fs::path root = copy_of(hecktor_);
  edit_image(root / "hecktor_nii" / "CHMR001_gtvt.nii.gz", [](io::Volume& v) { v.data.zero_(); }, true);
  const VerifyReport r = expect_line(root, "hecktor_nii/CHMR001_gtvt.nii.gz: empty label: no foreground voxel", Severity::Warning);
  EXPECT_EQ(r.errors(), 0) << all_lines(r.problems);
}

TEST_F(Verify, LabelShapeMismatchPrintsBothShapes) {
  const fs::path root = copy_of(hecktor_);
  edit_image(root / "hecktor_nii" / "CHGJ001_gtvt.nii.gz", [](io::Volume& v) { v.data = v.data.narrow(1, 0, 19).contiguous(); }, true);
  expect_line(root, "shape mismatch: label [56, 56, 19] vs 'CT' [56, 56, 20] voxels (x, y, z)");
}

TEST_F(Verify, LabelSpacingMismatchPrintsTheSpacings) {
  const fs::path root = copy_of(hecktor_);
  edit_image(root / "hecktor_nii" / "CHGJ001_gtvt.nii.gz", [](io::Volume& v) { v.geometry.spacing[2] = 2.5; }, true);
  expect_line(root, "spacing mismatch: label [1, 1, 2.5] vs 'CT' [1, 1, 3] mm");
}

TEST_F(Verify, LabelOriginMismatchPrintsTheOrigins) {
  const fs::path root = copy_of(picai_);
  const fs::path labels = root / "picai_labels" / "csPCa_lesion_delineations" / "human_expert" / "resampled";
  edit_image(list_first(labels), [](io::Volume& v) { v.geometry.origin[0] += 0.75; }, true);
  expect_line(root, "origin mismatch: label [");
}

TEST_F(Verify, LabelDirectionMismatchPrintsTheDirections) {
  const fs::path root = copy_of(hecktor_);
  edit_image(root / "hecktor_nii" / "CHMR001_gtvt.nii.gz", [](io::Volume& v) { v.geometry.direction = {-1, 0, 0, 0, 1, 0, 0, 0, 1}; }, true);
  expect_line(root, "direction mismatch: label [-1, 0, 0, 0, 1, 0, 0, 0, 1] vs 'CT' [1, 0, 0, 0, 1, 0, 0, 0, 1]");
}

TEST_F(Verify, ChannelsOffTheSharedGridAreReportedWhereTheLayoutPromisesOneGrid) {
  const fs::path root = copy_of(nnunet_);
  edit_image(root / "imagesTr" / "CHGJ001_0001.nii.gz", [](io::Volume& v) { v.geometry.origin[2] += 1.5; });
  expect_line(root, "imagesTr/CHGJ001_0001.nii.gz: origin mismatch: channel 'PET'");
}

TEST_F(Verify, ChannelsWhoseFieldsOfViewDoNotOverlapAreReported) {
  const fs::path root = copy_of(hecktor_);
  edit_image(root / "hecktor_nii" / "CHGJ001_pt.nii.gz", [](io::Volume& v) { v.geometry.origin[2] += 5000; });
  expect_line(root, "hecktor_nii/CHGJ001_pt.nii.gz: fields of view do not overlap: channel 'PET' covers");
}

TEST_F(Verify, BboxOutsideTheImageIsReported) {
  const fs::path root = copy_of(hecktor_);
  const fs::path csv = root / "hecktor2021_bbox_training.csv";
  write_file_atomic(csv, "PatientID,x1,x2,y1,y2,z1,z2\nCHGJ001,1000,1048,1000,1048,1000,1048\n" +
                             read_file(csv).substr(read_file(csv).find("CHMR001")));
  expect_line(root, "bbox outside the image: bbox x [1000, 1048] y [1000, 1048] z [1000, 1048] mm, 'CT' covers");
}

TEST_F(Verify, EveryProblemIsReportedAtOnce) {
  const fs::path root = copy_of(nnunet_);
  fs::remove(root / "imagesTr" / "CHMR001_0001.nii.gz");
  fs::copy(root / "labelsTr" / "CHGJ001.nii.gz", root / "labelsTr" / "ghost.nii.gz");
  edit_image(root / "labelsTr" / "CHGJ001.nii.gz", [](io::Volume& v) { v.data.index_put_({0, 0, 0, 0}, 4); }, true);
  const VerifyReport r = verify_dataset(root, std::nullopt);
  EXPECT_EQ(lines_with(r.problems, "missing channel file").size(), 1u);
  EXPECT_EQ(lines_with(r.problems, "label without images").size(), 1u);
  EXPECT_EQ(lines_with(r.problems, "undeclared label values [4]").size(), 1u);
  EXPECT_GE(r.errors(), 3);
}

TEST_F(Verify, HeadersOnlySkipsTheVoxelChecks) {
  const fs::path root = copy_of(hecktor_);
  edit_image(root / "hecktor_nii" / "CHGJ001_pt.nii.gz", [](io::Volume& v) { v.data.index_put_({0, 0, 0, 0}, std::nanf("")); });
  VerifyOptions o;
  o.check_voxels = false;
  o.workers = 2;
  EXPECT_EQ(verify_dataset(root, std::nullopt, o).errors(), 0);
  o.check_voxels = true;
  EXPECT_EQ(verify_dataset(root, std::nullopt, o).errors(), 1);
}

}  // namespace
}  // namespace teachformer::data
