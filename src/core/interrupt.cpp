#include "teachformer/core/interrupt.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace teachformer {
namespace {

std::atomic<int> g_signal{0};

void write_stderr(const char* text) {
  const ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

// Only async-signal-safe calls here: an atomic store, write(2) and _exit(2).
void on_stop_signal(int sig) {
  int expected = 0;
  if (g_signal.compare_exchange_strong(expected, sig)) {
    write_stderr(
        "\nteachformer: stop requested; finishing the current step and saving (send the signal again to stop at "
        "once)\n");
    return;
  }
  write_stderr("\nteachformer: second signal, stopping now\n");
  ::_exit(128 + sig);
}

}  // namespace

Interrupted::Interrupted(int signal, const std::string& saved)
    : Error("interrupted by " + signal_name(signal) + (saved.empty() ? std::string() : "; " + saved)),
      signal_(signal) {}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a stop request must not make reads and waits in libraries fail with EINTR
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) ::sigaction(sig, &sa, nullptr);
}

bool stop_requested() { return g_signal.load() != 0; }
int stop_signal() { return g_signal.load(); }
void request_stop(int signal) { g_signal.store(signal); }
void clear_stop_request() { g_signal.store(0); }

void throw_if_stop_requested(const std::string& saved) {
  const int sig = g_signal.load();
  if (sig != 0) throw Interrupted(sig, saved);
}

std::string signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGHUP: return "SIGHUP";
    case SIGKILL: return "SIGKILL";
    default: return "signal " + std::to_string(signal);
  }
}

}  // namespace teachformer
