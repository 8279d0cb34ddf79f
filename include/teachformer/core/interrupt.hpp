// Graceful stops. SIGINT (Ctrl-C), SIGTERM (a scheduler ending a job) and SIGUSR1 (a scheduler's pre-emption
// warning, e.g. Slurm's --signal=USR1@120) ask a long run to stop at the next safe point: the trainer finishes its
// current step and writes its resume checkpoint, preprocessing and prediction finish the current case. The CLI then
// prints the command that continues the run and exits with 128 + the signal's number (130, 143, 138). A second
// signal stops the process at once.
#pragma once
#include <string>
#include <string_view>

#include "teachformer/core/error.hpp"

namespace teachformer {

/// Thrown at a safe point after a stop was requested; `what()` says what was saved.
class Interrupted : public Error {
 public:
  Interrupted(int signal, const std::string& saved);
  /// The signal that asked for the stop.
  int signal() const { return signal_; }
  /// 128 + the signal's number, as a shell reports a process that a signal ended.
  int exit_status() const { return 128 + signal_; }

 private:
  int signal_;
};

/// Installs the handlers for SIGINT, SIGTERM and SIGUSR1 (idempotent). The first signal requests a stop and says so
/// on stderr; a second one ends the process at once with 128 + its number.
void install_stop_handlers();

/// True once a stop was requested.
bool stop_requested();
/// The signal that requested the stop (0 when none).
int stop_signal();
/// Requests a stop as if `signal` had been received (tests; a parent forwarding its stop).
void request_stop(int signal);
/// Forgets a requested stop (tests).
void clear_stop_request();

/// Throws Interrupted when a stop was requested; `saved` says what was written ("checkpoint at step 40").
void throw_if_stop_requested(const std::string& saved);

/// "SIGTERM", "SIGINT", ... ("signal N" for others).
std::string signal_name(int signal);

}  // namespace teachformer
