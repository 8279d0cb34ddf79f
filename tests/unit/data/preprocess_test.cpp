#include "teachformer/data/preprocess.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "data_test_util.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/data/preprocessed.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/transforms/lesions.hpp"
#include "test_support.hpp"

namespace teachformer::data {
namespace {

using test::TempDir;
using namespace test_util;
namespace fs = std::filesystem;

// One tiny HECKTOR-like dataset (2 labelled + 1 unlabelled case) shared by the tests of this file.
class HecktorPreprocess : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    synthesize(dir_->path(), tiny_petct(DatasetFormat::Hecktor2021, 3, 1));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static fs::path root() { return dir_->path(); }
  static TempDir* dir_;
};
TempDir* HecktorPreprocess::dir_ = nullptr;

TEST_F(HecktorPreprocess, PlanCropsToTheBboxAtOneMillimetreWithDefaultSchemes) {
  const Dataset ds = open_dataset(root());
  const PreprocessPlan plan = make_plan(ds, {});
  EXPECT_TRUE(plan.crop_to_bbox);
  EXPECT_EQ(plan.bbox_spacing, (Vec3{1, 1, 1}));
  EXPECT_EQ(plan.reference_channel, "CT");
  EXPECT_EQ(plan.channels[0].normalization.scheme, transforms::NormScheme::Window);
  EXPECT_EQ(plan.channels[1].normalization.scheme, transforms::NormScheme::ZScore);
  EXPECT_FALSE(plan.target_spacing.has_value());
}

TEST_F(HecktorPreprocess, CaseIsResampledIntoTheBboxAndNormalised) {
  const Dataset ds = open_dataset(root());
  const PreprocessPlan plan = make_plan(ds, {});
  const Case& c = ds.training[0];
  const PreprocessedCase pc = preprocess_case(c, plan);
  EXPECT_EQ(pc.image.sizes().vec(), (std::vector<int64_t>{2, 48, 48, 48}));
  EXPECT_EQ(pc.image.scalar_type(), torch::kFloat);
  ASSERT_TRUE(pc.labelled());
  EXPECT_EQ(pc.label.sizes().vec(), (std::vector<int64_t>{1, 48, 48, 48}));
  EXPECT_EQ(pc.label.scalar_type(), torch::kUInt8);
  EXPECT_GE(pc.image[0].min().item<float>(), -1.0f);
  EXPECT_LE(pc.image[0].max().item<float>(), 1.0f);
  EXPECT_NEAR(pc.image[1].mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(pc.image[1].std(false).item<double>(), 1.0, 1e-3);
  EXPECT_EQ(transforms::count_components(pc.label), 1);
  ASSERT_TRUE(pc.geometry.bbox.has_value());
  EXPECT_EQ(pc.geometry.bbox->min, c.bbox->min);
  EXPECT_EQ(pc.geometry.patient_id, c.patient_id);
  EXPECT_EQ(pc.geometry.channel_grids.size(), 2u);
  // The PET grid differs from the CT grid: it was resampled, not copied.
  EXPECT_FALSE(pc.geometry.channel_grids[1].approx_equal(pc.geometry.channel_grids[0]));
}

TEST_F(HecktorPreprocess, CaseWithoutALabelIsPreprocessedToo) {
  const Dataset ds = open_dataset(root());
  const PreprocessedCase pc = preprocess_case(ds.unlabelled.at(0), make_plan(ds, {}));
  EXPECT_FALSE(pc.labelled());
  EXPECT_EQ(pc.image.size(0), 2);
}

TEST_F(HecktorPreprocess, RestoredLabelEqualsTheOriginalOnTheCtGrid) {
  const Dataset ds = open_dataset(root());
  const Case& c = ds.training[1];
  const PreprocessedCase pc = preprocess_case(c, make_plan(ds, {}));
  const io::Volume restored = transforms::restore_to_reference(pc.label, pc.geometry, transforms::Interpolation::Nearest);
  const io::Volume original = io::read_label(*c.label_file);
  EXPECT_TRUE(restored.grid().approx_equal(original.grid(), 1e-3));
  ASSERT_GT(original.data.sum().item<int64_t>(), 0);
  // The tumour lies inside the bbox; nearest twice through a finer grid returns every CT voxel's own value.
  EXPECT_TRUE(torch::equal(restored.data, original.data));
}

TEST_F(HecktorPreprocess, DatasetIsWrittenReadBackAndFinishedCasesAreSkipped) {
  const Dataset ds = open_dataset(root());
  TempDir out;
  PreprocessOptions o;
  o.workers = 2;
  const PreprocessSummary first = preprocess_dataset(ds, out.path(), o);
  EXPECT_EQ(first.written, 3);
  EXPECT_EQ(first.skipped, 0);
  for (const char* f : {"plan.json", "dataset.json", "fingerprint.json", "cases/CHGJ001.safetensors"})
    EXPECT_TRUE(fs::exists(out / f)) << f;

  const PreprocessedDataset pd = open_preprocessed(out.path());
  EXPECT_EQ(pd.case_ids(), (std::vector<std::string>{"CHGJ001", "CHMR001", "CHUM001"}));
  EXPECT_EQ(pd.patient_ids(), pd.case_ids());
  EXPECT_EQ(pd.labelled_case_ids().size(), 2u);
  EXPECT_EQ(pd.channel_names(), (std::vector<std::string>{"CT", "PET"}));
  EXPECT_EQ(pd.format(), "hecktor2021");
  ASSERT_EQ(pd.labels().size(), 2u);
  EXPECT_EQ(pd.labels()[1].name, "GTVt");
  EXPECT_EQ(pd.plan().digest(), first.plan.digest());

  const PreprocessedCase loaded = pd.load_case("CHGJ001");
  const PreprocessedCase direct = preprocess_case(ds.training[0], pd.plan());
  EXPECT_TRUE(torch::allclose(loaded.image, direct.image, 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(loaded.label, direct.label));
  EXPECT_EQ(loaded.geometry.to_json(), direct.geometry.to_json());
  EXPECT_FALSE(pd.load_case("CHUM001").labelled());
  EXPECT_THROW(pd.load_case("nope"), InvalidArgument);

  const auto stamp = fs::last_write_time(out / "cases" / "CHMR001.safetensors");
  const PreprocessSummary again = preprocess_dataset(ds, out.path(), o);
  EXPECT_EQ(again.written, 0);
  EXPECT_EQ(again.skipped, 3);
  EXPECT_EQ(fs::last_write_time(out / "cases" / "CHMR001.safetensors"), stamp);

  fs::remove(out / "cases" / "CHMR001.safetensors");
  write_file_atomic(out / "cases" / "CHUM001.safetensors", "truncated");
  const PreprocessSummary redo = preprocess_dataset(ds, out.path(), o);
  EXPECT_EQ(redo.written, 2);
  EXPECT_EQ(redo.skipped, 1);
  EXPECT_NO_THROW(open_preprocessed(out.path()).load_case("CHUM001"));

  // Another plan in the same folder is refused instead of mixing cases.
  PreprocessOptions other = o;
  other.plan.target_spacing = Vec3{2, 2, 2};
  try {
    preprocess_dataset(ds, out.path(), other);
    FAIL();
  } catch (const DatasetError& e) {
    EXPECT_NE(std::string(e.what()).find("different plan"), std::string::npos) << e.what();
  }
}

TEST_F(HecktorPreprocess, FingerprintHoldsStatisticsOfTheWrittenCases) {
  const Dataset ds = open_dataset(root());
  TempDir out;
  PreprocessOptions o;
  o.plan.ct_window = CtWindow::Fingerprint;
  const PreprocessSummary s = preprocess_dataset(ds, out.path(), o);
  const Json f = read_json(out / "fingerprint.json");
  EXPECT_EQ(f.at("num_cases"), 3);
  const Json& ct_fg = f.at("intensity").at("CT").at("foreground");
  // The CT window is the foreground percentile range of the written cases' raw intensities.
  const auto& window = s.plan.channels[0].normalization;
  EXPECT_EQ(window.source, "fingerprint");
  EXPECT_DOUBLE_EQ(window.lower, ct_fg.at("p00_5").get<double>());
  EXPECT_DOUBLE_EQ(window.upper, ct_fg.at("p99_5").get<double>());
  // Tumour tissue is enhancing soft tissue: the window sits around 50-150 HU, far from the fixed [-1024, 1024].
  EXPECT_GT(window.lower, 0.0);
  EXPECT_LT(window.upper, 200.0);
  const Json& cases = f.at("cases");
  ASSERT_EQ(cases.size(), 3u);
  EXPECT_EQ(cases[0].at("lesions"), 1);
  EXPECT_GT(cases[0].at("label_voxels").at("1").get<int64_t>(), 100);
  EXPECT_EQ(cases[2].at("labelled"), false);
  EXPECT_EQ(cases[0].at("shape"), Json({48, 48, 48}));
  EXPECT_EQ(cases[0].at("original_spacing"), Json({1.0, 1.0, 3.0}));
  EXPECT_GT(f.at("intensity").at("PET").at("all").at("count").get<int64_t>(), 3 * 48 * 48 * 48 - 1);
  // Re-running with the same options reuses the stored window without a new fingerprint pass.
  EXPECT_EQ(preprocess_dataset(ds, out.path(), o).skipped, 3);
}

TEST_F(HecktorPreprocess, DatasetWithErrorsIsRefused) {
  TempDir copy;
  copy_tree(root(), copy.path());
  fs::remove(copy / "hecktor_nii" / "CHGJ001_pt.nii.gz");
  const Dataset ds = open_dataset(copy.path());
  TempDir out;
  try {
    preprocess_dataset(ds, out.path(), {});
    FAIL();
  } catch (const DatasetError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("CHGJ001_pt.nii.gz"), std::string::npos) << msg;
    EXPECT_NE(msg.find("teachformer verify"), std::string::npos) << msg;
  }
}

// A preprocessed dataset.json from someone else: case ids name files in cases/ and may not leave it; label values
// must be integers.
TEST_F(HecktorPreprocess, AnEditedDatasetJsonCannotPointOutsideItsFolder) {
  TempDir out;
  PreprocessOptions o;
  o.workers = 1;
  preprocess_dataset(open_dataset(root()), out.path(), o);
  const Json good = read_json(out / "dataset.json");
  const auto refused = [&](const Json& edited, const std::string& fragment) {
    write_file_atomic(out / "dataset.json", edited.dump(1));
    try {
      open_preprocessed(out.path());
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("dataset.json"), std::string::npos) << e.what();
    }
  };
  Json escaping = good;
  escaping["cases"][0]["id"] = "../../outside";
  refused(escaping, "case id '../../outside' contains '/'");
  Json dots = good;
  dots["cases"][0]["id"] = "..";
  refused(dots, "case id '..' is not a name");
  Json label = good;
  label["labels"]["GTVt"] = "one";
  refused(label, "label 'GTVt' must have an integer value from 0 to 255");
  write_file_atomic(out / "dataset.json", good.dump(1));
  EXPECT_NO_THROW(open_preprocessed(out.path()));
}

TEST(PreprocessPlan, JsonRoundTripIsStrict) {
  PreprocessPlan p;
  p.channels = {{"CT", transforms::Normalization::window(-100, 200, "fingerprint")}, {"PET", transforms::Normalization::zscore()}};
  p.reference_channel = "CT";
  p.crop_to_bbox = true;
  p.image_interpolation = transforms::Interpolation::BSpline;
  p.lesion_check = transforms::LesionCheck::Error;
  const PreprocessPlan back = PreprocessPlan::from_json(Json::parse(p.to_json().dump()), "t");
  EXPECT_EQ(back.to_json(), p.to_json());
  EXPECT_EQ(back.digest(), p.digest());
  Json j = p.to_json();
  j["spacing"] = {1, 1, 1};
  EXPECT_THROW(PreprocessPlan::from_json(j, "t"), ConfigError);
  j = p.to_json();
  j["label_interpolation"] = "linear";
  EXPECT_THROW(PreprocessPlan::from_json(j, "t"), ConfigError);
  j = p.to_json();
  j["reference_channel"] = "MR";
  EXPECT_THROW(PreprocessPlan::from_json(j, "t"), ConfigError);
  j = p.to_json();
  j["target_spacing"] = {1, -1, 1};
  EXPECT_THROW(PreprocessPlan::from_json(j, "t"), ConfigError);
}

TEST(PreprocessNnunet, TargetSpacingResamplesTheReferenceGridAndKeepsItsExtent) {
  TempDir dir;
  synthesize(dir.path(), tiny_petct(DatasetFormat::NnUNet, 1));
  const Dataset ds = open_dataset(dir.path());
  PlanOptions po;
  const PreprocessPlan keep = make_plan(ds, po);
  EXPECT_FALSE(keep.crop_to_bbox);
  EXPECT_EQ(preprocess_case(ds.training[0], keep).image.sizes().vec(), (std::vector<int64_t>{2, 20, 56, 56}));
  po.target_spacing = Vec3{2, 2, 3};
  const PreprocessedCase pc = preprocess_case(ds.training[0], make_plan(ds, po));
  EXPECT_EQ(pc.image.sizes().vec(), (std::vector<int64_t>{2, 20, 28, 28}));
  EXPECT_EQ(pc.geometry.preprocessed.geometry.spacing, (Vec3{2, 2, 3}));
}

TEST(PreprocessNnunet, UnknownChannelNameNeedsANamedScheme) {
  TempDir dir;
  synthesize(dir.path(), tiny_petct(DatasetFormat::NnUNet, 1));
  Json j = read_json(dir / "dataset.json");
  j["channel_names"]["1"] = "Tracer";
  write_json(dir / "dataset.json", j);
  const Dataset ds = open_dataset(dir.path());
  try {
    make_plan(ds, {});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--norm 'Tracer=zscore'"), std::string::npos) << e.what();
  }
  PlanOptions po;
  po.normalization["tracer"] = transforms::Normalization::zscore("user");
  const PreprocessPlan plan = make_plan(ds, po);
  EXPECT_EQ(plan.channels[1].normalization.source, "user");
  po.normalization["T1"] = transforms::Normalization::zscore("user");
  EXPECT_THROW(make_plan(ds, po), InvalidArgument);
}

// A one-channel nnU-Net dataset whose label holds two planes x = 4 and x = 6 (two lesions one voxel apart).
fs::path two_plane_dataset(const TempDir& dir) {
  io::Volume image{torch::rand({1, 6, 6, 16}) * 100, Geometry{}};
  io::Volume label{torch::zeros({1, 6, 6, 16}, torch::kUInt8), Geometry{}};
  label.data.select(3, 4).fill_(1);
  label.data.select(3, 6).fill_(1);
  io::write_image(dir / "imagesTr" / "a_0000.nii.gz", image);
  io::write_label(dir / "labelsTr" / "a.nii.gz", label);
  write_json(dir / "dataset.json", {{"channel_names", {{"0", "CT"}}},
                                    {"labels", {{"background", 0}, {"lesion", 1}}},
                                    {"numTraining", 1},
                                    {"file_ending", ".nii.gz"}});
  return dir.path();
}

TEST(PreprocessNnunet, LesionCountCheckCatchesLesionsLostByResampling) {
  TempDir dir;
  const Dataset ds = open_dataset(two_plane_dataset(dir));
  PlanOptions po;
  po.target_spacing = Vec3{4, 1, 1};  // samples x = 1.5, 5.5, 9.5, 13.5: only the plane at x = 6 survives
  po.lesion_check = transforms::LesionCheck::Warn;
  const ResampledCase r = resample_case(ds.training[0], make_plan(ds, po));
  EXPECT_EQ(r.lesions_before, 2);
  EXPECT_EQ(r.lesions_after, 1);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("case 'a': the label has 1 lesion(s) (26-connected components) after resampling but 2"),
            std::string::npos);
  po.lesion_check = transforms::LesionCheck::Error;
  EXPECT_THROW(preprocess_case(ds.training[0], make_plan(ds, po)), DatasetError);
  TempDir out;
  PreprocessOptions o;
  o.plan = po;
  try {
    preprocess_dataset(ds, out.path(), o);
    FAIL();
  } catch (const DatasetError& e) {
    EXPECT_NE(std::string(e.what()).find("1 of 1 case(s) failed"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out / "dataset.json"));
}

TEST(PreprocessMri, ChannelsAreResampledOntoTheT2wGridAndLabelsBinarised) {
  TempDir dir;
  synthesize(dir.path(), tiny_mri(DatasetFormat::Picai, 4));
  const Dataset ds = open_dataset(dir.path());
  const PreprocessPlan plan = make_plan(ds, {});
  EXPECT_EQ(plan.reference_channel, "T2W");
  EXPECT_EQ(plan.channels[1].normalization.scheme, transforms::NormScheme::Scale);
  for (const auto& c : ds.training) {
    const PreprocessedCase pc = preprocess_case(c, plan);
    EXPECT_EQ(pc.image.sizes().vec(), (std::vector<int64_t>{3, 8, 96, 96}));
    EXPECT_LE(pc.label.max().item<int>(), 1);
    // The T2W grid is the reference: copied, not interpolated.
    EXPECT_TRUE(pc.geometry.preprocessed.approx_equal(pc.geometry.channel_grids[0]));
  }
}

}  // namespace
}  // namespace teachformer::data
