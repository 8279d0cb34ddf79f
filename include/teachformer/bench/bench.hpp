// The end-to-end benchmark behind `teachformer bench`: for each model its parameters and analytic GFLOPs, forward
// latency and peak RSS, a training step, the distillation step (student alone, cached teachers, live teachers),
// sliding-window prediction of a whole case, and the student's end-to-end prediction of a synthetic PET/CT case from
// a model folder. Every measurement is a task (a JSON object) run by a BenchTaskRunner; the CLI's runner re-executes
// the program for each task (a fresh process: one model's allocations never inflate another's peak RSS). Results are
// rows, one JSON object per model and input, printed as markdown, CSV or JSON (see docs/benchmarks.md).
//
// Units: seconds (suffix _s), MiB = 2^20 bytes (suffix _mb), GFLOPs = 2 x multiply-accumulates / 1e9 of one forward
// (nn/flops.hpp), GFLOP/s = GFLOPs / median forward seconds. Shapes are [B, C, D, H, W] as everywhere.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/data/plan.hpp"

namespace teachformer::bench {

/// What a benchmark run measures.
enum class BenchSection {
  Forward,   ///< parameters, GFLOPs, forward latency and peak RSS per model and input
  Train,     ///< one training step (batch 1, AdamW, the model's supervised loss) at the model's patch
  Distill,   ///< student step alone vs with DistillLoss on cached teacher knowledge vs with live teachers
  Window,    ///< sliding-window prediction of a whole random case (roi = the model's patch, Gaussian)
  EndToEnd,  ///< the student predicting a synthetic PET/CT case from a model folder: read, preprocess, window, write
  Ddp,       ///< data-parallel training step: 1 rank and 2 ranks (c10d Gloo on this machine, 1 thread each)
};
/// "forward", "train", "distill", "window", "e2e", "ddp".
std::string to_string(BenchSection section);
/// Every section in run order.
std::vector<BenchSection> all_bench_sections();
/// The sections of a run without --what: all but ddp (which starts several processes per model).
std::vector<BenchSection> default_bench_sections();
/// Parses a comma-separated list of section names ("forward,train"); InvalidArgument naming `option` and listing
/// the valid names for an unknown or empty entry.
std::vector<BenchSection> parse_bench_sections(const std::string& text, const std::string& option = "--what");

/// A model configuration to benchmark.
struct BenchModel {
  /// Display name, unique in a run (e.g. "swin_unetr_24").
  std::string name;
  /// Registry key (e.g. "swin_unetr").
  std::string key;
  /// Registry options, in_channels and out_channels included. Options that fix the input size (UNETR img_size,
  /// H-DenseFormer image_size) are set from each measurement's input by options_for_input().
  nlohmann::json options = nlohmann::json::object();
  /// Patch [D, H, W] in voxels of the training and distillation steps and the sliding-window roi: the model's
  /// paper patch (96^3; 144^3 for H-DenseFormer).
  std::vector<int64_t> patch{96, 96, 96};
};
/// {"name", "key", "options", "patch"}.
nlohmann::json to_json(const BenchModel& model);
/// Inverse of to_json (strict: unknown keys are ConfigError).
BenchModel bench_model_from_json(const nlohmann::json& j);

/// Names bench_model() knows: the registry keys plus "swin_unetr_48" (the same as "swin_unetr") and "swin_unetr_24".
std::vector<std::string> bench_model_names();
/// The models of a default run: teachformer_s, unetr, swin_unetr (48), swin_unetr_24, hdenseformer.
std::vector<std::string> default_bench_model_names();
/// The teachers of the default distillation section: unetr, swin_unetr (48), hdenseformer.
std::vector<std::string> default_bench_teacher_names();
/// The paper configuration of `name`: teachformer_s "small" preset; unetr MONAI defaults (feature 16, hidden 768,
/// mlp 3072, 12 heads, img 96); swin_unetr / swin_unetr_48 feature 48, swin_unetr_24 feature 24 (depths 2,2,2,2,
/// window 7); hdenseformer the HECKTOR configuration (n_filters 32, depth 24, image 144, patch 144). Patch 96^3
/// except H-DenseFormer. InvalidArgument listing the names (and the nearest one) for an unknown name.
BenchModel bench_model(const std::string& name, int64_t in_channels, int64_t out_channels = 2);
/// The model's options for an input of spatial size [D, H, W]: UNETR's img_size and H-DenseFormer's image_size set
/// to it; other options unchanged.
nlohmann::json options_for_input(const BenchModel& model, const std::vector<int64_t>& spatial);

/// "2x96x96x96" (C x D x H x W) or "1x2x96x96x96" (B x C x D x H x W) -> [B, C, D, H, W]; InvalidArgument naming
/// `option` for anything else.
std::vector<int64_t> parse_bench_shape(const std::string& text, const std::string& option = "--input");
/// [1, 2, 96, 96, 96] -> "1x2x96x96x96".
std::string shape_string(const std::vector<int64_t>& shape);

/// Median of `values` (mean of the two middle ones for an even count); NaN when empty.
double median(std::vector<double> values);

/// Marker that starts the one line of stdout on which a worker process prints its result JSON.
inline constexpr const char* kBenchResultMarker = "TF_BENCH_RESULT ";

/// Runs one measurement in this process and returns its result object. Task fields: "task" ("forward", "train",
/// "distill", "window" or "e2e"), "repeats" (timed runs after one warm-up, >= 1; default 3), "budget_s" (no further
/// timed run starts once the timed runs took this long; default 20), "min_s" (more timed runs, up to 50, until they
/// took this long, so the median of a fast measurement is not at the mercy of one noisy moment; default 0), "seed"
/// (default 0), plus per task:
///   forward: "model" (BenchModel JSON), "input" [B, C, D, H, W], "precision" ("fp32" default, "bf16", "int8": int8
///            is calibrated on 4 random inputs of the same shape; the result adds "agreement_vs_fp32" (share of
///            voxels whose argmax class equals float32's) and "rel_error_vs_fp32" (||y - y32|| / ||y32|| of the
///            logits), on a fifth random input; a model without the path gives {"skipped": true})
///   train:   "model", "input"
///   distill: "mode" ("student", "cached" or "live"), "model" (the student), "input", "teachers" [BenchModel JSON]
///   window:  "model", "case" [C, D, H, W], "roi" [D, H, W], "overlap"
///   e2e:     "model_dir", "dataset" (raw dataset whose first case is predicted), "output" (label file written),
///            "overlap" (default 0.5)
/// Every result holds "peak_rss_mb" (this process's VmHWM) and, where a model is built, "params" and "spec"
/// ({"fixed_input_size", "size_divisor"}). A model that rejects the input gives {"skipped": true, "error": its
/// message}; other library errors propagate. InvalidArgument names the field of a malformed task.
nlohmann::json run_bench_task(const nlohmann::json& task);

/// Entry point of a worker process: applies the task's "threads" (> 0) and "memory_limit_mb" (> 0: address-space
/// limit, so an allocation beyond it fails instead of waking the OOM killer), runs run_bench_task and prints
/// kBenchResultMarker + the result JSON on one line of stdout; an error becomes {"error": message}. Returns 0, or 2
/// when `task_json` is not a JSON object.
/// A task with "ranks" R > 1 (train only) is data-parallel: this process starts R local ranks (`self_command` +
/// the task JSON, with the environment torchrun would set; see dist/launcher.hpp) and returns the launcher's status;
/// each rank joins the c10d group, times the same number of steps, and rank 0 prints the result (with "ranks",
/// "allreduce_bytes", "buckets", "backend"); a failing rank prints its error and exits 1.
int bench_worker_main(const std::string& task_json, const std::vector<std::string>& self_command = {});

/// What a child process did.
struct ChildResult {
  /// Exit status; -1 when it ended by a signal.
  int exit_code = -1;
  /// The signal that ended it (0 if none).
  int signal = 0;
  /// True when it was killed for running longer than the timeout.
  bool timed_out = false;
  /// Everything it wrote to stdout.
  std::string stdout_text;
  /// The last 4 KiB it wrote to stderr.
  std::string stderr_tail;
  /// The child's VmHWM (MiB) as last read from /proc/PID/status while it ran (sampled every 50 ms): an outside
  /// view of the peak RSS the child reports itself (a peak in its last 50 ms can be missed).
  double hwm_mb = 0;
  /// wait4's ru_maxrss (MiB). On Linux exec keeps the larger of the old and the new high-water mark, so this is
  /// at least the parent's RSS when it started the child: an upper bound only.
  double ru_maxrss_mb = 0;
  /// Wall time from start to exit (s).
  double seconds = 0;
};
/// Runs argv[0] (a path; no shell, no PATH search) with `argv` via posix_spawn, capturing stdout and the tail of
/// stderr; sends SIGKILL after `timeout_s` seconds (0 = no limit). Throws IoError naming the program when it cannot be
/// started.
ChildResult run_child_process(const std::vector<std::string>& argv, double timeout_s = 0);
/// The JSON object on the last line of `stdout_text` that starts with kBenchResultMarker; null when there is none or
/// it does not parse.
nlohmann::json find_bench_result(const std::string& stdout_text);

/// Runs one task and returns its result.
using BenchTaskRunner = std::function<nlohmann::json(const nlohmann::json& task)>;
/// Re-executes `command` with the task JSON appended as its last argument (e.g. {"/path/teachformer", "bench",
/// "--worker"}) for every task and returns the worker's result plus "max_rss_mb" (ChildResult::hwm_mb, the parent's
/// cross-check of the worker's "peak_rss_mb"), "ru_maxrss_mb" and "process_s" (start to exit, library loading
/// included). A worker that crashes, is killed, times out (`timeout_s`, 0 = none) or prints no
/// result gives {"error": "..."} with its exit status or signal and the last stderr line.
BenchTaskRunner child_process_runner(std::vector<std::string> command, double timeout_s);
/// Runs every task in this process (tests; peak RSS then covers everything run before).
BenchTaskRunner in_process_runner();

/// Settings of a benchmark run.
struct BenchOptions {
  /// Models to measure (see bench_model()); names must be unique.
  std::vector<BenchModel> models;
  /// Forward inputs [B, C, D, H, W]; each model runs at every input it accepts, its own patch first (an input it
  /// rejects is reported as skipped). Empty: 1 x C x patch of each model.
  std::vector<std::vector<int64_t>> inputs;
  /// Sections to run. Default default_bench_sections().
  std::vector<BenchSection> sections = default_bench_sections();
  /// Name (among `models`) of the student that the distillation and end-to-end sections use. Default
  /// "teachformer_s"; those sections are skipped with a note when it is not among the models.
  std::string student = "teachformer_s";
  /// Teachers of the distillation section: the cached step uses all of them (cached knowledge only depends on the
  /// student's grids); the live step those whose patch equals the student's (a teacher with a fixed input size trained
  /// on another patch can only be distilled from its cache).
  std::vector<BenchModel> teachers;
  /// Timed runs after one warm-up (median reported), >= 1. Default 3.
  int repeats = 3;
  /// No further timed run starts once a measurement's timed runs took this many seconds (at least one runs).
  double budget_s = 20.0;
  /// Fast measurements keep running (up to 50 timed runs) until their timed runs took this many seconds. Default 0.
  double min_s = 0.0;
  /// Sliding-window case [C, D, H, W] (random values). Default 2 x 144^3.
  std::vector<int64_t> window_case{2, 144, 144, 144};
  /// Sliding-window overlap (MONAI semantics) of the window and end-to-end sections. Default 0.5.
  double overlap = 0.5;
  /// Edge (mm) of the bbox of the synthetic PET/CT case of the end-to-end section; preprocessed at 1 mm it is this
  /// many voxels per side. Default 144 (the HECKTOR size).
  double e2e_bbox_mm = 144.0;
  /// Folder for the end-to-end case and model folder; empty: a temporary folder removed afterwards.
  std::filesystem::path work_dir;
  /// Intra-op threads of every measurement (0 = all cores). Default 0.
  int threads = 0;
  /// Address-space limit of every worker in MiB (0 = none).
  double memory_limit_mb = 0;
  /// Seed of model initialisation, inputs and the synthetic case.
  uint64_t seed = 0;
  /// Precisions of the forward section ("fp32", "bf16", "int8"; models/low_precision.hpp). fp32 rows are always
  /// measured; a model without a low-precision path gets a note instead of a bf16/int8 row. Default {"fp32"}.
  std::vector<std::string> precisions{"fp32"};
  /// Size n of the n x n float32 matmul whose GFLOP/s is the machine's peak.
  int matmul_size = 2048;
  /// Runs the tasks (required; see child_process_runner).
  BenchTaskRunner runner;
  /// Called with a one-line summary after each measurement (progress); may be empty.
  std::function<void(const std::string&)> log;
};

/// Outcome of a run.
struct BenchReport {
  /// describe_machine(): CPU, cores, memory, load, LibTorch, BLAS, threads, matmul GFLOP/s.
  nlohmann::json machine;
  /// The options of the run (models, inputs, sections, repeats, ...).
  nlohmann::json settings;
  /// One object per model and input, in the order of the models: see docs/benchmarks.md for the fields. Sections
  /// that did not run leave their fields out; "notes" lists skips and errors.
  std::vector<nlohmann::json> rows;
  /// The bench's targets evaluated on the rows (see evaluate_targets): {"target", "value", "limit", "unit",
  /// "met"}; a target whose inputs were not measured is left out.
  std::vector<nlohmann::json> targets;
  /// Run-level notes (e.g. a section skipped because the student is not among the models).
  std::vector<std::string> notes;
};

/// Runs the benchmark. InvalidArgument for duplicate model names, an empty model list, repeats < 1 or a missing
/// runner. A measurement that fails becomes a note on its row; the run goes on.
BenchReport run_bench(const BenchOptions& options);

/// The machine: {"cpu", "cores", "memory_gib", "load_average" [1, 5, 15 min], "os", "libtorch", "cpu_capability",
/// "mkldnn", "parallel_backend", "blas", "blas_kernels", "blas_config", "openblas_coretype", "threads",
/// "matmul_size", "matmul_gflops", "teachformer", "date" (UTC)}.
nlohmann::json describe_machine(double matmul_gflops, int matmul_size);

/// The bench's targets on `rows`: student forward (fp32) >= 50x faster than UNETR and >= 100x faster than SwinUNETR-48
/// at the same input; student int8 forward >= 2x faster than its fp32 forward at the same input; end-to-end case
/// <= 1 s; student end-to-end peak RSS <= 1024 MiB; cached distillation step <= 1.3x the student-only step; student
/// >= 30% of `matmul_gflops`.
std::vector<nlohmann::json> evaluate_targets(const std::vector<nlohmann::json>& rows, const std::string& student,
                                             double matmul_gflops);

/// Markdown: the machine, one table per section, the targets and the notes.
std::string format_markdown(const BenchReport& report);
/// CSV: a header and one line per row, fixed columns (bench_csv_columns()); missing values are empty.
std::string format_csv(const BenchReport& report);
/// The columns of format_csv, in order.
const std::vector<std::string>& bench_csv_columns();
/// The rows as a JSON array (what `teachformer bench --format json` prints).
nlohmann::json rows_json(const BenchReport& report);
/// {"machine", "settings", "rows", "targets", "notes"}.
nlohmann::json to_json(const BenchReport& report);

/// Writes a model folder for a freshly initialised model (torch::manual_seed(seed)), laid out as `train` writes
/// one: config.json ({"kind": "untrained", "model", "options", "channels", "patch_size", "tool_version"}),
/// plan.json, dataset.json ({"name", "channel_names", "reference_channel", "labels"}) and
/// fold_0/checkpoint_best.safetensors with the weights metadata. `labels`: {"background": 0, "tumor": 1}.
void write_untrained_model_folder(const std::filesystem::path& dir, const std::string& model_key,
                                  const nlohmann::json& options, const data::PreprocessPlan& plan,
                                  const nlohmann::json& labels, const std::vector<int64_t>& patch_size,
                                  uint64_t seed = 0);

/// Files of the end-to-end case.
struct EndToEndCase {
  /// Raw HECKTOR-layout dataset with one PET/CT case.
  std::filesystem::path dataset;
  /// Untrained model folder of the student.
  std::filesystem::path model_dir;
  /// Where the predicted label map is written (.nii.gz).
  std::filesystem::path output;
};
/// Synthesises one PET/CT phantom (hecktor2021 layout, bbox `bbox_mm` mm, seed) under `work_dir`/raw and writes an
/// untrained model folder of `student` (patch = its patch) planned for it under `work_dir`/model.
EndToEndCase prepare_end_to_end(const std::filesystem::path& work_dir, const BenchModel& student, double bbox_mm,
                                uint64_t seed = 0);

}  // namespace teachformer::bench
