#include "test_support.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <random>
#include <stdexcept>

namespace teachformer::test {

std::filesystem::path fixtures_dir() { return TF_FIXTURES_DIR; }

std::filesystem::path fixture(const std::string& relative) {
  const auto p = fixtures_dir() / relative;
  if (!std::filesystem::exists(p))
    throw std::runtime_error("fixture '" + p.string() + "' is missing (shared/fixtures must lie beside the checkout)");
  return p;
}

std::filesystem::path cli_path() { return TF_CLI_PATH; }

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("tf-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(rd() % 100000));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

CommandResult run_cli(const std::string& args) { return run_command("'" + cli_path().string() + "' " + args); }

}  // namespace teachformer::test
