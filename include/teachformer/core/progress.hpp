// Progress reporting: an in-place bar with ETA on a terminal, plain periodic lines otherwise, nothing when quiet.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace teachformer {

/// How progress is shown.
enum class ProgressMode {
  Auto,   ///< bar on a terminal, periodic lines otherwise
  Bar,    ///< always redraw one line in place
  Lines,  ///< a plain line every `line_interval` seconds and at the end
  Quiet,  ///< nothing
};

/// Process-wide default mode (the CLI sets Quiet for --quiet).
void set_default_progress_mode(ProgressMode mode);
ProgressMode default_progress_mode();

/// Progress over `total` units of work, written to stderr.
class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, ProgressMode mode = ProgressMode::Auto,
              double line_interval_s = 10.0);
  ~ProgressBar();
  /// Sets the amount done and an optional status text ("loss 0.31").
  void update(int64_t done, const std::string& status = {});
  /// Adds `n` to the amount done.
  void advance(int64_t n = 1, const std::string& status = {});
  /// Prints the final line (idempotent; the destructor calls it).
  void finish(const std::string& status = {});
  /// Seconds since construction.
  double elapsed_s() const;

 private:
  void draw(bool final_line);
  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  std::string status_;
  ProgressMode mode_;
  double line_interval_s_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  bool finished_ = false;
};

/// "1h02m", "3m05s", "12.3s".
std::string format_duration(double seconds);

}  // namespace teachformer
