// HECKTOR bounding-box CSV files: columns by name in any order, quoting, and one problem per bad row naming its
// line and column (an inverted box is an error, never silently reordered).
#include "teachformer/data/bbox_csv.hpp"

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "test_checks.hpp"
#include "test_support.hpp"

namespace teachformer::data {
namespace {

using test::message_of;

TEST(BoundingBoxCsv, ColumnsAreReadByNameInAnyOrder) {
  test::TempDir dir;
  write_file_atomic(dir / "bb.csv",
                    "\xEF\xBB\xBFx2,PatientID,x1,y1,y2,z1,z2,comment\n"
                    "10.5,CHGJ007,-3,1,145,-1200.25,-1056.25,first\n"
                    "\n"
                    "2,\"CHUM010\",1,3,4,5,6,\"quoted, with comma\"\n");
  const auto boxes = read_bounding_boxes(dir / "bb.csv");
  ASSERT_EQ(boxes.size(), 2u);
  EXPECT_EQ(boxes.at("CHGJ007").min, (Vec3{-3, 1, -1200.25}));
  EXPECT_EQ(boxes.at("CHGJ007").max, (Vec3{10.5, 145, -1056.25}));
  EXPECT_EQ(boxes.at("CHUM010").min, (Vec3{1, 3, 5}));
  EXPECT_EQ(boxes.at("CHUM010").max, (Vec3{2, 4, 6}));
  const BoundingBoxCsv csv = read_bounding_box_csv(dir / "bb.csv");
  EXPECT_EQ(csv.line_of.at("CHUM010"), 4);
  EXPECT_TRUE(csv.problems.empty());
}

TEST(BoundingBoxCsv, AnInvertedBoxIsAnErrorNamingFileLineAndColumns) {
  test::TempDir dir;
  write_file_atomic(dir / "bb.csv", "PatientID,x1,x2,y1,y2,z1,z2\nP,1,2,3,4,5,6\nQ,1,2,3,4,6,5\n");
  EXPECT_EQ(message_of([&] { read_bounding_boxes(dir / "bb.csv"); }),
            "'" + (dir / "bb.csv").string() +
                "' line 3: columns 'z1' and 'z2': the box of 'Q' is empty or inverted (x [1, 2] y [3, 4] z [6, 5] "
                "mm) (x1 < x2, y1 < y2 and z1 < z2 are required)");
  const BoundingBoxCsv csv = read_bounding_box_csv(dir / "bb.csv");
  EXPECT_EQ(csv.boxes.size(), 1u);  // the good row is kept
  ASSERT_EQ(csv.problems.size(), 1u);
  EXPECT_EQ(csv.problems[0].line, 3);
}

TEST(BoundingBoxCsv, EveryBadRowIsOneProblem) {
  test::TempDir dir;
  write_file_atomic(dir / "bb.csv",
                    "PatientID,x1,x2,y1,y2,z1,z2\n"
                    "P,1,2,3,4,5,6\n"
                    "Q,1,2,abc,4,5,6\n"
                    "R,1,2,3\n"
                    ",1,2,3,4,5,6\n"
                    "P,1,2,3,4,5,6\n"
                    "S,1,1,3,4,5,6\n");
  const BoundingBoxCsv csv = read_bounding_box_csv(dir / "bb.csv");
  EXPECT_EQ(csv.boxes.size(), 1u);
  ASSERT_EQ(csv.problems.size(), 5u);
  EXPECT_EQ(csv.problems[0].message, "column 'y1' must be a number (mm), got 'abc'");
  EXPECT_EQ(csv.problems[1].message, "expected 7 fields, found 4");
  EXPECT_EQ(csv.problems[2].message, "empty PatientID");
  EXPECT_EQ(csv.problems[3].message, "PatientID 'P' appears twice (first on line 2)");
  EXPECT_EQ(csv.problems[4].line, 7);
  EXPECT_NE(csv.problems[4].message.find("columns 'x1' and 'x2'"), std::string::npos);
  EXPECT_NE(message_of([&] { read_bounding_boxes(dir / "bb.csv"); })
                .find("bb.csv' line 3: column 'y1' must be a number (mm), got 'abc'"),
            std::string::npos);
}

TEST(BoundingBoxCsv, AMissingFileOrColumnIsFatal) {
  test::TempDir dir;
  EXPECT_THROW(read_bounding_box_csv(dir / "missing.csv"), IoError);
  write_file_atomic(dir / "a.csv", "PatientID,x1,x2,y1,y2,z1\nP,1,2,3,4,5\n");
  EXPECT_NE(message_of([&] { read_bounding_box_csv(dir / "a.csv"); }).find("column 'z2' is missing"),
            std::string::npos);
  write_file_atomic(dir / "empty.csv", "");
  EXPECT_THROW(read_bounding_box_csv(dir / "empty.csv"), FormatError);
  write_file_atomic(dir / "q.csv", "PatientID,x1,x2,y1,y2,z1,z2\n\"P,1,2,3,4,5,6\n");
  EXPECT_EQ(message_of([&] { read_bounding_box_csv(dir / "q.csv"); }),
            "'" + (dir / "q.csv").string() + "' line 2: unterminated quote");
}

}  // namespace
}  // namespace teachformer::data
