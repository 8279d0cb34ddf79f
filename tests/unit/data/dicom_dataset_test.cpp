#include "teachformer/data/dicom_dataset.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "data_test_util.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/io/image_io.hpp"
#include "test_support.hpp"

namespace teachformer::data {
namespace {

namespace fs = std::filesystem;
using teachformer::test::TempDir;

#define SKIP_WITHOUT_DCMTK() \
  if (!io::dicom_available()) GTEST_SKIP() << "built without DCMTK"

const Problem* find_problem(const Dataset& ds, const std::string& text) {
  for (const auto& p : ds.problems)
    if (p.to_string().find(text) != std::string::npos) return &p;
  return nullptr;
}

TEST(DicomDataset, SynthPetCtStudiesAreDetectedAndMatchedToCtAndPet) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  const auto r = synthesize(dir.path(), test_util::tiny_petct(DatasetFormat::Dicom, 2));
  EXPECT_EQ(detect_format(dir.path()), DatasetFormat::Dicom);
  const Dataset ds = open_dataset(dir.path());
  EXPECT_EQ(ds.error_count(), 0) << (ds.problems.empty() ? "" : ds.problems.front().to_string());
  EXPECT_EQ(ds.channel_names, (std::vector<std::string>{"CT", "PET"}));
  ASSERT_EQ(ds.unlabelled.size(), 2u);
  const Case& c = ds.unlabelled[0];
  EXPECT_EQ(c.id, r.cases[0].id);
  ASSERT_TRUE(c.bbox.has_value());  // from bbox.csv
  const LoadedCase loaded = c.load();
  // Same grids and values as the phantom: CT in HU exactly, PET back in SUV after the decay in the header.
  const Phantom p = make_phantom(test_util::tiny_petct(DatasetFormat::Dicom, 2), 0);
  EXPECT_TRUE(loaded.channels[0].grid().approx_equal(p.channels[0].grid(), 1e-3));
  EXPECT_TRUE(torch::equal(loaded.channels[0].data, p.channels[0].data));
  EXPECT_TRUE(loaded.channels[1].grid().approx_equal(p.channels[1].grid(), 1e-3));
  const float pet_max = p.channels[1].data.max().item<float>();
  EXPECT_LT((loaded.channels[1].data - p.channels[1].data).abs().max().item<float>(), 2e-4f * pet_max + 1e-4f);
}

TEST(DicomDataset, TwoCtSeriesAreAmbiguousAndListedWithTheirDescriptions) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  synthesize(dir.path(), test_util::tiny_petct(DatasetFormat::Dicom, 1));
  const std::string id = open_dataset(dir.path()).unlabelled.at(0).id;
  // A second CT series of the same study in its own folder.
  const io::DicomSeriesInfo ct = io::dicom_series_in(dir / id / "CT");
  io::DicomSeriesHeader h;
  h.modality = "CT";
  h.description = "CT bone kernel";
  h.patient_id = ct.patient_id;
  h.study_uid = ct.study_uid;
  h.frame_of_reference_uid = ct.frame_of_reference_uid;
  io::write_dicom_series(dir / id / "CT_bone", io::read_dicom_series(ct), h);
  const Dataset ds = open_dataset(dir.path());
  EXPECT_TRUE(ds.unlabelled.empty());
  const Problem* p = find_problem(ds, "2 series match channel 'CT'");
  ASSERT_NE(p, nullptr) << (ds.problems.empty() ? "" : ds.problems.front().to_string());
  EXPECT_NE(p->message.find("CT bone kernel"), std::string::npos) << p->message;
  EXPECT_NE(p->message.find("CT head-neck 3mm"), std::string::npos) << p->message;
  // A pattern resolves it.
  DicomDatasetOptions o;
  o.series_patterns = {"CT=head-neck"};
  const Dataset fixed = open_dicom_dataset(dir.path(), o);
  EXPECT_EQ(fixed.error_count(), 0);
  ASSERT_EQ(fixed.unlabelled.size(), 1u);
  EXPECT_EQ(fixed.unlabelled[0].channel_files[0], dir / id / "CT");
}

TEST(DicomDataset, MriSeriesAreMatchedByPicaiDescriptionsAndAMissingOneIsNamed) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  synthesize(dir.path(), test_util::tiny_mri(DatasetFormat::Dicom, 1));
  const Dataset ds = open_dataset(dir.path());
  EXPECT_EQ(ds.error_count(), 0) << (ds.problems.empty() ? "" : ds.problems.front().to_string());
  EXPECT_EQ(ds.channel_names, (std::vector<std::string>{"T2W", "ADC", "HBV"}));
  ASSERT_EQ(ds.unlabelled.size(), 1u);
  const Case& c = ds.unlabelled[0];
  EXPECT_EQ(c.channel_files[0].filename(), "T2W");
  EXPECT_EQ(c.channel_files[1].filename(), "ADC");
  EXPECT_EQ(c.channel_files[2].filename(), "HBV");
  fs::remove_all(c.channel_files[1]);
  const Dataset missing = open_dataset(dir.path());
  const Problem* p = find_problem(missing, "no series for channel 'ADC'");
  ASSERT_NE(p, nullptr);
  EXPECT_NE(p->message.find("t2_tse_tra"), std::string::npos) << p->message;
}

TEST(DicomDataset, BadSeriesPatternsAreRefused) {
  auto rules = default_dicom_channel_rules({"CT", "PET"});
  EXPECT_THROW(apply_series_patterns(rules, {"CT"}), InvalidArgument);
  EXPECT_THROW(apply_series_patterns(rules, {"MR=t2"}), InvalidArgument);
  EXPECT_THROW(apply_series_patterns(rules, {"CT=("}), InvalidArgument);
  apply_series_patterns(rules, {"PET=PT:ac"});
  EXPECT_EQ(rules[1].description_pattern, "ac");
}

TEST(DicomDataset, ConvertWritesNnunetFilesThatOpenAsADataset) {
  SKIP_WITHOUT_DCMTK();
  TempDir dir;
  synthesize(dir / "dicom", test_util::tiny_petct(DatasetFormat::Dicom, 1));
  const DicomConversion r = convert_dicom(dir / "dicom", dir / "nn");
  ASSERT_EQ(r.cases.size(), 1u);
  const Dataset ds = open_dataset(dir / "nn");
  EXPECT_EQ(ds.format, DatasetFormat::NnUNet);
  EXPECT_EQ(ds.channel_names, (std::vector<std::string>{"CT", "PET"}));
  ASSERT_EQ(ds.unlabelled.size(), 1u);
  const io::Volume pet = io::read_image(ds.unlabelled[0].channel_files[1]);
  const io::Volume direct = io::read_dicom_series(dir / "dicom" / r.cases[0] / "PET");
  EXPECT_TRUE(torch::allclose(pet.data, direct.data));
}

}  // namespace
}  // namespace teachformer::data
