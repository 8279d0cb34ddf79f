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
  EXPECT_EQ(format_fixed(NAN, 4, "nan"), "nan");
  EXPECT_EQ(format_fixed(-INFINITY, 1), "-inf");
  EXPECT_EQ(format_fixed(2.0, 0), "2");
}

TEST(Strings, ListsSplitLikeGetlineAndAreTrimmed) {
  EXPECT_EQ(split_trimmed(" a, b ,c", ','), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(split_trimmed("a,,b,", ','), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_TRUE(split_trimmed("", ',').empty());
}

TEST(Strings, PositiveIntegerListsAcceptOnlyWholePositiveParts) {
  EXPECT_EQ(parse_positive_ints("2x96x96x80", 'x'), (std::vector<int64_t>{2, 96, 96, 80}));
  EXPECT_EQ(parse_positive_ints("96,96,96", ','), (std::vector<int64_t>{96, 96, 96}));
  EXPECT_EQ(parse_positive_ints("", ','), std::vector<int64_t>{});
  for (const char* bad : {"96,,96", "96,0,96", "96,-1,96", "96,9.5,96", "96,a,96", "96,96 ,96"})
    EXPECT_FALSE(parse_positive_ints(bad, ',').has_value()) << bad;
}

}  // namespace
}  // namespace teachformer
