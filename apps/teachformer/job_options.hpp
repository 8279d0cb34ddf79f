// Command-line options shared by `train` and `distill`.
#pragma once
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "teachformer/dist/process_group.hpp"
#include "teachformer/pipeline/jobs.hpp"

namespace teachformer::app {

/// Raw flag values; to_job() turns them into pipeline::JobOptions.
struct JobFlags {
  std::string dataset, model = "teachformer_s", fold = "0", output, config, preset = "demo", channels, device = "cpu",
      patch_size;
  int n_folds = 5;
  bool resume = false;
  bool allow_changed_settings = false;
  int64_t epochs = 0, steps_per_epoch = 0, batch_size = 0;
  int64_t seed = -1;
  std::string precision;
  /// Data-parallel: local processes to start (1 = this one only), seconds a rank waits for the others, backend.
  int nproc_per_node = 1;
  double dist_timeout = 300;
  std::string dist_backend = "auto";
};

/// Adds -d -m -f -o -c --preset --channels --resume --epochs --steps-per-epoch --batch-size --seed --device
/// --precision --folds and the data-parallel flags --nproc-per-node --dist-timeout --dist-backend.
void add_job_flags(CLI::App* cmd, JobFlags& flags, const std::string& default_model);
/// Validates and converts (InvalidArgument naming the flag for a bad value).
pipeline::JobOptions to_job(const JobFlags& flags);
/// Runs a train/distill job as the program's data-parallel role: with --nproc-per-node N > 1 (and not already a
/// launched worker) it starts N local ranks of this same command line and supervises them; as a rank of a job
/// (torchrun or Slurm variables, or a launched worker) it joins the process group first (rank > 0 logs warnings
/// only); otherwise it just runs. `body` gets the options (with JobOptions::group set in a job) and returns the
/// exit status.
int run_job(const JobFlags& flags, const std::function<int(pipeline::JobOptions&)>& body);
/// Prints the one-paragraph summary of a finished run.
void print_job_result(const std::string& verb, const pipeline::JobResult& result);

}  // namespace teachformer::app
