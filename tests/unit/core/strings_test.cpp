#include "teachformer/core/strings.hpp"

#include <cmath>

#include "teachformer/core/error.hpp"

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

TEST(Strings, CsvLinesSplitOnCommasOutsideQuotes) {
  EXPECT_EQ(split_csv_line("a,b,,c"), (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_EQ(split_csv_line("x,\"gt+kd, staged\",3"), (std::vector<std::string>{"x", "gt+kd, staged", "3"}));
  EXPECT_EQ(split_csv_line("\"say \"\"hi\"\"\","), (std::vector<std::string>{"say \"hi\"", ""}));
  EXPECT_THROW(split_csv_line("\"open"), InvalidArgument);
}

TEST(Strings, FixedFormattingNamesNonFiniteValues) {
  EXPECT_EQ(format_fixed(0.8534, 3), "0.853");
  EXPECT_EQ(format_fixed(NAN, 2), "n/a");
  EXPECT_EQ(format_fixed(-INFINITY, 1), "-inf");
}

}  // namespace
}  // namespace teachformer
