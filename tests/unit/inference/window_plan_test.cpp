#include <random>

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/inference/window_plan.hpp"

namespace teachformer::inference {
namespace {

using V = std::vector<int64_t>;

TEST(WindowPlan, MonaiOriginsStepByRoiTimesOneMinusOverlapAndEndFlush) {
  // 144 with roi 96, overlap 0.5: step 48 -> 0, 48. 200: 0, 48, 96, then 144 moved back to 104.
  const auto p = plan_windows({144, 200, 96}, {96, 96, 96}, 0.5);
  EXPECT_EQ(p.axes[0].starts, (V{0, 48}));
  EXPECT_EQ(p.axes[1].starts, (V{0, 48, 96, 104}));
  EXPECT_EQ(p.axes[2].starts, (V{0}));
  EXPECT_EQ(p.count(), 8);
  EXPECT_FALSE(p.padded());
  // overlap 0.25 on roi 64: step int(64 * 0.75) = 48; overlap 0: windows side by side.
  EXPECT_EQ(plan_windows({100, 1, 1}, {64, 1, 1}, 0.25).axes[0].starts, (V{0, 36}));
  EXPECT_EQ(plan_windows({130, 1, 1}, {64, 1, 1}, 0.25).axes[0].starts, (V{0, 48, 66}));
  EXPECT_EQ(plan_windows({128, 1, 1}, {32, 1, 1}, 0.0).axes[0].starts, (V{0, 32, 64, 96}));
  // A very high overlap never gives a zero step.
  EXPECT_EQ(plan_windows({5, 1, 1}, {2, 1, 1}, 0.9).axes[0].starts, (V{0, 1, 2, 3}));
}

TEST(WindowPlan, EvenPlacementSpreadsTheSameNumberOfWindows) {
  // 200 / roi 96 / step 48: 4 windows over a span of 104 -> round(i * 104 / 3) = 0, 35, 69, 104.
  EXPECT_EQ(plan_windows({200, 1, 1}, {96, 1, 1}, 0.5, WindowPlacement::Even).axes[0].starts, (V{0, 35, 69, 104}));
  EXPECT_EQ(plan_windows({144, 1, 1}, {96, 1, 1}, 0.5, WindowPlacement::Even).axes[0].starts, (V{0, 48}));
}

TEST(WindowPlan, SmallImagesArePaddedSymmetricallyToTheRoi) {
  const auto p = plan_windows({40, 96, 7}, {64, 96, 10}, 0.5);
  EXPECT_EQ(p.axes[0].padded_size, 64);
  EXPECT_EQ(p.axes[0].pad_before, 12);
  EXPECT_EQ(p.axes[0].starts, (V{0}));
  EXPECT_EQ(p.axes[1].padded_size, 96);
  EXPECT_EQ(p.axes[1].pad_before, 0);
  EXPECT_EQ(p.axes[2].pad_before, 1);  // pad 3: 1 before, 2 after (MONAI's floor half first)
  EXPECT_TRUE(p.padded());
}

TEST(WindowPlan, AlignmentMakesOriginsAndPaddingMultiplesOfTheFactor) {
  // size 100, roi 64, factor 8: padded to 104 (pad 4 goes after), step 32 -> 0, 32, 40.
  const auto p = plan_windows({100, 40, 96}, {64, 64, 96}, 0.5, WindowPlacement::Monai, {8, 8, 8});
  EXPECT_EQ(p.axes[0].padded_size, 104);
  EXPECT_EQ(p.axes[0].pad_before, 0);
  EXPECT_EQ(p.axes[0].starts, (V{0, 32, 40}));
  EXPECT_EQ(p.axes[1].padded_size, 64);
  EXPECT_EQ(p.axes[1].pad_before, 8);  // pad 24: floor(24 / 16) * 8 before
  // step floor(96 * 0.6) = 57 rounds down to 56 with factor 8.
  EXPECT_EQ(plan_windows({200, 1, 1}, {96, 1, 1}, 0.4, WindowPlacement::Monai, {8, 1, 1}).axes[0].starts,
            (V{0, 56, 104}));
}

TEST(WindowPlan, EveryVoxelIsCoveredForRandomConfigurations) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 400; ++trial) {
    const int64_t a = std::vector<int64_t>{1, 2, 4, 8}[rng() % 4];
    const int64_t roi = a * (1 + int64_t(rng() % 12));
    const int64_t size = 1 + int64_t(rng() % 150);
    const double overlap = double(rng() % 95) / 100.0;
    const auto placement = rng() % 2 ? WindowPlacement::Monai : WindowPlacement::Even;
    const auto p = plan_windows({size, 1, 1}, {roi, 1, 1}, overlap, placement, {a, 1, 1});
    const auto& ax = p.axes[0];
    SCOPED_TRACE(testing::Message() << "size " << size << " roi " << roi << " overlap " << overlap << " align " << a);
    EXPECT_GE(ax.padded_size, std::max(size, roi));
    EXPECT_EQ(ax.padded_size % a, 0);
    EXPECT_EQ(ax.pad_before % a, 0);
    EXPECT_LE(ax.pad_before + size, ax.padded_size);
    ASSERT_FALSE(ax.starts.empty());
    EXPECT_EQ(ax.starts.front(), 0);
    EXPECT_EQ(ax.starts.back(), ax.padded_size - roi);
    for (size_t i = 0; i < ax.starts.size(); ++i) {
      EXPECT_EQ(ax.starts[i] % a, 0);
      if (i > 0) {
        EXPECT_GT(ax.starts[i], ax.starts[i - 1]);
        EXPECT_LE(ax.starts[i], ax.starts[i - 1] + roi) << "gap between windows " << i - 1 << " and " << i;
      }
    }
  }
}

TEST(WindowPlan, OriginsAreInRasterOrderWithXFastest) {
  const auto p = plan_windows({20, 20, 30}, {10, 20, 10}, 0.0);
  ASSERT_EQ(p.count(), 2 * 1 * 3);
  EXPECT_EQ(p.origin(0), (std::array<int64_t, 3>{0, 0, 0}));
  EXPECT_EQ(p.origin(1), (std::array<int64_t, 3>{0, 0, 10}));
  EXPECT_EQ(p.origin(3), (std::array<int64_t, 3>{10, 0, 0}));
  EXPECT_EQ(p.origin(5), (std::array<int64_t, 3>{10, 0, 20}));
  EXPECT_THROW(p.origin(6), InvalidArgument);
}

TEST(WindowPlan, RejectsBadArguments) {
  EXPECT_THROW(plan_windows({10, 10, 10}, {8, 8, 8}, 1.0), InvalidArgument);
  EXPECT_THROW(plan_windows({10, 10, 10}, {8, 8, 8}, -0.1), InvalidArgument);
  EXPECT_THROW(plan_windows({10, 10, 10}, {8, 0, 8}, 0.5), InvalidArgument);
  EXPECT_THROW(plan_windows({10, 10}, {8, 8, 8}, 0.5), InvalidArgument);
  try {
    plan_windows({10, 10, 10}, {12, 8, 8}, 0.5, WindowPlacement::Monai, {8, 8, 8});
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("multiple of the output downsampling"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_window_placement("nnunet", "opts"), ConfigError);
}

}  // namespace
}  // namespace teachformer::inference
