// Logging: spdlog to stderr with one format for the whole tool.
#pragma once
#include <string>

#include <spdlog/spdlog.h>

namespace teachformer {

/// Configures the default logger: "trace", "debug", "info" (default), "warn", "error" or "off".
void set_log_level(const std::string& level);
/// True when stderr is a terminal (progress bars redraw in place there).
bool stderr_is_terminal();

}  // namespace teachformer
