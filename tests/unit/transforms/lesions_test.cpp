#include "teachformer/transforms/lesions.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::transforms {
namespace {

TEST(Components, ConnectivityDecidesWhetherDiagonalVoxelsTouch) {
  auto m = torch::zeros({3, 3, 3}, torch::kUInt8);
  m.index_put_({0, 0, 0}, 1);
  m.index_put_({1, 1, 1}, 1);  // corner neighbour
  m.index_put_({1, 1, 2}, 1);  // face neighbour of the previous one
  EXPECT_EQ(count_components(m, 26), 1);
  EXPECT_EQ(count_components(m, 18), 2);
  EXPECT_EQ(count_components(m, 6), 2);
  m.index_put_({0, 1, 1}, 1);  // edge neighbour of (0,0,0), face neighbour of (1,1,1)
  EXPECT_EQ(count_components(m, 18), 1);
}

TEST(Components, SizesFollowRasterOrderAndAnyNonZeroValueIsForeground) {
  auto m = torch::zeros({1, 4, 1, 8}, torch::kUInt8);
  m.index_put_({0, 0, 0, 6}, 2);
  m.index_put_({0, 3, 0, 0}, 5);
  m.index_put_({0, 3, 0, 1}, 1);
  const auto sizes = component_sizes(m);
  ASSERT_EQ(sizes.size(), 2u);
  EXPECT_EQ(sizes[0], 1);
  EXPECT_EQ(sizes[1], 2);
  EXPECT_EQ(count_components(torch::zeros({2, 2, 2})), 0);
}

TEST(Components, UShapeMergesIntoOneComponent) {
  // Two arms that only meet at the bottom: union-find must merge labels met late.
  auto m = torch::zeros({1, 5, 5}, torch::kUInt8);
  for (int y = 0; y < 5; ++y) {
    m.index_put_({0, y, 0}, 1);
    m.index_put_({0, y, 4}, 1);
  }
  for (int x = 0; x < 5; ++x) m.index_put_({0, 4, x}, 1);
  EXPECT_EQ(count_components(m, 6), 1);
}

TEST(LesionCheck, WarnReturnsAMessageAndErrorThrows) {
  EXPECT_FALSE(check_lesion_count(2, 2, LesionCheck::Error, "case 'a'").has_value());
  EXPECT_FALSE(check_lesion_count(2, 1, LesionCheck::Off, "case 'a'").has_value());
  const auto w = check_lesion_count(2, 1, LesionCheck::Warn, "case 'a'");
  ASSERT_TRUE(w.has_value());
  EXPECT_NE(w->find("case 'a': the label has 1 lesion(s)"), std::string::npos);
  EXPECT_THROW(check_lesion_count(2, 1, LesionCheck::Error, "case 'a'"), DatasetError);
  EXPECT_EQ(lesion_check_from_string("error"), LesionCheck::Error);
  EXPECT_THROW(lesion_check_from_string("strict"), InvalidArgument);
}

TEST(Components, RejectsBadConnectivityAndShapes) {
  EXPECT_THROW(count_components(torch::zeros({2, 2, 2}), 8), InvalidArgument);
  EXPECT_THROW(count_components(torch::zeros({2, 2, 2, 2})), InvalidArgument);
}

}  // namespace
}  // namespace teachformer::transforms
