// HECKTOR bounding boxes: CSV reading by column name, voxels whose centres lie inside, crops.
#include "teachformer/metrics/hecktor.hpp"

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "test_support.hpp"

namespace teachformer::metrics {
namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(HecktorBoxes, ColumnsAreReadByNameInAnyOrder) {
  test::TempDir dir;
  write_file_atomic(dir / "bb.csv",
                    "x2,PatientID,x1,y1,y2,z1,z2,comment\n"
                    "10.5,CHGJ007,-3,1,145,-1200.25,-1056.25,first\n"
                    "1,CHUM010,2,3,4,6,5,\"quoted, with comma\"\n");
  const auto boxes = read_bounding_boxes(dir / "bb.csv");
  ASSERT_EQ(boxes.size(), 2u);
  const WorldBox& a = boxes.at("CHGJ007");
  EXPECT_EQ(a.min, (Vec3{-3, 1, -1200.25}));
  EXPECT_EQ(a.max, (Vec3{10.5, 145, -1056.25}));
  const WorldBox& b = boxes.at("CHUM010");  // swapped bounds are reordered
  EXPECT_EQ(b.min, (Vec3{1, 3, 5}));
  EXPECT_EQ(b.max, (Vec3{2, 4, 6}));
}

TEST(HecktorBoxes, BadCsvFilesGiveOneLineNamingFileLineAndColumn) {
  test::TempDir dir;
  write_file_atomic(dir / "a.csv", "PatientID,x1,x2,y1,y2,z1\nP,1,2,3,4,5\n");
  EXPECT_NE(message_of([&] { read_bounding_boxes(dir / "a.csv"); }).find("column 'z2' is missing"), std::string::npos);
  write_file_atomic(dir / "b.csv", "PatientID,x1,x2,y1,y2,z1,z2\nP,1,2,3,4,5,6\nQ,1,2,abc,4,5,6\n");
  EXPECT_NE(message_of([&] { read_bounding_boxes(dir / "b.csv"); })
                .find("b.csv' line 3: column 'y1' must be a number (mm), got 'abc'"),
            std::string::npos);
  write_file_atomic(dir / "c.csv", "PatientID,x1,x2,y1,y2,z1,z2\nP,1,2,3,4,5,6\nP,1,2,3,4,5,6\n");
  EXPECT_NE(message_of([&] { read_bounding_boxes(dir / "c.csv"); }).find("PatientID 'P' appears twice"),
            std::string::npos);
  EXPECT_THROW(read_bounding_boxes(dir / "missing.csv"), IoError);
}

TEST(HecktorBoxes, VoxelsInsideAreThoseWhoseCentresLieInTheBox) {
  Grid g;
  g.size = {10, 8, 6};
  g.geometry.spacing = {2, 1, 3};
  g.geometry.origin = {-10, 5, 100};
  const WorldBox box{{-6, 6, 103}, {0, 8, 109}};  // faces on voxel centres: inclusive
  const torch::Tensor in = voxels_inside(g, box);
  EXPECT_EQ(in.sizes().vec(), (std::vector<int64_t>{6, 8, 10}));
  EXPECT_EQ(in.sum().item<int64_t>(), 4 * 3 * 3);  // x 2..5, y 1..3, z 1..3
  EXPECT_EQ(in[1][1][2].item<uint8_t>(), 1);
  EXPECT_EQ(in[0][1][2].item<uint8_t>(), 0);
  // A flipped x axis: index i lies at x = -10 - 2 i.
  g.geometry.direction = {-1, 0, 0, 0, 1, 0, 0, 0, 1};
  const torch::Tensor flipped = voxels_inside(g, {{-16, 6, 103}, {-12, 8, 109}});
  EXPECT_EQ(flipped.sum().item<int64_t>(), 3 * 3 * 3);  // x indices 1..3
  EXPECT_EQ(flipped[1][1][1].item<uint8_t>(), 1);
}

TEST(HecktorBoxes, CropKeepsOnlyTheBoxAndCountsItsVoxels) {
  Grid g;
  g.size = {10, 8, 6};
  g.geometry.spacing = {2, 1, 3};
  g.geometry.origin = {-10, 5, 100};
  torch::Tensor labels = torch::ones({1, 6, 8, 10}, torch::kUInt8);
  labels[0][2][2][3] = 2;
  int64_t inside = 0;
  const torch::Tensor crop = crop_to_world_box(labels, g, {{-6, 6, 103}, {0, 8, 109}}, &inside);
  EXPECT_EQ(inside, 36);
  EXPECT_EQ(crop.sizes().vec(), (std::vector<int64_t>{3, 3, 4}));
  EXPECT_EQ(crop[1][1][1].item<uint8_t>(), 2);  // (z 2, y 2, x 3) -> (1, 1, 1)
  EXPECT_EQ(crop.sum().item<int64_t>(), 37);
  // A box beside the image: nothing inside.
  EXPECT_EQ(crop_to_world_box(labels, g, {{500, 500, 500}, {600, 600, 600}}).numel(), 0);
  EXPECT_THROW(crop_to_world_box(torch::ones({6, 8, 9}, torch::kUInt8), g, {}), InvalidArgument);
}

}  // namespace
}  // namespace teachformer::metrics
