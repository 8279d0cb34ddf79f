// Where this process sits in a data-parallel job, read from the environment the way torchrun and Slurm describe
// it, so that one `teachformer train|distill` command line runs alone, under `--nproc-per-node N` (the program
// starts its own local workers), under torchrun, or as a Slurm task, with no other tool.
#pragma once
#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace teachformer::dist {

/// The default rendezvous port (torchrun's).
inline constexpr int kDefaultMasterPort = 29500;

/// One process's place in a job.
struct WorldInfo {
  /// Global rank, 0 <= rank < world_size.
  int rank = 0;
  /// Number of processes in the job.
  int world_size = 1;
  /// Rank among the processes of this machine (GPU index on a multi-GPU machine).
  int local_rank = 0;
  /// Processes on this machine.
  int local_world_size = 1;
  /// Host of the rendezvous store (rank 0's machine) and its TCP port.
  std::string master_addr = "127.0.0.1";
  int master_port = kDefaultMasterPort;
  /// Where the values came from: "single", "torchrun" (RANK/WORLD_SIZE/...), "slurm" (SLURM_PROCID/...).
  std::string source = "single";

  /// True for a job of more than one process.
  bool distributed() const { return world_size > 1; }
  /// "rank R/W (local L) at ADDR:PORT".
  std::string describe() const;
};

/// Reads an environment variable (empty optional when unset); replaceable in tests.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
/// The process environment.
EnvLookup process_environment();

/// The job this process belongs to:
///  - torchrun-style when WORLD_SIZE is set: RANK, WORLD_SIZE, LOCAL_RANK (default 0), LOCAL_WORLD_SIZE (default
///    1), MASTER_ADDR (required when WORLD_SIZE > 1), MASTER_PORT (default 29500);
///  - Slurm-style when SLURM_PROCID and SLURM_NTASKS are set (and WORLD_SIZE is not): SLURM_PROCID, SLURM_NTASKS,
///    SLURM_LOCALID, SLURM_NTASKS_PER_NODE (or SLURM_STEP_TASKS_PER_NODE), MASTER_ADDR or else the first host of
///    SLURM_STEP_NODELIST / SLURM_JOB_NODELIST, MASTER_PORT (default 29500);
///  - otherwise a single process.
/// InvalidArgument naming the variable for a value that is not an integer, a rank outside [0, world size), a port
/// outside [1, 65535] or a missing master address.
WorldInfo world_from_environment(const EnvLookup& env = process_environment());

/// The first host of a Slurm node list: "node[03-05,9],gpu1" -> "node03"; "a,b" -> "a"; "c7" -> "c7".
/// InvalidArgument for an empty or malformed list.
std::string first_slurm_host(const std::string& nodelist);

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, close).
int free_local_port();

}  // namespace teachformer::dist
