#include "common.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <c10/util/Exception.h>

#include "teachformer/core/error.hpp"
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

int run_guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const InternalError& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return kInternalError;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kRuntimeError;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what_without_backtrace());
    return kRuntimeError;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return kRuntimeError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return kInternalError;
  }
}

void set_command(CLI::App* cmd, std::function<int()> body) {
  cmd->callback([body = std::move(body)] {
    command_exit_code() = run_guarded([&] {
      apply_global_options();
      return body();
    });
  });
}

}  // namespace teachformer::app
