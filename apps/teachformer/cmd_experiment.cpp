// teachformer experiment: the main job, end to end, printing the comparison table.
#include <cstdio>

#include "common.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/pipeline/experiment.hpp"

namespace teachformer::app {

void register_experiment(CLI::App& parent) {
  auto* cmd = parent.add_subcommand(
      "experiment", "Synthesize (or take) data, train the teachers, distil the student and baselines, evaluate, "
                    "and print the comparison table");
  static pipeline::ExperimentOptions o;
  static std::string dir = "experiments/demo", data;
  static int64_t seed = 0;
  cmd->add_option("-o,--output", dir, "Experiment folder (re-running resumes it)")->capture_default_str();
  cmd->add_option("--preset", o.preset, "tiny, demo (this CPU, minutes), paper-hecktor or paper-picai (GPU)")
      ->check(CLI::IsMember(pipeline::experiment_presets()))
      ->capture_default_str();
  cmd->add_option("--kind", o.kind, "Phantoms: petct (HECKTOR-like) or mri (PI-CAI-like)")
      ->check(CLI::IsMember({"petct", "mri"}))
      ->capture_default_str();
  cmd->add_option("--data", data, "A real dataset in any supported layout instead of phantoms");
  cmd->add_option("--cases", o.cases, "Phantom training cases (default: the preset's)");
  cmd->add_option("--test-cases", o.test_cases, "Phantom held-out cases (default: the preset's)");
  cmd->add_option("--seed", seed, "Seed of the phantoms and the training runs")->capture_default_str();
  cmd->add_option("--teachers", o.teachers, "Teachers to train")->delimiter(',')->capture_default_str();
  cmd->add_option("--students", o.students,
                  "Students: teachformer, student_alone, hinton, at, single_teacher, multi_no_staging")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--teacher-epochs", o.teacher_epochs, "Epochs of each teacher (default: the preset's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--student-epochs", o.student_epochs, "Epochs of each student (default: the preset's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--steps-per-epoch", o.steps_per_epoch, "Steps per epoch of every run (default: the preset's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("-f,--fold", o.fold, "Fold to train on")->capture_default_str();
  cmd->add_option("--device", o.device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  set_command(cmd, [] {
    o.dir = dir;
    if (!data.empty()) o.data = fs::path(data);
    o.seed = uint64_t(seed);
    const auto r = pipeline::run_experiment(o);
    std::printf("%s\n(written to %s/results.md and results.csv)\n", r.markdown.c_str(), o.dir.c_str());
    return 0;
  });
}

}  // namespace teachformer::app
