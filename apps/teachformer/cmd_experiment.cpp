// teachformer experiment: the main job, end to end, printing the comparison table.
#include <cstdio>

#include "common.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/pipeline/experiment.hpp"
#include "teachformer/pipeline/job_runner.hpp"

namespace teachformer::app {

void register_experiment(CLI::App& parent) {
  auto* cmd = parent.add_subcommand(
      "experiment", "Synthesize (or take) data, train the teachers, distil the student and the ablation ladder, "
                    "evaluate on held-out cases over one or more seeds, and print the comparison table");
  static pipeline::ExperimentOptions o;
  static std::string dir = "experiments/demo", data, distill_config, run_job;
  static std::vector<int64_t> seeds{0};
  static std::vector<std::string> custom_students;
  cmd->add_option("-o,--output", dir, "Experiment folder (re-running resumes it)")->capture_default_str();
  cmd->add_option("--preset", o.preset, "tiny, demo (this CPU, minutes), paper-hecktor or paper-picai (GPU)")
      ->check(CLI::IsMember(pipeline::experiment_presets()))
      ->capture_default_str();
  cmd->add_option("--kind", o.kind, "Phantoms: petct (HECKTOR-like) or mri (PI-CAI-like)")
      ->check(CLI::IsMember({"petct", "mri"}))
      ->capture_default_str();
  cmd->add_option("--difficulty", o.difficulty,
                  "Phantoms: normal, or hard (low-contrast tumours, PET noise, benign look-alikes near the tumours)")
      ->check(CLI::IsMember({"normal", "hard"}))
      ->capture_default_str();
  cmd->add_option("--data", data, "A real dataset in any supported layout instead of phantoms");
  cmd->add_option("--test-fraction", o.test_fraction,
                  "With --data and no labelled test split (imagesTs + labelsTs): fraction of patients held out")
      ->check(CLI::Range(0.05, 0.5))
      ->capture_default_str();
  cmd->add_option("--cases", o.cases, "Phantom training cases (default: the preset's)");
  cmd->add_option("--test-cases", o.test_cases, "Phantom held-out cases (default: the preset's)");
  cmd->add_option("--unlabelled-cases", o.unlabelled_cases,
                  "Extra phantom cases used without labels by the teachformer_unlabelled student")
      ->check(kNonNegativeNumber);
  cmd->add_option("--seeds,--seed", seeds, "Seeds; the training is repeated per seed (e.g. 0,1,2)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_flag("--vary-data", o.vary_data, "Draw the phantoms again for every seed (default: the first seed's)");
  cmd->add_option("--teachers", o.teachers, "Teachers to train")->delimiter(',')->capture_default_str();
  cmd->add_option("--students", o.students,
                  "Students (default: the preset's ladder): student_alone, hinton, hinton_coarse, hinton_fine, "
                  "multi_no_staging, teachformer, at, single_teacher, teachformer_t, teachformer_unlabelled, "
                  "teachformer_kl")
      ->delimiter(',');
  cmd->add_option("--student", custom_students,
                  "A student of your own, NAME=JSON (repeatable): a distill config inline or in a file, e.g. "
                  "kd4='{\"strategy\": \"hinton\", \"temperature\": 4}'; keys of its own: " +
                      pipeline::custom_student_keys() +
                      ". Trained on the same batches and compared with student_alone like the ladder's");
  cmd->add_option("--teacher-epochs", o.teacher_epochs,
                  "Epoch budget of each teacher; early stopping on validation Dice ends sooner (default: the preset's)")
      ->check(kPositiveNumber);
  cmd->add_option("--student-epochs", o.student_epochs, "Epochs of each student (default: the preset's)")
      ->check(kPositiveNumber);
  cmd->add_option("--steps-per-epoch", o.steps_per_epoch, "Steps per epoch of every run (default: the preset's)")
      ->check(kPositiveNumber);
  cmd->add_option("--teacher-policy", o.teacher_policy,
                  "Teachers not better than the lone student on validation: drop or keep")
      ->check(CLI::IsMember({"drop", "keep"}))
      ->capture_default_str();
  cmd->add_option("--teacher-val-tau", o.teacher_val_tau,
                  "Teachers weighted by softmax(validation Dice / tau) in every distillation term; 0: equal weights")
      ->check(kNonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("-c,--distill-config", distill_config,
                  "JSON (file or inline) merged into every student's distill config, e.g. {\"temperature\": 2}");
  cmd->add_option("--variant-temperature", o.variant_temperature, "Temperature of the teachformer_t student")
      ->check(kPositiveNumber)
      ->capture_default_str();
  cmd->add_option("-f,--fold", o.fold, "Fold to train on")->capture_default_str();
  cmd->add_option("--device", o.device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  cmd->add_option("--jobs", o.jobs,
                  "Independent trainings at once, as worker processes with cores/N threads each (e.g. one per GPU)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_flag("--force", o.force, "Redo the stages whose settings changed (and everything after them)");
  cmd->add_option("--run-job", run_job, "(internal) run one training job file as an --jobs worker")->group("");
  set_command(cmd, [] {
    if (!run_job.empty()) return pipeline::job_worker_main(run_job);
    o.dir = dir;
    if (!data.empty()) o.data = fs::path(data);
    o.seeds.clear();
    for (auto s : seeds) {
      TF_CHECK(s >= 0, InvalidArgument, "--seeds: seeds must be >= 0, got ", s);
      o.seeds.push_back(uint64_t(s));
    }
    o.custom_students.clear();
    for (const auto& spec : custom_students) o.custom_students.push_back(pipeline::custom_student_variant(spec));
    if (!distill_config.empty()) o.distill_config = json_from_string_or_file(distill_config);
    TF_CHECK(o.distill_config.is_object(), ConfigError, "-c/--distill-config must be a JSON object");
    if (o.jobs > 1) {
      const auto& g = global_options();
      o.worker_command = {fs::read_symlink("/proc/self/exe").string(), "--log-level", g.log_level, "-q", "experiment",
                          "--run-job"};
    }
    const auto r = pipeline::run_experiment(o);
    std::printf("%s\n(written to %s/results.md, results.csv and results.json)\n", r.markdown.c_str(), o.dir.c_str());
    if (r.report) std::printf("report: %s\n", r.report->c_str());
    return 0;
  }, graceful_stop());
}

}  // namespace teachformer::app
