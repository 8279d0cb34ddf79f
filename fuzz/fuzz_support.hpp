// What every fuzz target shares: a scratch folder for the input file and the rule a reader must keep.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace teachformer::fuzz {

/// A folder of this process's own under $TMPDIR (default /tmp), created on first use and removed at exit.
const std::filesystem::path& scratch_dir();

/// Writes the fuzz input to `relative` inside scratch_dir() (parent folders created) and returns its path.
std::filesystem::path write_input(const std::string& relative, const uint8_t* data, size_t size);

/// Runs `read`, which must either return or throw a teachformer::Error whose message is one line. Any other
/// exception, or a message with a line break, is a finding: it is printed and the process aborts, so that
/// libFuzzer keeps the input. Crashes, sanitizer reports and hangs are findings by themselves.
void expect_success_or_error(const char* reader, const std::function<void()>& read);

}  // namespace teachformer::fuzz
