// Runs independent training jobs (teachers; students; seeds) in this process one after the other, or as N worker
// processes at once, each with its share of the cores (a 4-GPU machine or a many-core one trains 4 models at once).
// Workers are this program re-executed on a job file; their output goes to <model dir>/job.log.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/pipeline/jobs.hpp"

namespace teachformer::pipeline {

/// One job: train (no teachers) or distill.
struct JobSpec {
  /// "train" or "distill".
  std::string kind = "train";
  JobOptions job;
  DistillJobOptions distill;
  /// Shown in progress and errors ("teacher unetr, seed 0").
  std::string label;
};
/// JSON forms (every field of JobOptions except the process group; teachers with all their fields).
nlohmann::json to_json(const JobSpec& spec);
JobSpec job_spec_from_json(const nlohmann::json& j);

/// Runs one job in this process.
JobResult run_job_spec(const JobSpec& spec);

/// How to run several jobs.
struct JobRunnerOptions {
  /// Jobs at once (1: in this process, one after the other).
  int jobs = 1;
  /// Threads per worker (0: cores / jobs, at least 1).
  int threads_per_job = 0;
  /// The worker command: argv prefix to which "<job file>" is appended (e.g. {"/path/teachformer", "-q",
  /// "experiment", "--run-job"}); required when jobs > 1.
  std::vector<std::string> worker_command;
  /// OpenMP waits passively in workers (set when the machine is already busy, so spinning threads do not steal
  /// the cores other processes need).
  bool passive_wait = false;
};

/// Runs every job and returns their results in order. With jobs > 1 each worker writes its result next to its job
/// file; a failed worker stops the others from being started and throws naming the job and its log file.
std::vector<JobResult> run_jobs(const std::vector<JobSpec>& specs, const JobRunnerOptions& options);

/// Entry point of a worker: runs the job in `job_file` and writes its result to `<job_file>.result.json`.
int job_worker_main(const std::filesystem::path& job_file);

/// Load of the machine: the 1-minute load average over the core count (0 when unknown).
double machine_load();

}  // namespace teachformer::pipeline
