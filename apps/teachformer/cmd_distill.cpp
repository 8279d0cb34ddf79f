// teachformer distill: distil a student from one or more trained teachers (Teach-Former or a baseline strategy).
#include <sstream>

#include "common.hpp"
#include "job_options.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/distill/strategy.hpp"

namespace teachformer::app {

void register_distill(CLI::App& parent) {
  auto* cmd = parent.add_subcommand(
      "distill", "Distil a student from trained teachers through predictions and coarse/fine attention maps");
  static JobFlags flags;
  static std::vector<std::string> teachers;
  static std::string weights, strategy, checkpoint = "best";
  static int teacher_fold = -2;
  static bool no_cache = false;
  static std::string unlabelled;
  static int64_t unlabelled_per_batch = 0;
  add_job_flags(cmd, flags, "teachformer_s");
  cmd->add_option("--teacher", teachers, "Teacher model folder (repeat for several teachers)");
  cmd->add_option("--teacher-weights", weights, "Weights of the teachers, comma-separated (default all 1)");
  cmd->add_option("--teacher-fold", teacher_fold, "Teachers' fold (default: the student's fold)");
  cmd->add_option("--teacher-checkpoint", checkpoint, "best or final")
      ->check(CLI::IsMember({"best", "final"}))
      ->capture_default_str();
  cmd->add_option("--strategy", strategy,
                  "teachformer (default), student_alone, hinton, at, multi_no_staging, or a JSON file with stages");
  cmd->add_flag("--no-cache", no_cache, "Run the teachers live on every batch instead of using the teacher cache");
  cmd->add_option("--unlabelled", unlabelled,
                  "A dataset (any layout) whose cases join training without labels: on them only the teachers' "
                  "knowledge trains the student (preprocessed with this dataset's plan)");
  cmd->add_option("--unlabelled-per-batch", unlabelled_per_batch,
                  "Unlabelled samples added to each batch after its labelled ones (default: as many as --batch-size; "
                  "the labelled samples stay those of a run without --unlabelled)")
      ->check(CLI::Range(int64_t(1), int64_t(4096)));
  set_command(cmd, [] { return run_job(flags, [](pipeline::JobOptions& job) {
    pipeline::DistillJobOptions d;
    std::vector<double> w;
    std::stringstream ss(weights);
    std::string item;
    while (std::getline(ss, item, ',')) {
      try {
        w.push_back(std::stod(item));
      } catch (const std::exception&) {
        TF_THROW(InvalidArgument, "--teacher-weights: '", item, "' is not a number");
      }
    }
    TF_CHECK(w.empty() || w.size() == teachers.size(), InvalidArgument, "--teacher-weights: ", w.size(),
             " weights for ", teachers.size(), " teachers");
    for (size_t i = 0; i < teachers.size(); ++i) {
      distill::TeacherSpec s;
      s.dir = teachers[i];
      s.fold = teacher_fold >= -1 ? teacher_fold : job.fold;
      s.checkpoint = checkpoint;
      s.weight = w.empty() ? 1.0 : w[i];
      d.teachers.push_back(s);
    }
    if (!strategy.empty()) d.strategy = strategy;
    if (no_cache) d.cache = false;
    if (!unlabelled.empty()) d.unlabelled = unlabelled;
    TF_CHECK(unlabelled_per_batch == 0 || !unlabelled.empty(), InvalidArgument,
             "distill: --unlabelled-per-batch needs --unlabelled DIR");
    if (unlabelled_per_batch > 0) job.config["trainer"]["unlabelled_per_batch"] = unlabelled_per_batch;
    const auto result = pipeline::run_distill_job(job, d);
    if (!job.group || job.group->rank() == 0) print_job_result("distill", result);
    return 0;
  }); }, graceful_stop("--resume"));
}

}  // namespace teachformer::app
