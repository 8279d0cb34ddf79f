// HECKTOR bounding boxes: CSV reading by column name, voxels whose centres lie inside, crops.
#include "teachformer/metrics/hecktor.hpp"

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "test_checks.hpp"
#include "test_support.hpp"

namespace teachformer::metrics {
namespace {

using teachformer::test::message_of;

TEST(HecktorBoxes, VoxelsInsideAreThoseWhoseCentresLieInTheBox) {
  Grid g;
  g.size = {10, 8, 6};
  g.geometry.spacing = {2, 1, 3};
  g.geometry.origin = {-10, 5, 100};
  const transforms::BoundingBox box{{-6, 6, 103}, {0, 8, 109}};  // faces on voxel centres: inclusive
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
