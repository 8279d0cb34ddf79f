#include "teachformer/metrics/hecktor.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <vector>

#include "metrics/detail/mask.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"

namespace teachformer::metrics {

namespace {

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> fields;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  fields.push_back(cur);
  for (auto& f : fields) {
    const auto b = f.find_first_not_of(" \t");
    const auto e = f.find_last_not_of(" \t");
    f = b == std::string::npos ? std::string() : f.substr(b, e - b + 1);
  }
  return fields;
}

}  // namespace

std::map<std::string, WorldBox> read_bounding_boxes(const std::filesystem::path& csv) {
  require_exists(csv, "bounding-box CSV");
  std::istringstream in(read_file(csv));
  std::string line;
  TF_CHECK(std::getline(in, line), FormatError, "'", csv.string(), "': empty file; expected a header ",
           "PatientID,x1,x2,y1,y2,z1,z2");
  if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // UTF-8 BOM
  const auto header = split_csv_line(line);
  const std::vector<std::string> wanted{"PatientID", "x1", "x2", "y1", "y2", "z1", "z2"};
  std::vector<size_t> column(wanted.size());
  for (size_t w = 0; w < wanted.size(); ++w) {
    const auto it = std::find(header.begin(), header.end(), wanted[w]);
    TF_CHECK(it != header.end(), FormatError, "'", csv.string(), "': column '", wanted[w],
             "' is missing; expected columns PatientID,x1,x2,y1,y2,z1,z2 (found ", header, ")");
    column[w] = static_cast<size_t>(it - header.begin());
  }
  std::map<std::string, WorldBox> boxes;
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto f = split_csv_line(line);
    TF_CHECK(f.size() == header.size(), FormatError, "'", csv.string(), "' line ", line_no, ": expected ",
             header.size(), " fields, found ", f.size());
    const std::string& id = f[column[0]];
    TF_CHECK(!id.empty(), FormatError, "'", csv.string(), "' line ", line_no, ": empty PatientID");
    double v[6];
    for (int k = 0; k < 6; ++k) {
      const std::string& text = f[column[k + 1]];
      size_t used = 0;
      try {
        v[k] = std::stod(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      TF_CHECK(used == text.size() && used > 0 && std::isfinite(v[k]), FormatError, "'", csv.string(), "' line ",
               line_no, ": column '", wanted[k + 1], "' must be a number (mm), got '", text, "'");
    }
    TF_CHECK(!boxes.count(id), FormatError, "'", csv.string(), "' line ", line_no, ": PatientID '", id,
             "' appears twice");
    WorldBox b;
    for (int a = 0; a < 3; ++a) {
      b.min[a] = std::min(v[2 * a], v[2 * a + 1]);
      b.max[a] = std::max(v[2 * a], v[2 * a + 1]);
    }
    boxes[id] = b;
  }
  return boxes;
}

torch::Tensor voxels_inside(const Grid& grid, const WorldBox& box) {
  const int64_t nx = grid.size[0], ny = grid.size[1], nz = grid.size[2];
  torch::Tensor out = torch::zeros({nz, ny, nx}, torch::kUInt8);
  uint8_t* o = out.data_ptr<uint8_t>();
  const Geometry& g = grid.geometry;
  // world = origin + D diag(spacing) index: one step along each index axis moves by a column of D times spacing.
  Vec3 step[3];
  for (int a = 0; a < 3; ++a)
    for (int r = 0; r < 3; ++r) step[a][r] = g.direction[r * 3 + a] * g.spacing[a];
  constexpr double kSlack = 1e-6;
  for (int64_t k = 0; k < nz; ++k)
    for (int64_t j = 0; j < ny; ++j) {
      Vec3 w;
      for (int r = 0; r < 3; ++r) w[r] = g.origin[r] + step[2][r] * double(k) + step[1][r] * double(j);
      uint8_t* row = o + (k * ny + j) * nx;
      for (int64_t i = 0; i < nx; ++i) {
        bool in = true;
        for (int r = 0; r < 3 && in; ++r) {
          const double p = w[r] + step[0][r] * double(i);
          in = p >= box.min[r] - kSlack && p <= box.max[r] + kSlack;
        }
        row[i] = in;
      }
    }
  return out;
}

torch::Tensor crop_to_world_box(const torch::Tensor& labels, const Grid& grid, const WorldBox& box,
                                int64_t* inside_voxels) {
  torch::Tensor l = detail::as_label_tensor(labels, "crop_to_world_box");
  TF_CHECK(l.size(0) == grid.size[2] && l.size(1) == grid.size[1] && l.size(2) == grid.size[0], InvalidArgument,
           "crop_to_world_box: label map shape ", l.sizes().vec(), " does not match the grid size (x, y, z) ",
           grid.size);
  const torch::Tensor inside = voxels_inside(grid, box);
  const detail::Dims d = detail::dims_of(inside);
  const detail::Box b = detail::bounding_box(inside.data_ptr<uint8_t>(), d, -1);
  if (inside_voxels) *inside_voxels = inside.sum().item<int64_t>();
  if (b.empty()) return torch::zeros({0, 0, 0}, torch::kUInt8);
  using torch::indexing::Slice;
  torch::Tensor crop = l.index({Slice(b.z0, b.z1), Slice(b.y0, b.y1), Slice(b.x0, b.x1)});
  const torch::Tensor in = inside.index({Slice(b.z0, b.z1), Slice(b.y0, b.y1), Slice(b.x0, b.x1)});
  return (crop * in).contiguous();
}

}  // namespace teachformer::metrics
