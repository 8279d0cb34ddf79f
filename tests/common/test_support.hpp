// Helpers shared by the test suites.
#pragma once
#include <filesystem>
#include <string>

namespace teachformer::test {

/// ../shared/fixtures beside the checkout. Tests that need a fixture fail (never skip) when it is missing.
std::filesystem::path fixtures_dir();
/// A fixture file; ADD_FAILURE-free: throws std::runtime_error naming the path when missing.
std::filesystem::path fixture(const std::string& relative);
/// Path of the built `teachformer` binary.
std::filesystem::path cli_path();

/// A fresh temporary folder, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// Result of running a command line.
struct CommandResult {
  int exit_code = -1;
  std::string output;  ///< stdout and stderr together
};
/// Runs `command` through /bin/sh, capturing stdout+stderr.
CommandResult run_command(const std::string& command);
/// Runs the teachformer binary with `args` (already shell-quoted where needed).
CommandResult run_cli(const std::string& args);

}  // namespace teachformer::test
