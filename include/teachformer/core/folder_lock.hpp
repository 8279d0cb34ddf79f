// One writer per folder. A preprocessed dataset, a teacher cache, a model's fold folder, a prediction folder and an
// experiment folder are each written by one process at a time: the writer holds an advisory lock (flock) on
// <folder>/.teachformer.lock, which also names it (pid and command line). A second process either waits for the
// lock (shared products such as a preprocessed dataset or a teacher cache, which it then reuses) or is refused with
// the holder's pid. The kernel drops the lock when its holder exits, however it exits (kill -9 included), so a lock
// never outlives its process.
#pragma once
#include <filesystem>
#include <string>

namespace teachformer {

class FolderLock {
 public:
  enum class Mode {
    Refuse,  ///< a held lock is an IoError naming the holder
    Wait,    ///< wait until the holder is done (a stop request ends the wait with Interrupted)
  };
  /// Locks `folder` (created when missing); `what` names it in messages ("model folder", "teacher cache").
  FolderLock(const std::filesystem::path& folder, std::string what, Mode mode);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;
  FolderLock(FolderLock&& other) noexcept;
  FolderLock& operator=(FolderLock&& other) noexcept;

  /// The lock file of a folder.
  static std::filesystem::path file_of(const std::filesystem::path& folder);
  /// Who holds the lock of `folder` ("pid 123: teachformer train ..."), or empty when nobody does.
  static std::string holder(const std::filesystem::path& folder);

 private:
  int fd_ = -1;
};

}  // namespace teachformer
