// File-system helpers: durable atomic writes (temporary file in the same folder, fsync, rename, fsync of the folder),
// cleaning what a killed run left behind, small file reads, and paths from untrusted files kept inside their folder.
#pragma once
#include <filesystem>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace teachformer {

namespace fs = std::filesystem;

/// A temporary path beside `target` that keeps its full extension (".nii.gz" stays last) so that
/// writers choosing a format by extension still work: "<dir>/.tmp-<pid>-<n>-<filename>".
fs::path temporary_sibling(const fs::path& target);

/// Writes `target` atomically and durably: `write(tmp)` writes a temporary sibling, which is flushed to disk (fsync),
/// renamed over `target`, and the folder is flushed too, so that after a crash or power loss `target` is either the
/// old file or the whole new one. The parent folder is created. On any exception the temporary file is removed and
/// `target` is untouched; a failure for lack of space says how much the file needed and how much is free.
/// `expected_bytes` (when known) is the size the file will have, for that message.
void write_atomically(const fs::path& target, const std::function<void(const fs::path& tmp)>& write,
                      uint64_t expected_bytes = 0);

/// Flushes a file, or a folder's entries, to disk (fsync); throws IoError naming the path on failure.
void sync_path(const fs::path& path);

/// Removes temporary files ("<dir>/.tmp-<pid>-...") left in `dir` (not recursively) by processes that no longer
/// run, e.g. a run killed in the middle of a write, and logs how many it removed (when any). Returns that count.
int remove_stale_temporaries(const fs::path& dir);

/// Why `entry` (a path read from a file we do not trust, e.g. a dataset.json) would leave `root`: an absolute path,
/// ".." that climbs out, or a symbolic link that points outside. Empty when `root / entry` stays inside.
std::string path_escape_reason(const fs::path& root, const std::string& entry);

/// `root / entry` when it stays inside `root`; otherwise throws DatasetError "<where>: '<entry>' <reason>".
fs::path path_inside(const fs::path& root, const std::string& entry, std::string_view where);

/// Empty when `name` may be used as one file name inside a folder (a case id, a patient id): not empty, no '/',
/// no NUL, not "." or ".."; otherwise the reason.
std::string unsafe_name_reason(std::string_view name);

/// Writes `bytes` to `target` atomically (see write_atomically).
void write_file_atomic(const fs::path& target, std::string_view bytes);

/// Reads a whole file (throws IoError naming the path when missing or unreadable).
std::string read_file(const fs::path& path);

/// Throws IoError "<what> '<path>' does not exist" when the path is missing.
void require_exists(const fs::path& path, std::string_view what = "file");

/// True when the name ends with `suffix` (case-sensitive), e.g. ".nii.gz".
bool has_suffix(const fs::path& path, std::string_view suffix);

}  // namespace teachformer
