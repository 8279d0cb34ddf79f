// HECKTOR bounding-box CSV files (`PatientID,x1,x2,y1,y2,z1,z2`, world mm in LPS as ITK reads them): the one
// reader behind the HECKTOR dataset layouts and the hecktor2021 evaluation.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "teachformer/transforms/case_geometry.hpp"

namespace teachformer::data {

/// A row of a bounding-box CSV that could not be used.
struct BoundingBoxRowProblem {
  /// 1-based line number in the file (the header is line 1).
  int line = 0;
  /// What is wrong, naming the column where one is at fault.
  std::string message;
  /// How to fix it (may be empty).
  std::string hint;
};

/// A bounding-box CSV read row by row.
struct BoundingBoxCsv {
  /// Boxes by PatientID.
  std::map<std::string, transforms::BoundingBox> boxes;
  /// Line of each box in the file.
  std::map<std::string, int> line_of;
  /// Rows that gave no box, in file order.
  std::vector<BoundingBoxRowProblem> problems;
};

/// Reads a bounding-box CSV. Columns PatientID, x1, x2, y1, y2, z1, z2 are found by name in any order (others are
/// ignored); fields follow RFC 4180 quoting and are trimmed; a UTF-8 BOM and blank lines are skipped. A missing
/// file throws IoError; an empty file or a missing column throws FormatError naming the file. Each bad row is a
/// problem: a wrong number of fields, an empty PatientID, a coordinate that is not a number (naming its column), an
/// empty or inverted box (x1 >= x2, naming both columns), or a PatientID seen before.
BoundingBoxCsv read_bounding_box_csv(const std::filesystem::path& csv);

/// read_bounding_box_csv, throwing FormatError "'<file>' line <N>: <problem>" for the first bad row.
std::map<std::string, transforms::BoundingBox> read_bounding_boxes(const std::filesystem::path& csv);

}  // namespace teachformer::data
