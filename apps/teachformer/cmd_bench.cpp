// teachformer bench: the end-to-end benchmark (bench/bench.hpp). Every measurement runs in a fresh process: this
// binary re-executed with the hidden `bench --worker TASK_JSON`, which prints one result line.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"
#include "teachformer/models/low_precision.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/core/runtime.hpp"
#include "teachformer/bench/bench.hpp"

namespace teachformer::app {
namespace {

std::vector<std::string> split_names(const std::string& text, const std::string& option) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    TF_CHECK(!part.empty(), InvalidArgument, option, " '", text, "': empty name in the list");
    out.push_back(part);
  }
  TF_CHECK(!out.empty(), InvalidArgument, option, " is empty");
  return out;
}

double available_memory_mb() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb / 1024.0;
  return 0;
}

struct Args {
  std::string models, teachers;
  std::vector<std::string> inputs;
  std::string patch, window_case, what = "forward,train,distill,window,e2e", format = "markdown", output, work_dir;
  std::string student = "teachformer_s", precision = "fp32";
  int repeats = 0;
  double budget = -1, min_time = -1, bbox_mm = 0, memory_limit_gb = 0, timeout = 1800, overlap = 0.5;
  bool quick = false;
  std::string worker;
};

// Flags -> options; InvalidArgument for a bad value (reported as a usage error).
bench::BenchOptions to_options(const Args& a) {
  bench::BenchOptions o;
  o.sections = bench::parse_bench_sections(a.what, "--what");
  for (const auto& text : a.inputs) o.inputs.push_back(bench::parse_bench_shape(text, "--input"));
  if (o.inputs.empty()) {
    for (int64_t s : a.quick ? std::vector<int64_t>{32} : std::vector<int64_t>{96, 144})
      o.inputs.push_back({1, 2, s, s, s});
  }
  const int64_t channels = o.inputs.front()[1];
  for (const auto& in : o.inputs)
    TF_CHECK(in[1] == channels, InvalidArgument, "--input: every input must have the same number of channels (",
             channels, "), got ", bench::shape_string(in));
  std::vector<int64_t> patch;
  if (!a.patch.empty()) {
    const auto p = bench::parse_bench_shape("1x" + a.patch, "--patch");
    TF_CHECK(p[0] == 1, InvalidArgument, "--patch '", a.patch, "': expected DxHxW");
    patch = {p[2], p[3], p[4]};
  } else if (a.quick) {
    patch = {32, 32, 32};
  }
  auto make = [&](const std::string& name) {
    bench::BenchModel m = bench::bench_model(name, channels, 2);
    if (!patch.empty()) m.patch = patch;
    return m;
  };
  for (const auto& n : split_names(a.models, "--models")) o.models.push_back(make(n));
  for (const auto& n : split_names(a.teachers, "--teachers")) o.teachers.push_back(make(n));
  o.student = a.student;
  o.precisions.clear();
  for (const auto& p : split_names(a.precision, "--precision"))
    o.precisions.push_back(models::precision_name(models::parse_precision(p)));
  o.repeats = a.repeats > 0 ? a.repeats : (a.quick ? 1 : 3);
  o.budget_s = a.budget >= 0 ? a.budget : (a.quick ? 2.0 : 20.0);
  o.min_s = a.min_time >= 0 ? a.min_time : (a.quick ? 0.0 : 3.0);
  const std::string wc = !a.window_case.empty() ? a.window_case : (a.quick ? "2x48x48x48" : "2x144x144x144");
  const auto w = bench::parse_bench_shape(wc, "--case");
  TF_CHECK(w[0] == 1, InvalidArgument, "--case '", wc, "': expected CxDxHxW");
  o.window_case = {channels, w[2], w[3], w[4]};
  o.overlap = a.overlap;
  o.e2e_bbox_mm = a.bbox_mm > 0 ? a.bbox_mm : (a.quick ? 48.0 : 144.0);
  o.work_dir = a.work_dir;
  o.threads = num_threads();
  // Workers get an address-space limit so a model too big for this machine fails alone, never the OOM killer.
  o.memory_limit_mb = a.memory_limit_gb > 0 ? a.memory_limit_gb * 1024.0 : 0.8 * available_memory_mb();
  return o;
}

}  // namespace

void register_bench(CLI::App& parent) {
  auto* cmd = parent.add_subcommand(
      "bench",
      "End-to-end benchmark: per model parameters, GFLOPs, forward latency and peak RSS (at 1x2x96^3 and 144^3 where "
      "the model allows), training step, distillation step (student alone / cached teachers / live teachers), "
      "sliding window over a 2x144^3 case, the student end to end on a PET/CT case, and the bench's targets; with --what ddp "
      "the data-parallel training step of 1 and 2 local ranks. "
      "Each measurement runs in a fresh process. The default run takes several minutes; --quick takes well under one.");
  static Args a;
  const std::string models_default = [] {
    std::string s;
    for (const auto& n : bench::default_bench_model_names()) s += (s.empty() ? "" : ",") + n;
    return s;
  }();
  a.models = models_default;
  a.teachers = [] {
    std::string s;
    for (const auto& n : bench::default_bench_teacher_names()) s += (s.empty() ? "" : ",") + n;
    return s;
  }();
  std::string names;
  for (const auto& n : bench::bench_model_names()) names += (names.empty() ? "" : ", ") + n;
  cmd->add_option("-m,--models", a.models, "Comma-separated models (paper configurations): " + names)
      ->capture_default_str();
  cmd->add_option("--input", a.inputs,
                  "Forward input BxCxDxHxW or CxDxHxW (repeatable); each model runs at every input it allows "
                  "(UNETR img_size / H-DenseFormer image_size follow the input). Default 1x2x96^3 and 1x2x144^3 "
                  "(--quick: 1x2x32^3)");
  cmd->add_option("--patch", a.patch,
                  "Patch DxHxW of the training/distillation steps and sliding-window roi, for every model. Default: "
                  "each model's paper patch (96^3; 144^3 for hdenseformer; --quick: 32^3)");
  cmd->add_option("--what", a.what, "Sections: forward, train, distill, window, e2e, ddp (comma-separated; ddp: the "
                  "training step of 1 and 2 local ranks, 1 thread each)")
      ->capture_default_str();
  cmd->add_option("--precision", a.precision,
                  "Forward precisions, comma-separated: fp32, bf16, int8 (bf16/int8 rows for models with that path, "
                  "beside their fp32 row, with the agreement of their output with fp32's)")
      ->capture_default_str();
  cmd->add_option("--format", a.format, "Output on stdout: markdown, csv or json (an array, one object per model and "
                                        "input)")
      ->capture_default_str()
      ->check(CLI::IsMember({"markdown", "csv", "json"}));
  cmd->add_option("--repeats", a.repeats, "Timed runs after one warm-up (median reported). Default 3 (--quick: 1)")
      ->check(kPositiveNumber);
  cmd->add_option("--budget", a.budget,
                  "Seconds: no further timed run of a measurement starts after this (at least one runs). Default 20 "
                  "(--quick: 2)")
      ->check(kNonNegativeNumber);
  cmd->add_option("--min-time", a.min_time,
                  "Seconds: fast measurements keep running (up to 50 timed runs) until their runs took this long, so "
                  "one noisy moment cannot move the median. Default 3 (--quick: 0)")
      ->check(kNonNegativeNumber);
  cmd->add_option("--teachers", a.teachers,
                  "Teachers of the distillation section (cached: all; live: those whose patch is the student's)")
      ->capture_default_str();
  cmd->add_option("--student", a.student, "The model (among --models) of the distillation and e2e sections")
      ->capture_default_str();
  cmd->add_option("--case", a.window_case,
                  "Sliding-window case CxDxHxW (random values). Default 2x144x144x144 (--quick: 2x48x48x48)");
  cmd->add_option("--overlap", a.overlap, "Sliding-window overlap in [0, 1)")->capture_default_str();
  cmd->add_option("--e2e-bbox-mm", a.bbox_mm,
                  "Edge (mm) of the synthetic PET/CT case's bbox; at 1 mm that many voxels per side. Default 144 "
                  "(--quick: 48)")
      ->check(kPositiveNumber);
  cmd->add_flag("--quick", a.quick, "Smoke test: 32^3 inputs and patches, a 2x48^3 case, one timed run each");
  cmd->add_option("-o,--output", a.output, "Also write bench.md, bench.csv and bench.json (full report) here");
  cmd->add_option("--memory-limit-gb", a.memory_limit_gb,
                  "Address-space limit of each measurement process in GiB; 0 = 80% of the memory available at start")
      ->capture_default_str()
      ->check(kNonNegativeNumber);
  cmd->add_option("--timeout", a.timeout, "Seconds after which a measurement process is killed (0 = never)")
      ->capture_default_str()
      ->check(kNonNegativeNumber);
  cmd->add_option("--work-dir", a.work_dir, "Keep the e2e case and model folder here (default: a temporary folder)");
  cmd->add_option("--worker", a.worker, "Internal: run one measurement task (JSON) and print its result")->group("");

  set_command(cmd, [] {
    const fs::path exe = fs::read_symlink("/proc/self/exe");
    const std::vector<std::string> worker_command = {exe.string(), "--log-level", "warn", "--quiet", "bench", "--worker"};
    if (!a.worker.empty()) return bench::bench_worker_main(a.worker, worker_command);
    bench::BenchOptions o;
    try {
      o = to_options(a);
    } catch (const InvalidArgument& e) {
      std::fprintf(stderr, "usage error: %s\n", e.what());
      return static_cast<int>(kUsageError);
    }
    o.runner = bench::child_process_runner(worker_command, a.timeout);
    if (default_progress_mode() != ProgressMode::Quiet)
      o.log = [](const std::string& line) {
        std::fprintf(stderr, "%s\n", line.c_str());
        std::fflush(stderr);
      };
    const bench::BenchReport report = bench::run_bench(o);
    if (a.format == "json")
      std::printf("%s\n", bench::rows_json(report).dump(2).c_str());
    else if (a.format == "csv")
      std::printf("%s", bench::format_csv(report).c_str());
    else
      std::printf("%s", bench::format_markdown(report).c_str());
    if (!a.output.empty()) {
      const fs::path out = a.output;
      write_file_atomic(out / "bench.md", bench::format_markdown(report));
      write_file_atomic(out / "bench.csv", bench::format_csv(report));
      write_json(out / "bench.json", bench::to_json(report));
    }
    return 0;
  });
}

}  // namespace teachformer::app
