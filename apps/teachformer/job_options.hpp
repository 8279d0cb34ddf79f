// Command-line options shared by `train` and `distill`.
#pragma once
#include <string>

#include <CLI/CLI.hpp>

#include "teachformer/pipeline/jobs.hpp"

namespace teachformer::app {

/// Raw flag values; to_job() turns them into pipeline::JobOptions.
struct JobFlags {
  std::string dataset, model = "teachformer_s", fold = "0", output, config, preset = "demo", channels, device = "cpu",
      patch_size;
  int n_folds = 5;
  bool resume = false;
  int64_t epochs = 0, steps_per_epoch = 0;
  int64_t seed = -1;
};

/// Adds -d -m -f -o -c --preset --channels --resume --epochs --steps-per-epoch --seed --device --folds.
void add_job_flags(CLI::App* cmd, JobFlags& flags, const std::string& default_model);
/// Validates and converts (InvalidArgument naming the flag for a bad value).
pipeline::JobOptions to_job(const JobFlags& flags);
/// Prints the one-paragraph summary of a finished run.
void print_job_result(const std::string& verb, const pipeline::JobResult& result);

}  // namespace teachformer::app
