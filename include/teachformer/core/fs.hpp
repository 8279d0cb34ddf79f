// File-system helpers: atomic writes (temporary file in the same folder + rename) and small file reads.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace teachformer {

namespace fs = std::filesystem;

/// A temporary path beside `target` that keeps its full extension (".nii.gz" stays last) so that
/// writers choosing a format by extension still work: "<dir>/.tmp-<pid>-<n>-<filename>".
fs::path temporary_sibling(const fs::path& target);

/// Writes `target` atomically: `write(tmp)` writes a temporary sibling which is then renamed over `target`.
/// The parent folder is created. On any exception the temporary file is removed and `target` is untouched.
void write_atomically(const fs::path& target, const std::function<void(const fs::path& tmp)>& write);

/// Writes `bytes` to `target` atomically (see write_atomically).
void write_file_atomic(const fs::path& target, std::string_view bytes);

/// Reads a whole file (throws IoError naming the path when missing or unreadable).
std::string read_file(const fs::path& path);

/// Throws IoError "<what> '<path>' does not exist" when the path is missing.
void require_exists(const fs::path& path, std::string_view what = "file");

/// True when the name ends with `suffix` (case-sensitive), e.g. ".nii.gz".
bool has_suffix(const fs::path& path, std::string_view suffix);

}  // namespace teachformer
