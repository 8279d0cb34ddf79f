// Private helpers of the dataset readers (src/data/dataset.cpp and src/data/detail/*_reader.cpp).
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "teachformer/data/dataset.hpp"

namespace teachformer::data::detail {

namespace fs = std::filesystem;

/// `p` relative to `root` when inside it, else `p` as given.
std::string display_path(const fs::path& root, const fs::path& p);
/// ASCII lower case.
std::string lower(std::string s);
/// True when `p` exists; false also when it cannot be checked (a name too long, a path through a file), where
/// std::filesystem::exists would throw.
bool path_exists(const fs::path& p);
/// Regular files of `dir` (not hidden, not macOS "._" forks), sorted by name; empty when `dir` is missing.
std::vector<fs::path> list_files(const fs::path& dir);
/// Sub-folders of `dir`, sorted by name.
std::vector<fs::path> list_dirs(const fs::path& dir);
/// Appends a problem, naming `file` relative to the dataset root.
void add_problem(Dataset& ds, Severity severity, const fs::path& file, std::string message, std::string hint = {});
/// Sorts the case lists by id and reports ids that appear more than once (the later copies are dropped).
void finish_cases(Dataset& ds);

/// Reads every bbox CSV (columns PatientID,x1,x2,y1,y2,z1,z2 by name, any order, extra columns ignored).
/// A CSV without those columns throws DatasetError; bad rows become problems.
std::map<std::string, transforms::BoundingBox> read_bbox_csvs(const std::vector<fs::path>& files, Dataset& ds);
/// CSV files whose name contains "bbox" (case-insensitive) in the given folders.
std::vector<fs::path> find_bbox_csvs(const std::vector<fs::path>& folders);

Dataset read_nnunet(const fs::path& root);
Dataset read_msd(const fs::path& root);
Dataset read_hecktor2021(const fs::path& root);
Dataset read_hecktor2022(const fs::path& root);
Dataset read_picai(const fs::path& root);

}  // namespace teachformer::data::detail
