// Shared pieces of the CLI: global options, exit codes, and the wrapper that turns exceptions into one line.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace teachformer::app {

/// Exit statuses of the CLI.
enum ExitCode : int { kOk = 0, kRuntimeError = 1, kUsageError = 2, kInternalError = 3 };

/// Options every subcommand shares (set on the root app).
struct GlobalOptions {
  /// Intra-op threads; 0 = all cores.
  int threads = 0;
  /// No progress bars or periodic lines.
  bool quiet = false;
  /// Log level: trace, debug, info, warn, error, off.
  std::string log_level = "info";
  /// The program's command line as main() received it (data-parallel launch re-runs it).
  std::vector<std::string> argv;
};
GlobalOptions& global_options();

/// Applies the global options (threads, log level, progress mode); each subcommand calls it first.
void apply_global_options();

/// Runs `body` and returns its exit status; library errors become one "error: ..." line on stderr.
int run_guarded(const std::function<int()>& body);

/// How a command meets SIGINT/SIGTERM/SIGUSR1.
struct StopPolicy {
  /// The command stops at its next safe point and says how to continue (otherwise a signal ends it at once).
  bool graceful = false;
  /// The flag that continues an interrupted run ("--resume", "--continue"; empty: the same command continues it).
  std::string resume_flag;
};
/// A command that stops gracefully and is continued by `resume_flag` (see StopPolicy).
inline StopPolicy graceful_stop(std::string resume_flag = "") { return {true, std::move(resume_flag)}; }

/// Sets the subcommand's callback so that its exit code reaches main (see main.cpp).
void set_command(CLI::App* cmd, std::function<int()> body, StopPolicy stop = {});

/// The command that continues this run: the program's arguments, shell-quoted, plus `resume_flag` when missing.
std::string resume_command(const std::string& resume_flag);

/// Option checks that read as one short line: "--epochs: must be > 0, got -5" (CLI11's own number ranges print the
/// largest double). The names shown by --help stay POSITIVE and NONNEGATIVE.
extern const CLI::Validator kPositiveNumber;     // > 0
extern const CLI::Validator kNonNegativeNumber;  // >= 0

/// The exit status chosen by the subcommand that ran.
int& command_exit_code();

}  // namespace teachformer::app
