// teachformer train: train one model (teacher or student) on one fold of a dataset.
#include "common.hpp"
#include "job_options.hpp"

namespace teachformer::app {

void register_train(CLI::App& parent) {
  auto* cmd = parent.add_subcommand("train", "Train a model on one fold and write a self-describing model folder");
  static JobFlags flags;
  add_job_flags(cmd, flags, "unetr");
  set_command(cmd, [] {
    return run_job(flags, [](pipeline::JobOptions& job) {
      const auto result = pipeline::run_train_job(job);
      if (!job.group || job.group->rank() == 0) print_job_result("train", result);
      return 0;
    });
  }, graceful_stop("--resume"));
}

}  // namespace teachformer::app
