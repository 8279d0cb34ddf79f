#include "teachformer/core/geometry.hpp"

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"

namespace teachformer {
namespace {

TEST(Geometry, IndexToWorldAppliesDirectionAndSpacing) {
  Geometry g;
  g.spacing = {0.5, 2.0, 3.0};
  g.origin = {10, -20, 30};
  g.direction = {0, -1, 0, 1, 0, 0, 0, 0, 1};  // i -> +y, j -> -x
  const Vec3 w = g.index_to_world({2, 3, 4});
  EXPECT_DOUBLE_EQ(w[0], 10 - 3 * 2.0);
  EXPECT_DOUBLE_EQ(w[1], -20 + 2 * 0.5);
  EXPECT_DOUBLE_EQ(w[2], 30 + 4 * 3.0);
  const Vec3 back = g.world_to_index(w);
  EXPECT_NEAR(back[0], 2, 1e-12);
  EXPECT_NEAR(back[1], 3, 1e-12);
  EXPECT_NEAR(back[2], 4, 1e-12);
}

TEST(Geometry, SingularDirectionIsRejected) {
  EXPECT_THROW(invert({1, 0, 0, 2, 0, 0, 0, 0, 1}), InvalidArgument);
}

TEST(Geometry, ApproxEqualUsesTolerance) {
  Geometry a, b;
  b.origin[2] = 5e-5;
  EXPECT_TRUE(a.approx_equal(b, 1e-4));
  EXPECT_FALSE(a.approx_equal(b, 1e-5));
}

TEST(Grid, WorldBoundsCoverAllCorners) {
  Grid g{{10, 20, 5}, {}};
  g.geometry.direction = {-1, 0, 0, 0, 1, 0, 0, 0, 1};
  const auto [lo, hi] = g.world_bounds();
  EXPECT_DOUBLE_EQ(lo[0], -9);
  EXPECT_DOUBLE_EQ(hi[0], 0);
  EXPECT_DOUBLE_EQ(hi[1], 19);
  EXPECT_DOUBLE_EQ(hi[2], 4);
}

TEST(ErrorMacros, CheckBuildsMessageAndFires) {
  try {
    const std::vector<int64_t> shape{1, 2, 3};
    TF_CHECK(shape.size() == 5, InvalidArgument, "model: shape ", shape, " must have 5 dims");
    FAIL() << "TF_CHECK did not throw";
  } catch (const InvalidArgument& e) {
    EXPECT_STREQ(e.what(), "model: shape [1, 2, 3] must have 5 dims");
  }
}

}  // namespace
}  // namespace teachformer
