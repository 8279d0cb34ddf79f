#include "teachformer/report/volumes.hpp"

#include <torch/torch.h>

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/report/assets.hpp"
#include "teachformer/report/report.hpp"
#include "test_support.hpp"

namespace teachformer::report {
namespace {

TEST(Base64, MatchesRfc4648) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64(std::string("\xff\x00\x10", 3)), "/wAQ");
}

io::Volume ramp_volume() {
  io::Volume v;
  v.data = torch::arange(10 * 8 * 6, torch::kFloat).reshape({1, 6, 8, 10});  // x 10, y 8, z 6
  v.geometry.spacing = {2.0, 2.0, 3.0};
  v.geometry.origin = {-10.0, 20.0, 5.0};
  return v;
}

TEST(CropToBox, KeepsTheVoxelsInsideAndMovesTheOrigin) {
  const auto v = ramp_volume();
  transforms::BoundingBox box{{-6.0, 24.0, 8.0}, {-2.0, 28.0, 11.0}};
  const auto c = crop_to_box(v, box, 0.0);
  // x: indices 2..4, y: 2..4, z: 1..2
  EXPECT_EQ(c.data.sizes().vec(), (std::vector<int64_t>{1, 2, 3, 3}));
  EXPECT_DOUBLE_EQ(c.geometry.origin[0], -6.0);
  EXPECT_DOUBLE_EQ(c.geometry.origin[2], 8.0);
  EXPECT_EQ(c.data[0][0][0][0].item<float>(), v.data[0][1][2][2].item<float>());
  // A margin larger than the volume keeps all of it.
  EXPECT_EQ(crop_to_box(v, box, 100.0).data.sizes(), v.data.sizes());
  transforms::BoundingBox outside{{500.0, 500.0, 500.0}, {510.0, 510.0, 510.0}};
  EXPECT_THROW(crop_to_box(v, outside, 0.0), InvalidArgument);
}

TEST(LabelCentroid, IsInNiivuesRasCoordinates) {
  io::Volume l;
  l.data = torch::zeros({1, 6, 8, 10}, torch::kByte);
  l.data[0][3][2][4] = 1;
  l.geometry.spacing = {2.0, 2.0, 3.0};
  l.geometry.origin = {-10.0, 20.0, 5.0};
  const auto c = label_centroid_ras(l);
  ASSERT_TRUE(c.has_value());
  EXPECT_DOUBLE_EQ((*c)[0], -(-10.0 + 8.0));  // LPS x -> RAS -x
  EXPECT_DOUBLE_EQ((*c)[1], -(20.0 + 4.0));
  EXPECT_DOUBLE_EQ((*c)[2], 5.0 + 9.0);
  l.data.zero_();
  EXPECT_FALSE(label_centroid_ras(l).has_value());
}

TEST(IntensityRange, GivesTheQuantiles) {
  const auto [lo, hi] = intensity_range(torch::arange(101, torch::kFloat), 0.1, 0.9);
  EXPECT_DOUBLE_EQ(lo, 10.0);
  EXPECT_DOUBLE_EQ(hi, 90.0);
}

TEST(VolumeScript, EmbedsEachLayerAsBase64Nifti) {
  test::TempDir d;
  VolumeScript s(d / "scratch");
  s.add("CT", ramp_volume(), io::PixelType::Int16);
  s.write(d / "case.js", "case \"1\"");
  const std::string text = read_file(d / "case.js");
  EXPECT_NE(text.find("window.TF_VOLUMES[\"case \\\"1\\\"\"] = {\"CT\":\"H4sI"), std::string::npos) << text.substr(0, 200);
}

TEST(WebAssets, MissingLibrariesSayWhatToInstall) {
  test::TempDir d;
  fs::create_directories(d / "template");
  std::ofstream(d / "template" / "index.html") << "<html></html>";
  ::setenv("TEACHFORMER_WEB_DIR", d.path().c_str(), 1);
  try {
    locate_web_assets();
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("bash scripts/install_deps.sh"), std::string::npos) << e.what();
  }
  // The experiment's last step: one line instead of a failure.
  EXPECT_FALSE(write_experiment_report(d / "experiment").has_value());
  ::unsetenv("TEACHFORMER_WEB_DIR");
}

}  // namespace
}  // namespace teachformer::report
