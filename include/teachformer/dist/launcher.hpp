// `--nproc-per-node N`: the program starts N copies of itself on this machine as the ranks of one job (the
// environment torchrun would set: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1,
// MASTER_PORT=a free port, TF_THREADS=cores/N) and supervises them: when one rank fails, the others are stopped
// (SIGTERM, then SIGKILL after a grace period) and the launcher exits with the failed rank's status; SIGINT/SIGTERM
// sent to the launcher are passed on to every rank.
#pragma once
#include <string>
#include <vector>

namespace teachformer::dist {

/// Environment variable a launched worker finds set (so it does not launch workers itself).
inline constexpr const char* kWorkerEnv = "TF_DIST_WORKER";

/// Settings of a local launch.
struct LaunchOptions {
  /// Ranks to start (>= 1).
  int nproc = 1;
  /// Intra-op threads per rank (0: cores / nproc, at least 1).
  int threads_per_worker = 0;
  /// Rendezvous port (0: a free port on 127.0.0.1).
  int master_port = 0;
  /// Seconds between SIGTERM and SIGKILL when stopping the ranks.
  double grace_seconds = 10;
};

/// True inside a worker started by launch_local_workers().
bool is_launched_worker();

/// Runs `argv` (argv[0] a path to this program, resolved from /proc/self/exe by the caller) as `nproc` ranks and
/// waits for them. Returns 0 when every rank exits 0; otherwise the first failing rank's exit status (128 + signal
/// for a rank killed by a signal), after printing one line naming that rank and its status to stderr.
int launch_local_workers(const std::vector<std::string>& argv, const LaunchOptions& options);

}  // namespace teachformer::dist
