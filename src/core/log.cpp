#include "teachformer/core/log.hpp"

#include <unistd.h>

#include <spdlog/sinks/stdout_color_sinks.h>

#include "teachformer/core/error.hpp"

namespace teachformer {

void set_log_level(const std::string& level) {
  static bool configured = false;
  if (!configured) {
    auto logger = spdlog::stderr_color_mt("teachformer");
    logger->set_pattern("[%H:%M:%S] %^%l%$ %v");
    spdlog::set_default_logger(logger);
    configured = true;
  }
  const auto lvl = spdlog::level::from_str(level);
  TF_CHECK(lvl != spdlog::level::off || level == "off", InvalidArgument, "log level '", level,
           "': expected trace, debug, info, warn, error or off");
  spdlog::set_level(lvl);
}

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

}  // namespace teachformer
