// Connected components: connectivity, raster-order numbering (as scipy.ndimage.label), size filters.
#include "teachformer/metrics/components.hpp"

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"

namespace teachformer::metrics {
namespace {

TEST(ConnectedComponents, DiagonalNeighboursJoinOnlyWithMatchingConnectivity) {
  torch::Tensor m = torch::zeros({3, 3, 3}, torch::kUInt8);
  m[0][0][0] = 1;
  m[1][1][1] = 1;  // corner neighbour of (0, 0, 0)
  m[1][1][2] = 1;  // face neighbour of (1, 1, 1)
  m[2][2][0] = 1;  // corner neighbour of (1, 1, 1) (differs in all three axes)
  EXPECT_EQ(connected_components(m, Connectivity::Faces).count, 3);
  EXPECT_EQ(connected_components(m, Connectivity::Edges).count, 3);
  EXPECT_EQ(connected_components(m, Connectivity::Corners).count, 1);
  torch::Tensor e = torch::zeros({1, 2, 2}, torch::kUInt8);
  e[0][0][0] = 1;
  e[0][1][1] = 1;  // edge (in-plane diagonal) neighbours
  EXPECT_EQ(connected_components(e, Connectivity::Faces).count, 2);
  EXPECT_EQ(connected_components(e, Connectivity::Edges).count, 1);
}

TEST(ConnectedComponents, LabelsFollowRasterOrderOfFirstVoxelAndCountSizes) {
  torch::Tensor m = torch::zeros({2, 4, 6}, torch::kUInt8);
  // A U shape whose two arms meet only late in raster order: one component, label 1.
  m[0][0][0] = 1;
  m[0][1][0] = 1;
  m[0][0][3] = 1;
  m[0][1][3] = 1;
  m[0][2][0] = m[0][2][1] = m[0][2][2] = m[0][2][3] = 1;
  m[1][3][5] = 1;  // a separate single voxel, later in raster order: label 2
  const Components c = connected_components(m, Connectivity::Faces);
  ASSERT_EQ(c.count, 2);
  EXPECT_EQ(c.sizes, (std::vector<int64_t>{8, 1}));
  EXPECT_EQ(c.labels[0][0][3].item<int32_t>(), 1);
  EXPECT_EQ(c.labels[1][3][5].item<int32_t>(), 2);
  EXPECT_EQ(c.labels.dtype(), torch::kInt32);
  EXPECT_EQ(c.labels.sizes().vec(), (std::vector<int64_t>{2, 4, 6}));
}

TEST(ConnectedComponents, LargestAndSmallComponentFilters) {
  torch::Tensor m = torch::zeros({1, 1, 10}, torch::kFloat32);  // any dtype: non-zero is foreground
  m[0][0][0] = 0.5;
  m[0][0][1] = 2;
  m[0][0][4] = 1;
  m[0][0][5] = 1;
  m[0][0][6] = 1;
  m[0][0][9] = 1;
  const torch::Tensor largest = largest_component(m, Connectivity::Faces);
  EXPECT_EQ(largest.sum().item<int64_t>(), 3);
  EXPECT_EQ(largest[0][0][5].item<uint8_t>(), 1);
  const torch::Tensor kept = remove_small_components(m, 2, Connectivity::Faces);
  EXPECT_EQ(kept.sum().item<int64_t>(), 5);
  EXPECT_EQ(kept[0][0][9].item<uint8_t>(), 0);
  EXPECT_EQ(largest_component(torch::zeros({2, 2, 2})).sum().item<int64_t>(), 0);
}

TEST(ConnectedComponents, BadArgumentsAreRejectedWithTheRule) {
  try {
    connectivity_from_int(8);
    FAIL() << "no throw";
  } catch (const InvalidArgument& e) {
    EXPECT_STREQ(e.what(), "connectivity must be 6, 18 or 26, got 8");
  }
  EXPECT_THROW(connected_components(torch::zeros({2, 2})), InvalidArgument);
  EXPECT_THROW(remove_small_components(torch::zeros({2, 2, 2}), -1), InvalidArgument);
}

}  // namespace
}  // namespace teachformer::metrics
