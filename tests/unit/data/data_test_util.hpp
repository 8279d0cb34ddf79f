// Helpers shared by the data tests: tiny phantom datasets and problem lookup.
#pragma once
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "teachformer/data/dataset.hpp"
#include "teachformer/data/synth.hpp"

namespace teachformer::data::test_util {

/// A tiny PET/CT phantom: CT 56x56x20 at 1x1x3 mm, 48 mm bbox.
inline SynthOptions tiny_petct(DatasetFormat layout, int cases, int unlabelled = 0) {
  SynthOptions o;
  o.kind = PhantomKind::PetCt;
  o.layout = layout;
  o.cases = cases;
  o.seed = 7;
  o.size = Size3{56, 56, 20};
  o.bbox_mm = 48;
  o.unlabelled = unlabelled;
  return o;
}

/// A tiny prostate phantom: T2W 96x96x8 at 0.5x0.5x3 mm.
inline SynthOptions tiny_mri(DatasetFormat layout, int cases, int unlabelled = 0) {
  SynthOptions o;
  o.kind = PhantomKind::Mri;
  o.layout = layout;
  o.cases = cases;
  o.seed = 11;
  o.size = Size3{96, 96, 8};
  o.unlabelled = unlabelled;
  return o;
}

/// Recursive copy.
inline void copy_tree(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::create_directories(to);
  std::filesystem::copy(from, to, std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
}

/// The one-line forms of the problems that contain `text`.
inline std::vector<std::string> lines_with(const std::vector<Problem>& problems, const std::string& text) {
  std::vector<std::string> out;
  for (const auto& p : problems)
    if (p.to_string().find(text) != std::string::npos) out.push_back(p.to_string());
  return out;
}

/// The first regular file of a folder in name order.
inline std::filesystem::path list_first(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files.empty() ? std::filesystem::path() : files.front();
}

/// All problems as text (for failure messages).
inline std::string all_lines(const std::vector<Problem>& problems) {
  std::string s;
  for (const auto& p : problems) s += p.to_string() + "\n";
  return s;
}

}  // namespace teachformer::data::test_util
