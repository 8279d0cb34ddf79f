#include "teachformer/data/synth.hpp"

#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "data_test_util.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/transforms/case_geometry.hpp"
#include "teachformer/transforms/resample.hpp"
#include "test_support.hpp"

namespace teachformer::data {
namespace {

using namespace test_util;

double mean_in(const torch::Tensor& image, const torch::Tensor& mask) {
  return image.reshape({-1}).masked_select(mask.reshape({-1})).mean().item<double>();
}

TEST(Synth, PhantomsAreDeterministicBySeed) {
  const SynthOptions o = tiny_petct(DatasetFormat::Hecktor2021, 2);
  const Phantom a = make_phantom(o, 1), b = make_phantom(o, 1);
  EXPECT_EQ(a.id, b.id);
  for (size_t c = 0; c < a.channels.size(); ++c) {
    EXPECT_TRUE(torch::equal(a.channels[c].data, b.channels[c].data));
    EXPECT_EQ(a.channels[c].geometry.origin, b.channels[c].geometry.origin);
  }
  EXPECT_TRUE(torch::equal(a.label.data, b.label.data));
  SynthOptions other = o;
  other.seed += 1;
  EXPECT_FALSE(torch::equal(make_phantom(other, 1).channels[0].data, a.channels[0].data));
  EXPECT_FALSE(torch::equal(make_phantom(o, 0).channels[0].data, a.channels[0].data));
}

TEST(Synth, PetCtIsAmbiguousInEachModalityAloneAndTheTumourIsBoth) {
  const SynthOptions o = tiny_petct(DatasetFormat::Hecktor2021, 4);
  for (int i = 0; i < o.cases; ++i) {
    const Phantom p = make_phantom(o, i);
    const io::Volume& ct = p.channels[0];
    const torch::Tensor pet = transforms::resample(p.channels[1], ct.grid(), transforms::Interpolation::Linear).data;
    const auto& tumour = p.structures.at("tumour");
    const auto pet_only = p.structures.at("pet_only").logical_and(tumour.logical_not());
    const auto ct_only = p.structures.at("ct_only").logical_and(tumour.logical_not());
    ASSERT_GT(tumour.sum().item<int64_t>(), 50) << p.id;
    ASSERT_GT(pet_only.sum().item<int64_t>(), 50) << p.id;
    ASSERT_GT(ct_only.sum().item<int64_t>(), 5) << p.id;
    // Tumour: a CT mass (enhancing, above soft tissue at ~40 HU) with uptake.
    EXPECT_GT(mean_in(ct.data, tumour), 70.0) << p.id;
    EXPECT_GT(mean_in(pet, tumour), 3.0) << p.id;
    // PET-hot structures without a CT mass; CT masses without uptake.
    EXPECT_GT(mean_in(pet, pet_only), 2.0) << p.id;
    EXPECT_LT(mean_in(ct.data, pet_only), 50.0) << p.id;
    EXPECT_GT(mean_in(ct.data, ct_only), 70.0) << p.id;
    EXPECT_LT(mean_in(pet, ct_only), 2.0) << p.id;
    EXPECT_TRUE(torch::equal(p.label.data[0].ne(0), tumour)) << p.id;
    // Grids: CT 1x1x3 mm; PET 4 mm on its own origin.
    EXPECT_EQ(ct.geometry.spacing, (Vec3{1, 1, 3}));
    EXPECT_EQ(p.channels[1].geometry.spacing, (Vec3{4, 4, 4}));
    EXPECT_NE(p.channels[1].geometry.origin, ct.geometry.origin);
    // The bbox holds the whole tumour and lies inside the CT.
    const Grid box = transforms::grid_for_box(*p.bbox, {1, 1, 1});
    const auto inside = transforms::inside_mask(ct.grid(), box);
    EXPECT_EQ(tumour.logical_and(inside.logical_not()).sum().item<int64_t>(), 0) << p.id;
    EXPECT_EQ(box.size, (Size3{48, 48, 48}));
  }
}

TEST(Synth, MriLesionsAndMimicsFoolOneSequenceEach) {
  const SynthOptions o = tiny_mri(DatasetFormat::Picai, 12);
  int positives = 0;
  std::set<int> grades;
  for (int i = 0; i < o.cases; ++i) {
    const Phantom p = make_phantom(o, i);
    const io::Volume& t2 = p.channels[0];
    const torch::Tensor adc = transforms::resample(p.channels[1], t2.grid(), transforms::Interpolation::Linear).data;
    const torch::Tensor hbv = transforms::resample(p.channels[2], t2.grid(), transforms::Interpolation::Linear).data;
    const auto& lesion = p.structures.at("lesion");
    if (lesion.any().item<bool>()) {
      ++positives;
      EXPECT_LT(mean_in(t2.data, lesion), 300.0) << p.id;
      EXPECT_LT(mean_in(adc, lesion), 1300.0) << p.id;
      EXPECT_GT(mean_in(hbv, lesion), 20.0) << p.id;
      const auto values = p.label.data.masked_select(p.label.data.ne(0));
      EXPECT_GE(values.min().item<int>(), 2);
      EXPECT_LE(values.max().item<int>(), 5);
      grades.insert(values.max().item<int>());
    } else {
      EXPECT_EQ(p.label.data.sum().item<int64_t>(), 0);
    }
    const auto others = lesion.logical_or(p.structures.at("t2w_only")).logical_or(p.structures.at("adc_only"));
    const auto t2_only = p.structures.at("t2w_only").logical_and(lesion.logical_or(p.structures.at("adc_only")).logical_not());
    if (t2_only.sum().item<int64_t>() > 20) {
      EXPECT_LT(mean_in(t2.data, t2_only), 300.0) << p.id;
      EXPECT_GT(mean_in(adc, t2_only), 1100.0) << p.id;
      EXPECT_LT(mean_in(hbv, t2_only), 20.0) << p.id;
    }
    const auto adc_only = p.structures.at("adc_only").logical_and(lesion.logical_or(p.structures.at("t2w_only")).logical_not());
    EXPECT_GT(others.sum().item<int64_t>(), 0) << p.id;
    if (adc_only.sum().item<int64_t>() > 20) {
      EXPECT_GT(mean_in(t2.data, adc_only), 300.0) << p.id;
      EXPECT_LT(mean_in(adc, adc_only), 1400.0) << p.id;
      EXPECT_LT(mean_in(hbv, adc_only), 20.0) << p.id;
    }
    EXPECT_EQ(t2.geometry.spacing, (Vec3{0.5, 0.5, 3}));
    EXPECT_EQ(p.channels[1].geometry.spacing, (Vec3{2, 2, 3}));
    EXPECT_EQ(p.channels[1].geometry.origin, p.channels[2].geometry.origin);
  }
  // About half negative.
  EXPECT_GE(positives, 3);
  EXPECT_LE(positives, 9);
  EXPECT_GE(grades.size(), 2u);
}

// Hard phantoms: the tumour's CT contrast and PET uptake overlap those of the look-alikes, and look-alikes touch
// it, so neither channel alone outlines it; PET is noisier.
TEST(Synth, HardPetCtLookAlikesOverlapTheTumourInEachChannel) {
  SynthOptions o = tiny_petct(DatasetFormat::Hecktor2021, 4);
  SynthOptions easy = o;
  o.difficulty = PhantomDifficulty::Hard;
  double gap_ct = 0, gap_pet = 0, noise_hard = 0, noise_easy = 0;
  for (int i = 0; i < o.cases; ++i) {
    const Phantom p = make_phantom(o, i), e = make_phantom(easy, i);
    const io::Volume& ct = p.channels[0];
    const torch::Tensor pet = transforms::resample(p.channels[1], ct.grid(), transforms::Interpolation::Linear).data;
    const auto& tumour = p.structures.at("tumour");
    const auto pet_only = p.structures.at("pet_only").logical_and(tumour.logical_not());
    const auto ct_only = p.structures.at("ct_only").logical_and(tumour.logical_not());
    gap_ct += std::abs(mean_in(ct.data, tumour) - mean_in(ct.data, ct_only));
    gap_pet += mean_in(pet, tumour) - mean_in(pet, pet_only);
    EXPECT_TRUE(torch::equal(p.label.data[0].ne(0), tumour)) << p.id;
    // PET noise: the spread of the PET in soft tissue (CT 0..80 HU) away from every structure.
    const auto spread = [](const Phantom& ph) {
      const auto& c = ph.channels[0];
      const auto pt = transforms::resample(ph.channels[1], c.grid(), transforms::Interpolation::Nearest).data[0];
      auto tissue = (c.data[0] > 0) & (c.data[0] < 80);
      for (const auto& [_, m] : ph.structures) tissue = tissue & m.logical_not();
      return pt.masked_select(tissue).std().item<double>();
    };
    noise_hard += spread(p);
    noise_easy += spread(e);
  }
  EXPECT_LT(gap_ct / o.cases, 15.0);   // tumour and CT look-alikes within a few HU
  EXPECT_LT(gap_pet / o.cases, 2.5);   // tumour and PET look-alikes within a few SUV
  EXPECT_GT(noise_hard, noise_easy);
  EXPECT_EQ(phantom_difficulty_from_string("hard"), PhantomDifficulty::Hard);
  EXPECT_THROW(phantom_difficulty_from_string("extreme"), InvalidArgument);
}

TEST(Synth, SomePicaiPatientsHaveSeveralStudies) {
  SynthOptions o = tiny_mri(DatasetFormat::Picai, 12);
  std::map<std::string, int> studies;
  for (int i = 0; i < o.cases; ++i) {
    const Phantom p = make_phantom(o, i);
    ++studies[p.patient_id];
    EXPECT_EQ(p.id.rfind(p.patient_id + "_", 0), 0u);
  }
  EXPECT_LT(studies.size(), 12u);
}

TEST(Synth, BadOptionsNameTheOption) {
  SynthOptions o = tiny_petct(DatasetFormat::Hecktor2021, 2);
  o.bbox_mm = 144;
  try {
    o.validate();
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("--bbox-mm 144 does not fit"), std::string::npos) << e.what();
  }
  o.size.reset();
  EXPECT_NO_THROW(o.validate());  // the default size grows to fit the box
  EXPECT_EQ(o.resolved_size(), (Size3{195, 195, 65}));
  o.layout = DatasetFormat::Picai;
  EXPECT_THROW(o.validate(), InvalidArgument);
  o = tiny_mri(DatasetFormat::Picai, 2, 2);
  EXPECT_THROW(o.validate(), InvalidArgument);
  EXPECT_THROW(phantom_kind_from_string("ct"), InvalidArgument);
}

}  // namespace
}  // namespace teachformer::data
