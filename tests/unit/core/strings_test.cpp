#include "teachformer/core/strings.hpp"

#include <gtest/gtest.h>

namespace teachformer {
namespace {

TEST(Strings, EditDistanceCountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("unetr", "unetr"), 0u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("unter", "unetr"), 2u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("swin_unetr", "swinunetr"), 1u);
}

TEST(Strings, NearestNamePicksTheClosestAndTheFirstOnTies) {
  const std::vector<std::string> names{"unetr", "swin_unetr", "hdenseformer", "teachformer_s"};
  EXPECT_EQ(nearest_name("untr", names), "unetr");
  EXPECT_EQ(nearest_name("swinunetr", names), "swin_unetr");
  EXPECT_EQ(nearest_name("teachformer", names), "teachformer_s");
  EXPECT_EQ(nearest_name("ab", {"aa", "bb"}), "aa");
  EXPECT_EQ(nearest_name("x", {}), "");
}

}  // namespace
}  // namespace teachformer
