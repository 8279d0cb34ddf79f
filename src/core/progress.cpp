#include "teachformer/core/progress.hpp"

#include <cmath>
#include <cstdio>
#include <mutex>

#include "teachformer/core/log.hpp"

namespace teachformer {
namespace {
ProgressMode g_default_mode = ProgressMode::Auto;
std::mutex g_draw_mutex;
}  // namespace

void set_default_progress_mode(ProgressMode mode) { g_default_mode = mode; }
ProgressMode default_progress_mode() { return g_default_mode; }

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  char buf[32];
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", seconds);
  } else if (seconds < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", int(seconds) / 60, int(seconds) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dh%02dm", int(seconds) / 3600, (int(seconds) % 3600) / 60);
  }
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, ProgressMode mode, double line_interval_s)
    : label_(std::move(label)), total_(total), line_interval_s_(line_interval_s) {
  if (mode == ProgressMode::Auto) mode = g_default_mode;
  if (mode == ProgressMode::Auto) mode = stderr_is_terminal() ? ProgressMode::Bar : ProgressMode::Lines;
  mode_ = mode;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

ProgressBar::~ProgressBar() {
  try {
    finish();
  } catch (...) {
  }
}

double ProgressBar::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(int64_t done, const std::string& status) {
  done_ = done;
  if (!status.empty()) status_ = status;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (mode_ == ProgressMode::Bar && since < 0.2 && done_ < total_) return;
  if (mode_ == ProgressMode::Lines && since < line_interval_s_) return;
  last_draw_ = now;
  draw(false);
}

void ProgressBar::advance(int64_t n, const std::string& status) { update(done_ + n, status); }

void ProgressBar::finish(const std::string& status) {
  if (finished_) return;
  finished_ = true;
  if (!status.empty()) status_ = status;
  draw(true);
}

void ProgressBar::draw(bool final_line) {
  if (mode_ == ProgressMode::Quiet) return;
  const double elapsed = elapsed_s();
  const double frac = total_ > 0 ? std::min(1.0, double(done_) / double(total_)) : 1.0;
  const double eta = frac > 0 ? elapsed * (1.0 - frac) / frac : NAN;
  std::lock_guard<std::mutex> lock(g_draw_mutex);
  if (mode_ == ProgressMode::Bar) {
    constexpr int kWidth = 28;
    const int filled = int(std::round(frac * kWidth));
    std::string bar(size_t(filled), '#');
    bar.append(size_t(kWidth - filled), '.');
    std::fprintf(stderr, "\r\033[K%s [%s] %lld/%lld %s<%s %s", label_.c_str(), bar.c_str(), (long long)done_,
                 (long long)total_, format_duration(elapsed).c_str(),
                 final_line ? "" : format_duration(eta).c_str(), status_.c_str());
    if (final_line) std::fputc('\n', stderr);
  } else {
    std::fprintf(stderr, "%s: %lld/%lld (%.0f%%) elapsed %s%s%s %s\n", label_.c_str(), (long long)done_,
                 (long long)total_, 100.0 * frac, format_duration(elapsed).c_str(), final_line ? "" : " eta ",
                 final_line ? "" : format_duration(eta).c_str(), status_.c_str());
  }
  std::fflush(stderr);
}

}  // namespace teachformer
