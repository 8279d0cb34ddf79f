#include "teachformer/data/bbox_csv.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/strings.hpp"

namespace teachformer::data {

namespace {

const std::vector<std::string>& wanted_columns() {
  static const std::vector<std::string> columns{"PatientID", "x1", "x2", "y1", "y2", "z1", "z2"};
  return columns;
}

// split_csv_line with an unterminated quote as a FormatError naming the file and line.
std::vector<std::string> fields_of(const std::string& line, const std::filesystem::path& csv, int line_no) {
  try {
    return split_csv_line(line);
  } catch (const InvalidArgument&) {
    TF_THROW(FormatError, "'", csv.string(), "' line ", line_no, ": unterminated quote");
  }
}

}  // namespace

BoundingBoxCsv read_bounding_box_csv(const std::filesystem::path& csv) {
  require_exists(csv, "bounding-box CSV");
  const auto& wanted = wanted_columns();
  std::istringstream in(read_file(csv));
  std::string line;
  TF_CHECK(std::getline(in, line), FormatError, "'", csv.string(), "': empty file; expected a header ",
           "PatientID,x1,x2,y1,y2,z1,z2");
  if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // UTF-8 BOM
  const auto header = fields_of(line, csv, 1);
  std::vector<size_t> column(wanted.size());
  for (size_t w = 0; w < wanted.size(); ++w) {
    const auto it = std::find(header.begin(), header.end(), wanted[w]);
    TF_CHECK(it != header.end(), FormatError, "'", csv.string(), "': column '", wanted[w],
             "' is missing; expected columns PatientID,x1,x2,y1,y2,z1,z2 (found ", header, ")");
    column[w] = static_cast<size_t>(it - header.begin());
  }
  BoundingBoxCsv out;
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r,") == std::string::npos) continue;
    auto problem = [&](std::string message, std::string hint = {}) {
      out.problems.push_back({line_no, std::move(message), std::move(hint)});
    };
    const auto f = fields_of(line, csv, line_no);
    if (f.size() != header.size()) {
      problem("expected " + std::to_string(header.size()) + " fields, found " + std::to_string(f.size()));
      continue;
    }
    const std::string& id = f[column[0]];
    if (id.empty()) {
      problem("empty PatientID");
      continue;
    }
    // Patient ids name files (predictions, crops): one that is not a plain file name could point elsewhere.
    if (const std::string why = unsafe_name_reason(id); !why.empty()) {
      problem("PatientID '" + id + "' " + why + "; refused, a patient id must be a plain file name");
      continue;
    }
    double v[6];
    bool numbers = true;
    for (int k = 0; k < 6 && numbers; ++k) {
      const std::string& text = f[column[k + 1]];
      size_t used = 0;
      try {
        v[k] = std::stod(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      numbers = used == text.size() && used > 0 && std::isfinite(v[k]);
      if (!numbers) problem("column '" + wanted[k + 1] + "' must be a number (mm), got '" + text + "'");
    }
    if (!numbers) continue;
    const transforms::BoundingBox box{{v[0], v[2], v[4]}, {v[1], v[3], v[5]}};
    bool ordered = true;
    for (int a = 0; a < 3 && ordered; ++a) {
      ordered = box.min[a] < box.max[a];
      if (!ordered)
        problem("columns '" + wanted[2 * a + 1] + "' and '" + wanted[2 * a + 2] + "': the box of '" + id +
                    "' is empty or inverted (" + box.to_string() + ")",
                "x1 < x2, y1 < y2 and z1 < z2 are required");
    }
    if (!ordered) continue;
    if (out.boxes.count(id)) {
      problem("PatientID '" + id + "' appears twice (first on line " + std::to_string(out.line_of.at(id)) + ")",
              "keep one row per patient");
      continue;
    }
    out.boxes[id] = box;
    out.line_of[id] = line_no;
  }
  return out;
}

std::map<std::string, transforms::BoundingBox> read_bounding_boxes(const std::filesystem::path& csv) {
  BoundingBoxCsv read = read_bounding_box_csv(csv);
  if (!read.problems.empty()) {
    const BoundingBoxRowProblem& p = read.problems.front();
    TF_THROW(FormatError, "'", csv.string(), "' line ", p.line, ": ", p.message,
             p.hint.empty() ? "" : " (" + p.hint + ")");
  }
  return std::move(read.boxes);
}

}  // namespace teachformer::data
