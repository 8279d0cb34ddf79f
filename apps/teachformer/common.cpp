#include "common.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <c10/util/Exception.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/interrupt.hpp"
#include "teachformer/core/log.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/core/runtime.hpp"

namespace teachformer::app {

GlobalOptions& global_options() {
  static GlobalOptions options;
  return options;
}

int& command_exit_code() {
  static int code = kOk;
  return code;
}

void apply_global_options() {
  const auto& g = global_options();
  set_log_level(g.log_level);
  // A launched data-parallel worker gets its share of the cores from the launcher (TF_THREADS).
  int threads = g.threads;
  if (threads == 0)
    if (const char* env = std::getenv("TF_THREADS"); env && *env) threads = std::max(0, std::atoi(env));
  set_threads(threads);
  set_default_progress_mode(g.quiet ? ProgressMode::Quiet : ProgressMode::Auto);
}

namespace {

std::string& current_resume_flag() {
  static std::string flag;
  return flag;
}

std::string shell_quoted(const std::string& arg) {
  if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@+") ==
                          std::string::npos)
    return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool is_first_rank() {
  const char* rank = std::getenv("RANK");
  return !rank || !*rank || std::string(rank) == "0";
}

// A number check with its bound in one short message ("must be > 0, got -5"); `name` is --help's type name.
CLI::Validator number_check(bool strict, const std::string& name) {
  return CLI::Validator(
      [strict](std::string& text) -> std::string {
        const std::string bound = strict ? "> 0" : ">= 0";
        double v = 0.0;
        if (!CLI::detail::lexical_cast(text, v) || std::isnan(v))
          return "must be a number " + bound + ", got '" + text + "'";
        return (strict ? v > 0.0 : v >= 0.0) ? "" : "must be " + bound + ", got " + text;
      },
      name, name);
}

}  // namespace

const CLI::Validator kPositiveNumber = number_check(true, "POSITIVE");
const CLI::Validator kNonNegativeNumber = number_check(false, "NONNEGATIVE");

std::string resume_command(const std::string& resume_flag) {
  const auto& argv = global_options().argv;
  std::string cmd;
  bool has_flag = resume_flag.empty();
  for (const auto& a : argv) {
    cmd += (cmd.empty() ? "" : " ") + shell_quoted(a);
    has_flag = has_flag || a == resume_flag;
  }
  if (!has_flag) cmd += " " + resume_flag;
  return cmd;
}

int run_guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const Interrupted& e) {
    if (is_first_rank()) {
      std::fprintf(stderr, "%s\n", e.what());
      std::fprintf(stderr, "continue with: %s\n", resume_command(current_resume_flag()).c_str());
    }
    return e.exit_status();
  } catch (const InternalError& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return kInternalError;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kRuntimeError;
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    for (auto& c : msg)
      if (c == '\n') c = ' ';
    const auto at = msg.find("you tried to allocate ");
    if (msg.find("can't allocate memory") != std::string::npos && at != std::string::npos) {
      const double bytes = std::atof(msg.c_str() + at + 22);
      std::fprintf(stderr,
                   "error: out of memory: an allocation of %.1f MiB failed (lower the batch or patch size, use fewer "
                   "threads, or raise the memory limit)\n",
                   bytes / (1024.0 * 1024.0));
    } else {
      std::fprintf(stderr, "error: %s\n", msg.c_str());
    }
    return kRuntimeError;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory (an allocation failed; lower the batch or patch size, use fewer "
                         "threads, or raise the memory limit)\n");
    return kRuntimeError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return kInternalError;
  }
}

void set_command(CLI::App* cmd, std::function<int()> body, StopPolicy stop) {
  cmd->callback([body = std::move(body), stop = std::move(stop)] {
    current_resume_flag() = stop.resume_flag;
    if (stop.graceful) install_stop_handlers();
    command_exit_code() = run_guarded([&] {
      apply_global_options();
      return body();
    });
  });
}

}  // namespace teachformer::app
