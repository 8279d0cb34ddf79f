#include "teachformer/data/dataset.hpp"

#include <fstream>
#include <sstream>

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

struct LayoutCase {
  PhantomKind kind;
  DatasetFormat layout;
};
std::string layout_name(const testing::TestParamInfo<LayoutCase>& info) {
  return to_string(info.param.kind) + "_" + to_string(info.param.layout);
}

class LayoutRoundTrip : public testing::TestWithParam<LayoutCase> {};

TEST_P(LayoutRoundTrip, SynthesizedDatasetReadsBackWithTheSameCasesChannelsAndGeometry) {
  const auto [kind, layout] = GetParam();
  TempDir dir;
  const SynthOptions o = kind == PhantomKind::PetCt ? tiny_petct(layout, 3, 1) : tiny_mri(layout, 3, 1);
  const SynthResult written = synthesize(dir.path(), o);
  EXPECT_EQ(detect_format(dir.path()), layout);
  const Dataset ds = open_dataset(dir.path());
  EXPECT_EQ(ds.format, layout);
  EXPECT_EQ(ds.error_count(), 0) << all_lines(ds.problems);
  ASSERT_EQ(ds.training.size(), 2u);
  ASSERT_EQ(ds.unlabelled.size(), 1u);
  EXPECT_EQ(ds.channel_names, written.cases[0].channel_names);
  EXPECT_EQ(ds.reference_channel(), kind == PhantomKind::PetCt ? "CT" : "T2W");
  for (const auto& sc : written.cases) {
    const auto& list = sc.labelled ? ds.training : ds.unlabelled;
    const auto it = std::find_if(list.begin(), list.end(), [&](const Case& c) { return c.id == sc.id; });
    ASSERT_NE(it, list.end()) << sc.id;
    const Case& c = *it;
    // nnU-Net and MSD layouts have no notion of patients: there the patient is the case.
    const bool has_patients = layout == DatasetFormat::Picai || layout == DatasetFormat::Hecktor2021;
    EXPECT_EQ(c.patient_id, has_patients ? sc.patient_id : sc.id);
    EXPECT_EQ(c.labelled(), sc.labelled);
    EXPECT_EQ(c.bbox.has_value(), sc.bbox.has_value());
    if (c.bbox) {
      EXPECT_EQ(c.bbox->min, sc.bbox->min);
      EXPECT_EQ(c.bbox->max, sc.bbox->max);
    }
    const LoadedCase loaded = c.load();
    ASSERT_EQ(loaded.channels.size(), sc.channel_grids.size());
    for (size_t k = 0; k < loaded.channels.size(); ++k)
      EXPECT_TRUE(loaded.channels[k].grid().approx_equal(sc.channel_grids[k], 1e-3, 1e-5))
          << sc.id << " channel " << k << ": " << loaded.channels[k].grid().to_string() << " vs "
          << sc.channel_grids[k].to_string();
    // The reference channel comes back voxel for voxel (written as int16 from integral values).
    const int index = int(std::find_if(written.cases.begin(), written.cases.end(), [&](const SynthCase& s) { return s.id == sc.id; }) -
                          written.cases.begin());
    const Phantom p = make_phantom(o, index);
    const int ref = reference_channel_index(p.channel_names);
    EXPECT_TRUE(torch::equal(loaded.channels[size_t(ref)].data, p.channels[size_t(ref)].data)) << sc.id;
    if (sc.labelled) {
      ASSERT_TRUE(loaded.label.has_value());
      EXPECT_TRUE(loaded.label->grid().approx_equal(sc.label_grid, 1e-3, 1e-5));
      EXPECT_TRUE(torch::equal(loaded.label->data, p.label.data.ge(1).to(torch::kUInt8))) << sc.id;
    } else {
      EXPECT_FALSE(loaded.label.has_value());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllLayouts, LayoutRoundTrip,
                         testing::Values(LayoutCase{PhantomKind::PetCt, DatasetFormat::Hecktor2021},
                                         LayoutCase{PhantomKind::PetCt, DatasetFormat::NnUNet},
                                         LayoutCase{PhantomKind::PetCt, DatasetFormat::Msd},
                                         LayoutCase{PhantomKind::Mri, DatasetFormat::Picai},
                                         LayoutCase{PhantomKind::Mri, DatasetFormat::NnUNet},
                                         LayoutCase{PhantomKind::Mri, DatasetFormat::Msd}),
                         layout_name);

TEST(Hecktor, EditionTwentyTwentyPerPatientFoldersAreRead) {
  TempDir dir;
  synthesize(dir.path(), tiny_petct(DatasetFormat::Hecktor2021, 2));
  const fs::path nii = dir / "hecktor_nii";
  for (const std::string pid : {"CHGJ001", "CHMR001"}) {
    fs::create_directories(nii / pid);
    fs::rename(nii / (pid + "_ct.nii.gz"), nii / pid / (pid + "_ct.nii.gz"));
    fs::rename(nii / (pid + "_pt.nii.gz"), nii / pid / (pid + "_pt.nii.gz"));
    fs::rename(nii / (pid + "_gtvt.nii.gz"), nii / pid / (pid + "_ct_gtvt.nii.gz"));
  }
  const Dataset ds = open_dataset(dir.path());
  EXPECT_EQ(ds.format, DatasetFormat::Hecktor2021);
  EXPECT_EQ(ds.error_count(), 0) << all_lines(ds.problems);
  ASSERT_EQ(ds.training.size(), 2u);
  EXPECT_EQ(ds.training[0].label_file->filename(), "CHGJ001_ct_gtvt.nii.gz");
  EXPECT_TRUE(ds.training[0].bbox.has_value());
}

TEST(Hecktor, EditionTwentyTwentyTwoLayoutIsDetectedAndRead) {
  TempDir src, dir;
  synthesize(src.path(), tiny_petct(DatasetFormat::Hecktor2021, 2));
  fs::create_directories(dir / "imagesTr");
  fs::create_directories(dir / "labelsTr");
  for (const std::string pid : {"CHGJ001", "CHMR001"}) {
    const std::string id = pid.substr(0, 4) + "-" + pid.substr(4);
    fs::copy(src / "hecktor_nii" / (pid + "_ct.nii.gz"), dir / "imagesTr" / (id + "__CT.nii.gz"));
    fs::copy(src / "hecktor_nii" / (pid + "_pt.nii.gz"), dir / "imagesTr" / (id + "__PT.nii.gz"));
    fs::copy(src / "hecktor_nii" / (pid + "_gtvt.nii.gz"), dir / "labelsTr" / (id + ".nii.gz"));
  }
  EXPECT_EQ(detect_format(dir.path()), DatasetFormat::Hecktor2022);
  const Dataset ds = open_dataset(dir.path());
  EXPECT_EQ(ds.error_count(), 0) << all_lines(ds.problems);
  ASSERT_EQ(ds.training.size(), 2u);
  EXPECT_EQ(ds.training[0].id, "CHGJ-001");
  ASSERT_EQ(ds.labels.size(), 3u);
  EXPECT_EQ(ds.labels[2].name, "GTVn");
  EXPECT_FALSE(ds.training[0].bbox.has_value());
  // A single underscore before the modality is the classic naming slip.
  fs::rename(dir / "imagesTr" / "CHGJ-001__PT.nii.gz", dir / "imagesTr" / "CHGJ-001_PT.nii.gz");
  const Dataset broken = open_dataset(dir.path());
  EXPECT_EQ(lines_with(broken.problems, "wrong channel suffix '_PT'; expected 'CHGJ-001__PT.nii.gz'").size(), 1u)
      << all_lines(broken.problems);
}

TEST(Picai, CasesWithoutALabelFileAreListedAsUnlabelledAndReported) {
  TempDir dir;
  synthesize(dir.path(), tiny_mri(DatasetFormat::Picai, 3, 1));
  const Dataset ds = open_dataset(dir.path());
  EXPECT_EQ(ds.training.size(), 2u);
  ASSERT_EQ(ds.unlabelled.size(), 1u);
  EXPECT_EQ(ds.error_count(), 0);
  EXPECT_EQ(lines_with(ds.problems, "1 case(s) have no human-expert label and are listed as unlabelled: " + ds.unlabelled[0].id).size(), 1u)
      << all_lines(ds.problems);
  EXPECT_TRUE(ds.training[0].binarize_label);
  EXPECT_EQ(ds.raw_label_values, (std::vector<int>{0, 1, 2, 3, 4, 5}));
}

TEST(Detection, AnUnknownFolderSaysWhatWasLookedFor) {
  TempDir dir;
  std::ofstream(dir / "notes.txt") << "hello";
  try {
    open_dataset(dir.path());
    FAIL();
  } catch (const DatasetError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot detect the layout"), std::string::npos);
    EXPECT_NE(msg.find("--format"), std::string::npos);
  }
  EXPECT_THROW(open_dataset(dir / "missing"), IoError);
}

TEST(Detection, AForcedFormatThatDoesNotFitPointsToTheRightOne) {
  TempDir dir;
  synthesize(dir.path(), tiny_petct(DatasetFormat::NnUNet, 1));
  try {
    open_dataset(dir.path(), DatasetFormat::Msd);
    FAIL();
  } catch (const DatasetError& e) {
    EXPECT_NE(std::string(e.what()).find("--format nnunet"), std::string::npos) << e.what();
  }
  EXPECT_THROW(format_from_string("nnunetv2"), InvalidArgument);
}

TEST(NnUNetListing, NonStringPathsAndOutOfRangeLabelsAreProblems) {
  TempDir dir;
  write_file_atomic(dir / "dataset.json", R"({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz",
      "labels": {"background": 0, "tumour": 1, "huge": 4294967297, "negative": -1},
      "dataset": {"a": {"images": [7], "label": "labelsTr/a.nii.gz"},
                  "b": {"images": ["imagesTr/)" + std::string(5000, 'x') + R"(.nii.gz"]}}})");
  const Dataset ds = open_dataset(dir.path());
  const std::string all = all_lines(ds.problems);
  EXPECT_NE(all.find("images must be paths, got 7"), std::string::npos) << all;
  EXPECT_NE(all.find("label 'huge' has value 4294967297; expected an integer from 0 to 255"), std::string::npos) << all;
  EXPECT_NE(all.find("label 'negative'"), std::string::npos) << all;
  EXPECT_NE(all.find("missing channel file"), std::string::npos) << all;
}

TEST(Msd, LabelValuesOutsideTheLabelMapRangeAreProblems) {
  TempDir dir;
  write_file_atomic(dir / "dataset.json", R"({"modality": {"0": "T2"}, "labels": {"0": "background", "300": "x"},
      "training": []})");
  const Dataset ds = open_dataset(dir.path());
  EXPECT_FALSE(lines_with(ds.problems, "label entry \"300\"").empty()) << all_lines(ds.problems);
}

TEST(Hecktor, BboxCsvColumnsAreReadByNameAndAMissingColumnIsFatal) {
  TempDir dir;
  synthesize(dir.path(), tiny_petct(DatasetFormat::Hecktor2021, 1));
  const fs::path csv = dir / "hecktor2021_bbox_training.csv";
  const std::string text = read_file(csv);
  // Reordered columns plus an extra one read the same boxes.
  const Dataset before = open_dataset(dir.path());
  std::istringstream in(text);
  std::string header, row;
  std::getline(in, header);
  std::getline(in, row);
  std::vector<std::string> f;
  std::stringstream rs(row);
  for (std::string x; std::getline(rs, x, ',');) f.push_back(x);
  write_file_atomic(csv, "z2,z1,y2,y1,x2,x1,PatientID,Centre\n" + f[6] + "," + f[5] + "," + f[4] + "," + f[3] + "," +
                             f[2] + "," + f[1] + "," + f[0] + ",CHGJ\n");
  const Dataset reordered = open_dataset(dir.path());
  ASSERT_EQ(reordered.training.size(), 1u);
  EXPECT_EQ(reordered.training[0].bbox->min, before.training[0].bbox->min);
  EXPECT_EQ(reordered.training[0].bbox->max, before.training[0].bbox->max);
  write_file_atomic(csv, "PatientID,x1,x2,y1,y2,z1\nCHGJ001,1,2,3,4,5\n");
  try {
    open_dataset(dir.path());
    FAIL();
  } catch (const DatasetError& e) {
    EXPECT_NE(std::string(e.what()).find("column 'z2' is missing"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace teachformer::data
