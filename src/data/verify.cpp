#include "teachformer/data/verify.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "data/detail/parallel.hpp"
#include "data/detail/nifti_scan.hpp"
#include "data/detail/scan.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/transforms/resample.hpp"

namespace teachformer::data {
namespace {

namespace fs = std::filesystem;

// "+ 0.0" turns -0 into 0 so that printed directions read as they are meant.
std::string fmt(const Vec3& v) {
  std::ostringstream os;
  os.precision(8);
  os << '[' << v[0] + 0.0 << ", " << v[1] + 0.0 << ", " << v[2] + 0.0 << ']';
  return os.str();
}
std::string fmt_dir(const Mat3& m) {
  std::ostringstream os;
  os.precision(6);
  os << '[';
  for (int i = 0; i < 9; ++i) os << (i ? ", " : "") << m[size_t(i)] + 0.0;
  os << ']';
  return os.str();
}
std::string fmt_size(const Size3& s) {
  return "[" + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ", " + std::to_string(s[2]) + "]";
}

struct CaseChecker {
  const Dataset& ds;
  const VerifyOptions& opt;
  std::vector<Problem> problems;

  void add(Severity s, const fs::path& file, std::string message, std::string hint = {}) {
    problems.push_back({s, detail::display_path(ds.root, file), std::move(message), std::move(hint)});
  }

  // Grid `a` (of `a_name`, in `file`) must equal grid `b` (of `b_name`).
  void compare_grids(const fs::path& file, const std::string& a_name, const Grid& a, const std::string& b_name,
                     const Grid& b, const std::string& hint) {
    if (a.size != b.size)
      add(Severity::Error, file,
          "shape mismatch: " + a_name + " " + fmt_size(a.size) + " vs " + b_name + " " + fmt_size(b.size) +
              " voxels (x, y, z)",
          hint);
    double ds_max = 0, do_max = 0, dd_max = 0;
    for (int i = 0; i < 3; ++i) {
      ds_max = std::max(ds_max, std::abs(a.geometry.spacing[i] - b.geometry.spacing[i]));
      do_max = std::max(do_max, std::abs(a.geometry.origin[i] - b.geometry.origin[i]));
    }
    for (int i = 0; i < 9; ++i) dd_max = std::max(dd_max, std::abs(a.geometry.direction[i] - b.geometry.direction[i]));
    if (ds_max > opt.tolerance_mm)
      add(Severity::Error, file,
          "spacing mismatch: " + a_name + " " + fmt(a.geometry.spacing) + " vs " + b_name + " " +
              fmt(b.geometry.spacing) + " mm",
          hint);
    if (do_max > opt.tolerance_mm)
      add(Severity::Error, file,
          "origin mismatch: " + a_name + " " + fmt(a.geometry.origin) + " vs " + b_name + " " +
              fmt(b.geometry.origin) + " mm (largest difference " + std::to_string(do_max) + " mm)",
          hint);
    if (dd_max > opt.direction_tolerance)
      add(Severity::Error, file,
          "direction mismatch: " + a_name + " " + fmt_dir(a.geometry.direction) + " vs " + b_name + " " +
              fmt_dir(b.geometry.direction),
          hint);
  }

  void check(const Case& c) {
    const int ref = reference_channel_index(c.channel_names);
    std::vector<Grid> grids;
    std::vector<fs::path> files;
    if (!read_channel_headers(c, grids, files)) return;
    const std::optional<Grid> label_grid = read_label_header(c);
    check_channel_grids(c, ref, grids, files);
    const std::string& ref_name = c.channel_names[size_t(ref)];
    if (label_grid)
      compare_grids(*c.label_file, "label", *label_grid, "'" + ref_name + "'", grids[size_t(ref)],
                    "the label must lie on the grid of its reference channel '" + ref_name + "'");
    if (c.bbox) check_bbox(c, ref, grids[size_t(ref)]);
    if (!opt.check_voxels) return;
    check_image_voxels(c);
    if (c.label_file) check_label_voxels(*c.label_file);
  }

  // The grid of every channel (a multichannel file gives its grid once per channel); false when a header is
  // unreadable (reported).
  bool read_channel_headers(const Case& c, std::vector<Grid>& grids, std::vector<fs::path>& files) {
    const int n = int(c.channel_names.size());
    try {
      if (c.multichannel_file()) {
        const io::ImageInfo info = io::read_image_info(c.channel_files.front());
        if (info.channels != n)
          add(Severity::Error, c.channel_files.front(),
              "channel count: the image has " + std::to_string(info.channels) + " channel(s), dataset.json declares " +
                  std::to_string(n),
              "multichannel MSD images hold the channels in the 4th dimension, in 'modality' order");
        for (int k = 0; k < n; ++k) {
          grids.push_back(info.grid());
          files.push_back(c.channel_files.front());
        }
      } else {
        for (int k = 0; k < n; ++k) {
          const io::ImageInfo info = io::read_image_info(c.channel_files[size_t(k)]);
          if (info.channels != 1)
            add(Severity::Error, c.channel_files[size_t(k)],
                "channel count: expected a single-channel 3D image for channel '" + c.channel_names[size_t(k)] +
                    "', found " + std::to_string(info.channels) + " channels");
          grids.push_back(info.grid());
          files.push_back(c.channel_files[size_t(k)]);
        }
      }
    } catch (const Error& e) {
      add(Severity::Error, c.channel_files.front(), std::string("unreadable image: ") + e.what());
      return false;
    }
    return true;
  }

  std::optional<Grid> read_label_header(const Case& c) {
    if (!c.label_file) return std::nullopt;
    try {
      const io::ImageInfo info = io::read_image_info(*c.label_file);
      if (info.channels != 1)
        add(Severity::Error, *c.label_file,
            "channel count: a label map has one channel, found " + std::to_string(info.channels));
      return info.grid();
    } catch (const Error& e) {
      add(Severity::Error, *c.label_file, std::string("unreadable label: ") + e.what());
      return std::nullopt;
    }
  }

  // nnU-Net and MSD need one grid for all channels; the HECKTOR and PI-CAI layouts only overlapping fields of view.
  void check_channel_grids(const Case& c, int ref, const std::vector<Grid>& grids, const std::vector<fs::path>& files) {
    const std::string& ref_name = c.channel_names[size_t(ref)];
    const bool one_grid = ds.format == DatasetFormat::NnUNet || ds.format == DatasetFormat::Msd;
    const auto ref_extent = transforms::grid_extent(grids[size_t(ref)]);
    for (int k = 0; k < int(c.channel_names.size()); ++k) {
      if (k == ref || files[size_t(k)] == files[size_t(ref)]) continue;
      if (one_grid) {
        compare_grids(files[size_t(k)], "channel '" + c.channel_names[size_t(k)] + "'", grids[size_t(k)],
                      "'" + ref_name + "'", grids[size_t(ref)],
                      "the " + to_string(ds.format) + " layout needs every channel on one grid; resample it");
        continue;
      }
      const auto ext = transforms::grid_extent(grids[size_t(k)]);
      bool overlap = true;
      for (int a = 0; a < 3; ++a)
        overlap = overlap && ext.first[a] < ref_extent.second[a] && ref_extent.first[a] < ext.second[a];
      if (!overlap)
        add(Severity::Error, files[size_t(k)],
            "fields of view do not overlap: channel '" + c.channel_names[size_t(k)] + "' covers " + fmt(ext.first) +
                ".." + fmt(ext.second) + " mm, '" + ref_name + "' covers " + fmt(ref_extent.first) + ".." +
                fmt(ref_extent.second) + " mm",
            "check the image origins (LPS) or that both files belong to this case");
    }
  }

  void check_bbox(const Case& c, int ref, const Grid& ref_grid) {
    const std::string& ref_name = c.channel_names[size_t(ref)];
    const auto ref_extent = transforms::grid_extent(ref_grid);
    const auto& b = *c.bbox;
    double outside = 0.0;
    bool disjoint = false;
    for (int a = 0; a < 3; ++a) {
      outside = std::max({outside, ref_extent.first[a] - b.min[a], b.max[a] - ref_extent.second[a]});
      disjoint = disjoint || b.max[a] <= ref_extent.first[a] || b.min[a] >= ref_extent.second[a];
    }
    const std::string where = "bbox " + b.to_string() + ", '" + ref_name + "' covers " + fmt(ref_extent.first) +
                              ".." + fmt(ref_extent.second) + " mm";
    if (disjoint)
      add(Severity::Error, c.channel_files[size_t(ref)], "bbox outside the image: " + where,
          "bbox coordinates are world mm in LPS, as ITK reads the CT header");
    else if (outside > 1.0)
      add(Severity::Warning, c.channel_files[size_t(ref)],
          "bbox extends beyond the image by up to " + std::to_string(outside) + " mm: " + where,
          "the part outside is filled with the channel minimum");
  }

  void check_image_voxels(const Case& c) {
    try {
      for (const auto& f : c.channel_files) {
        int64_t nan = 0, inf = 0;
        if (const auto raw = detail::count_nonfinite_nifti(f)) {
          nan = raw->nan;
          inf = raw->inf;
        } else {
          const io::Volume v = io::read_image(f);
          nan = v.data.isnan().sum().item<int64_t>();
          inf = v.data.isinf().sum().item<int64_t>();
        }
        if (nan || inf)
          add(Severity::Error, f,
              "image has " + std::to_string(nan) + " NaN and " + std::to_string(inf) + " Inf voxel(s)",
              "replace them (e.g. by the minimum intensity) before training");
      }
    } catch (const Error& e) {
      add(Severity::Error, c.channel_files.front(), std::string("unreadable image data: ") + e.what());
    }
  }

  // Finite integer values, each declared in dataset.json; an all-background label is a warning.
  void check_label_voxels(const fs::path& label_file) {
    try {
      const auto raw = detail::count_nonfinite_nifti(label_file);
      const io::Volume v = io::read_image(label_file);
      const auto finite = v.data.isfinite().all().item<bool>() && (!raw || (raw->nan == 0 && raw->inf == 0));
      if (!finite) {
        add(Severity::Error, label_file, "label has NaN or Inf voxels");
        return;
      }
      if (!at::equal(v.data, v.data.round())) add(Severity::Error, label_file, "label has non-integer values");
      const auto values = std::get<0>(at::_unique(v.data.round().to(torch::kLong)));
      std::vector<int64_t> undeclared, found;
      for (int64_t i = 0; i < values.numel(); ++i) {
        const int64_t value = values[i].item<int64_t>();
        found.push_back(value);
        if (std::find(ds.raw_label_values.begin(), ds.raw_label_values.end(), value) == ds.raw_label_values.end())
          undeclared.push_back(value);
      }
      if (!undeclared.empty())
        add(Severity::Error, label_file,
            detail_cat("undeclared label values ", undeclared, "; declared values are ", ds.raw_label_values),
            "declare them in the labels of dataset.json or fix the label");
      if (found.size() == 1 && found.front() == 0)
        add(Severity::Warning, label_file, "empty label: no foreground voxel",
            "fine for a negative case; otherwise check the delineation");
    } catch (const Error& e) {
      add(Severity::Error, label_file, std::string("unreadable label data: ") + e.what());
    }
  }

  template <typename... Parts>
  static std::string detail_cat(const Parts&... parts) {
    return ::teachformer::detail::cat(parts...);
  }
};

}  // namespace

int VerifyReport::errors() const {
  return int(std::count_if(problems.begin(), problems.end(), [](const Problem& p) { return p.severity == Severity::Error; }));
}
int VerifyReport::warnings() const { return int(problems.size()) - errors(); }

VerifyReport verify_dataset(const Dataset& ds, const VerifyOptions& options) {
  VerifyReport report;
  report.format = ds.format;
  report.name = ds.name;
  report.labelled = int64_t(ds.training.size());
  report.unlabelled = int64_t(ds.unlabelled.size());
  report.problems = ds.problems;
  const std::vector<Case> cases = ds.all_cases();
  std::vector<std::vector<Problem>> per_case(cases.size());
  detail::run_parallel(int64_t(cases.size()), options.workers, [&](int64_t i) {
    CaseChecker checker{ds, options, {}};
    try {
      checker.check(cases[size_t(i)]);
    } catch (const std::exception& e) {
      checker.add(Severity::Error, cases[size_t(i)].channel_files.front(), std::string("check failed: ") + e.what());
    }
    per_case[size_t(i)] = std::move(checker.problems);
  });
  for (auto& p : per_case) report.problems.insert(report.problems.end(), p.begin(), p.end());
  return report;
}

VerifyReport verify_dataset(const fs::path& root, std::optional<DatasetFormat> format, const VerifyOptions& options) {
  return verify_dataset(open_dataset(root, format), options);
}

}  // namespace teachformer::data
