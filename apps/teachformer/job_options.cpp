#include "job_options.hpp"

#include "common.hpp"

#include <chrono>
#include <cstdio>
#include <sstream>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/device.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/log.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/core/strings.hpp"
#include "teachformer/dist/launcher.hpp"
#include "teachformer/dist/process_group.hpp"
#include "teachformer/dist/world.hpp"
#include "teachformer/train/presets.hpp"

namespace teachformer::app {

void add_job_flags(CLI::App* cmd, JobFlags& f, const std::string& default_model) {
  f.model = default_model;
  cmd->add_option("-d,--dataset", f.dataset, "Preprocessed dataset folder (a raw dataset is preprocessed first)")
      ->required();
  cmd->add_option("-m,--model", f.model, "Model key: unetr, swin_unetr, hdenseformer, teachformer_s")->capture_default_str();
  cmd->add_option("-f,--fold", f.fold, "Fold index of splits_final.json, or 'all'")->capture_default_str();
  cmd->add_option("-o,--output", f.output, "Model folder to write")->required();
  cmd->add_option("-c,--config", f.config,
                  "JSON config (file or inline) merged over the preset: {model_options, trainer, loss, "
                  "deep_supervision, distill}");
  cmd->add_option("--preset", f.preset, "tiny (tests), demo (CPU, minutes) or paper (full size, GPU)")
      ->check(CLI::IsMember(train::training_presets()))
      ->capture_default_str();
  cmd->add_option("--channels", f.channels, "Train on these channels only, by name, comma-separated (e.g. PET)");
  cmd->add_option("--patch-size", f.patch_size,
                  "Patch D,H,W (also the input size of UNETR / H-DenseFormer); default: the preset's");
  cmd->add_flag("--resume", f.resume,
                "Continue from fold_N/checkpoint_latest.safetensors (refused when a setting differs from the "
                "checkpoint's)");
  cmd->add_flag("--allow-changed-settings", f.allow_changed_settings,
                "With --resume: allow these settings to differ from the checkpoint's: epochs, val_every, "
                "checkpoint_every, workers, early stopping, case_cache_mb");
  cmd->add_option("--epochs", f.epochs, "Override the preset's epochs");
  cmd->add_option("--steps-per-epoch", f.steps_per_epoch, "Override the preset's steps per epoch");
  cmd->add_option("--seed", f.seed, "Seed for initialisation, sampling and augmentation");
  cmd->add_option("--device", f.device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  cmd->add_option("--folds", f.n_folds, "Folds when splits_final.json must be created")->capture_default_str();
  cmd->add_option("--batch-size", f.batch_size, "Samples per step and process (default: the preset's)");
  cmd->add_option("--precision", f.precision, "32, bf16 or 16 (CUDA autocast; 16 with loss scaling)")
      ->check(CLI::IsMember({"32", "bf16", "16"}));
  auto* g = "Data-parallel training";
  cmd->add_option("--nproc-per-node", f.nproc_per_node,
                  "Start N processes on this machine as the ranks of one job (threads: cores / N each). Under "
                  "torchrun or Slurm leave it at 1: RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT or SLURM_PROCID/"
                  "SLURM_NTASKS are read from the environment")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str()
      ->group(g);
  cmd->add_option("--dist-timeout", f.dist_timeout,
                  "Seconds a rank waits for the others (rendezvous and every collective) before failing")
      ->check(kPositiveNumber)
      ->capture_default_str()
      ->group(g);
  cmd->add_option("--dist-backend", f.dist_backend, "gloo (CPU), nccl (CUDA) or auto")
      ->check(CLI::IsMember({"auto", "gloo", "nccl"}))
      ->capture_default_str()
      ->group(g);
}

pipeline::JobOptions to_job(const JobFlags& f) {
  pipeline::JobOptions j;
  j.dataset = f.dataset;
  j.model = f.model;
  j.preset = f.preset;
  if (f.fold == "all") {
    j.fold = -1;
  } else {
    try {
      size_t used = 0;
      j.fold = std::stoi(f.fold, &used);
      TF_CHECK(used == f.fold.size() && j.fold >= 0, InvalidArgument, "");
    } catch (const std::exception&) {
      TF_THROW(InvalidArgument, "-f/--fold: expected a fold number or 'all', got '", f.fold, "'");
    }
  }
  j.n_folds = f.n_folds;
  j.output = f.output;
  if (!f.config.empty()) j.config = json_from_string_or_file(f.config);
  TF_CHECK(j.config.is_object(), ConfigError, "-c/--config must be a JSON object");
  std::stringstream ss(f.channels);
  std::string ch;
  while (std::getline(ss, ch, ','))
    if (!ch.empty()) j.channels.push_back(ch);
  if (!f.patch_size.empty()) {
    const auto v = parse_positive_ints(f.patch_size, ',');
    TF_CHECK(v, InvalidArgument, "--patch-size: expected D,H,W positive integers, got '", f.patch_size, "'");
    j.patch_size = *v;
    TF_CHECK(j.patch_size.size() == 3, InvalidArgument, "--patch-size: expected D,H,W, got '", f.patch_size, "'");
  }
  j.resume = f.resume;
  j.allow_changed_settings = f.allow_changed_settings;
  if (f.epochs > 0) j.epochs = f.epochs;
  if (f.steps_per_epoch > 0) j.steps_per_epoch = f.steps_per_epoch;
  if (f.seed >= 0) j.seed = uint64_t(f.seed);
  if (f.batch_size > 0) j.batch_size = f.batch_size;
  if (!f.precision.empty()) j.precision = f.precision;
  j.device = f.device;
  return j;
}

int run_job(const JobFlags& f, const std::function<int(pipeline::JobOptions&)>& body) {
  if (f.nproc_per_node > 1 && !dist::is_launched_worker()) {
    const auto& g = global_options();
    std::vector<std::string> argv = g.argv;
    argv.front() = fs::read_symlink("/proc/self/exe").string();
    dist::LaunchOptions lo;
    lo.nproc = f.nproc_per_node;
    lo.threads_per_worker = g.threads;
    return dist::launch_local_workers(argv, lo);
  }
  pipeline::JobOptions j = to_job(f);
  const dist::WorldInfo world = dist::world_from_environment();
  if (world.distributed()) {
    if (world.rank != 0) {
      set_log_level("warn");
      set_default_progress_mode(ProgressMode::Quiet);
    }
    // One GPU per local rank.
    if (j.device && (*j.device == "cuda" || *j.device == "auto")) j.device = "cuda:" + std::to_string(world.local_rank);
    dist::ProcessGroupOptions po;
    po.backend = f.dist_backend;
    po.timeout = std::chrono::milliseconds(int64_t(f.dist_timeout * 1000));
    po.device = parse_device(j.device.value_or("cpu"));
    spdlog::info("joining a {}-process job as {} ({})", world.world_size, world.describe(), world.source);
    j.group = dist::ProcessGroup::connect(world, po);
  }
  return body(j);
}

void print_job_result(const std::string& verb, const pipeline::JobResult& r) {
  std::printf("%s: %s (%lld parameters) -> %s\n", verb.c_str(), r.config.value("model", "?").c_str(),
              (long long)r.parameters, r.model_dir.c_str());
  std::printf("  %lld steps in %s (%.3f s/step); best validation Dice %.4f (epoch %lld), last %.4f\n",
              (long long)r.summary.steps_run, format_duration(r.summary.seconds).c_str(), r.summary.seconds_per_step,
              r.summary.best_dice, (long long)r.summary.best_epoch + 1, r.summary.last_dice);
  if (r.cache_bytes > 0)
    std::printf("  teacher cache: %.2f MiB on disk, built in %s\n", double(r.cache_bytes) / (1 << 20),
                format_duration(r.cache_seconds).c_str());
}

}  // namespace teachformer::app
