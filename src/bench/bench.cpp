#include "teachformer/bench/bench.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "teachformer/core/error.hpp"
#include "teachformer/core/strings.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/runtime.hpp"
#include "teachformer/data/dataset.hpp"
#include "teachformer/data/synth.hpp"
#include "teachformer/dist/launcher.hpp"
#include "teachformer/models/low_precision.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/models/weights.hpp"
#include "teachformer/version.hpp"
#include "bench/detail/tasks.hpp"

extern char** environ;

namespace teachformer::bench {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }



}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Sections, models, shapes

std::string to_string(BenchSection section) {
  switch (section) {
    case BenchSection::Forward: return "forward";
    case BenchSection::Train: return "train";
    case BenchSection::Distill: return "distill";
    case BenchSection::Window: return "window";
    case BenchSection::EndToEnd: return "e2e";
    case BenchSection::Ddp: return "ddp";
  }
  TF_THROW(InternalError, "unknown bench section");
}

std::vector<BenchSection> all_bench_sections() {
  return {BenchSection::Forward, BenchSection::Train, BenchSection::Distill, BenchSection::Window,
          BenchSection::EndToEnd, BenchSection::Ddp};
}

std::vector<BenchSection> default_bench_sections() {
  return {BenchSection::Forward, BenchSection::Train, BenchSection::Distill, BenchSection::Window,
          BenchSection::EndToEnd};
}

std::vector<BenchSection> parse_bench_sections(const std::string& text, const std::string& option) {
  std::vector<std::string> valid;
  for (auto s : all_bench_sections()) valid.push_back(to_string(s));
  std::set<BenchSection> chosen;
  for (const auto& part : split_trimmed(text, ',')) {
    bool found = false;
    for (auto s : all_bench_sections())
      if (to_string(s) == part) chosen.insert(s), found = true;
    TF_CHECK(found, InvalidArgument, option, " '", text, "': unknown section '", part, "'; sections: ", valid);
  }
  TF_CHECK(!chosen.empty(), InvalidArgument, option, " is empty; sections: ", valid);
  std::vector<BenchSection> out;
  for (auto s : all_bench_sections())
    if (chosen.count(s)) out.push_back(s);
  return out;
}

Json to_json(const BenchModel& model) {
  return {{"name", model.name}, {"key", model.key}, {"options", model.options}, {"patch", model.patch}};
}

BenchModel bench_model_from_json(const Json& j) {
  BenchModel m;
  JsonReader r(j, "bench model");
  r.require("name", m.name).require("key", m.key).get("options", m.options).get("patch", m.patch);
  r.finish();
  models::require_model_key(m.key);
  TF_CHECK(m.patch.size() == 3, ConfigError, "bench model '", m.name, "': patch must be [D, H, W], got ", m.patch);
  TF_CHECK(m.options.is_object(), ConfigError, "bench model '", m.name, "': options must be an object");
  return m;
}

std::vector<std::string> bench_model_names() {
  auto names = models::model_keys();
  names.push_back("swin_unetr_48");
  names.push_back("swin_unetr_24");
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> default_bench_model_names() {
  return {"teachformer_s", "unetr", "swin_unetr", "swin_unetr_24", "hdenseformer"};
}

std::vector<std::string> default_bench_teacher_names() { return {"unetr", "swin_unetr", "hdenseformer"}; }

BenchModel bench_model(const std::string& name, int64_t in_channels, int64_t out_channels) {
  BenchModel m;
  m.name = name;
  m.key = name;
  if (name == "teachformer_s") {
    m.options = {{"preset", "small"}, {"in_channels", in_channels}, {"out_channels", out_channels}};
  } else if (name == "unetr") {
    m.options = {{"in_channels", in_channels}, {"out_channels", out_channels}, {"img_size", 96}};
  } else if (name == "swin_unetr" || name == "swin_unetr_48" || name == "swin_unetr_24") {
    m.key = "swin_unetr";
    m.options = {{"in_channels", in_channels}, {"out_channels", out_channels},
                 {"feature_size", name == "swin_unetr_24" ? 24 : 48}};
  } else if (name == "hdenseformer") {
    m.options = {{"in_channels", in_channels}, {"n_cls", out_channels}, {"n_filters", 32},
                 {"image_size", {144, 144, 144}}, {"transformer_depth", 24}};
    m.patch = {144, 144, 144};
  } else {
    const auto names = bench_model_names();
    TF_THROW(InvalidArgument, "unknown bench model '", name, "'; valid: ", names, "; did you mean '",
             nearest_name(name, names), "'?");
  }
  return m;
}

Json options_for_input(const BenchModel& model, const std::vector<int64_t>& spatial) {
  TF_CHECK(spatial.size() == 3, InvalidArgument, "bench model '", model.name, "': spatial size must be [D, H, W], got ",
           spatial);
  Json o = model.options;
  if (model.key == "unetr") o["img_size"] = spatial;
  if (model.key == "hdenseformer") o["image_size"] = spatial;
  return o;
}

std::vector<int64_t> parse_bench_shape(const std::string& text, const std::string& option) {
  const auto parsed = parse_positive_ints(text, 'x');
  TF_CHECK(parsed, InvalidArgument, option, " '", text,
           "': expected positive integers joined by 'x' (CxDxHxW or BxCxDxHxW)");
  std::vector<int64_t> shape = *parsed;
  TF_CHECK(shape.size() == 4 || shape.size() == 5, InvalidArgument, option, " '", text,
           "': expected CxDxHxW or BxCxDxHxW, got ", shape.size(), " numbers");
  if (shape.size() == 4) shape.insert(shape.begin(), 1);
  return shape;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "x" : "") + std::to_string(shape[i]);
  return out;
}

double median(std::vector<double> values) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// ---------------------------------------------------------------------------------------------------------------
// Tasks and worker processes

Json run_bench_task(const Json& task) {
  TF_CHECK(task.is_object() && task.contains("task") && task["task"].is_string(), InvalidArgument,
           "bench task: expected an object with a string field 'task', got ", task.dump());
  const std::string kind = task["task"].get<std::string>();
  Json out;
  if (kind == "forward") out = detail::bench_forward(task);
  else if (kind == "train") out = detail::bench_train_step(task);
  else if (kind == "distill") out = detail::bench_distill_step(task);
  else if (kind == "window") out = detail::bench_window(task);
  else if (kind == "e2e") out = detail::bench_end_to_end(task);
  else
    TF_THROW(InvalidArgument, "bench task: unknown task '", kind, "'; tasks: forward, train, distill, window, e2e");
  out["task"] = kind;
  if (!out.contains("peak_rss_mb")) out["peak_rss_mb"] = peak_rss_mib();
  return out;
}

namespace {

// One line: LibTorch errors carry a C++ backtrace after the first line.
std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

int bench_worker_main(const std::string& task_json, const std::vector<std::string>& self_command) {
  Json task;
  try {
    task = Json::parse(task_json);
  } catch (const nlohmann::json::exception& e) {
    std::fprintf(stderr, "error: bench worker: the task is not JSON: %s\n", e.what());
    return 2;
  }
  if (!task.is_object()) {
    std::fprintf(stderr, "error: bench worker: the task must be a JSON object\n");
    return 2;
  }
  // A data-parallel task: this process starts the ranks (this program again, with the same task) and waits for
  // them; rank 0 prints the result.
  const int ranks = task.value("ranks", 1);
  if (ranks > 1 && !dist::is_launched_worker()) {
    if (self_command.empty()) {
      std::printf("%s%s\n", kBenchResultMarker, Json{{"error", "a task of several ranks needs the worker command"}}.dump().c_str());
      return 0;
    }
    std::vector<std::string> argv = self_command;
    argv.push_back(task_json);
    dist::LaunchOptions lo;
    lo.nproc = ranks;
    lo.threads_per_worker = std::max(1, task.value("threads", 0));
    return dist::launch_local_workers(argv, lo);
  }
  const bool rank_of_many = ranks > 1;
  Json result;
  try {
    const int threads = task.value("threads", 0);
    if (threads > 0) set_threads(threads);
    const double limit_mb = task.value("memory_limit_mb", 0.0);
    if (limit_mb > 0) {
      const rlim_t bytes = rlim_t(limit_mb * 1024.0 * 1024.0);
      const struct rlimit lim{bytes, bytes};
      ::setrlimit(RLIMIT_AS, &lim);
    }
    result = run_bench_task(task);
  } catch (const std::bad_alloc&) {
    result = {{"error", "out of memory (worker memory limit " + std::to_string(int64_t(task.value("memory_limit_mb", 0.0))) +
                            " MiB)"}};
  } catch (const c10::Error& e) {
    const std::string msg = first_line(e.what_without_backtrace());
    const bool oom = msg.find("can't allocate memory") != std::string::npos;
    result = {{"error", oom ? "out of memory: " + msg : msg}};
  } catch (const std::exception& e) {
    result = {{"error", first_line(e.what())}};
  }
  if (!result.contains("peak_rss_mb")) result["peak_rss_mb"] = peak_rss_mib();
  const bool failed = result.contains("error") && !result.value("skipped", false);
  // Of several ranks, rank 0 speaks for all; a failing rank exits non-zero so that the launcher stops the others.
  if (!rank_of_many || failed || result.value("rank", 0) == 0) {
    std::printf("%s%s\n", kBenchResultMarker, result.dump().c_str());
    std::fflush(stdout);
  }
  return rank_of_many && failed ? 1 : 0;
}

ChildResult run_child_process(const std::vector<std::string>& argv, double timeout_s) {
  TF_CHECK(!argv.empty(), InvalidArgument, "run_child_process: empty command");
  int out_pipe[2], err_pipe[2];
  TF_CHECK(::pipe2(out_pipe, O_CLOEXEC) == 0 && ::pipe2(err_pipe, O_CLOEXEC) == 0, IoError,
           "cannot create pipes for '", argv[0], "': ", std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const auto t0 = Clock::now();
  pid_t pid = 0;
  // posix_spawn = fork + exec in one call: no code of this (multi-threaded, OpenMP) process runs in the child.
  const int rc = ::posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    TF_THROW(IoError, "cannot start '", argv[0], "': ", std::strerror(rc));
  }
  ChildResult r;
  std::string err;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  const std::string status_path = "/proc/" + std::to_string(pid) + "/status";
  auto sample_hwm = [&] {
    // VmHWM is per address space: unlike ru_maxrss it does not start from the parent's size.
    std::ifstream in(status_path);
    for (std::string line; std::getline(in, line);)
      if (line.compare(0, 6, "VmHWM:") == 0) r.hwm_mb = std::max(r.hwm_mb, std::atof(line.c_str() + 6) / 1024.0);
  };
  while (open_fds > 0) {
    int wait_ms = 50;  // wake up to sample the child's VmHWM
    if (timeout_s > 0 && since(t0) >= timeout_s) {
      if (!r.timed_out) ::kill(pid, SIGKILL);
      r.timed_out = true;
    }
    const int n = ::poll(fds, 2, wait_ms);
    if (n < 0 && errno == EINTR) continue;
    sample_hwm();
    if (n <= 0) {
      // Killed on timeout: its pipes may stay open in grandchildren; stop waiting for them after a second.
      if (r.timed_out && since(t0) > timeout_s + 1.0) break;
      continue;
    }
    for (auto& f : fds) {
      if (f.fd < 0 || !(f.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t got = ::read(f.fd, buf, sizeof buf);
      if (got > 0) {
        (f.fd == out_pipe[0] ? r.stdout_text : err).append(buf, size_t(got));
        if (err.size() > 65536) err.erase(0, err.size() - 4096);
      } else if (got == 0 || errno != EINTR) {
        ::close(f.fd);
        f.fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  struct rusage usage {};
  while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  r.seconds = since(t0);
  r.ru_maxrss_mb = double(usage.ru_maxrss) / 1024.0;  // KiB on Linux
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.stderr_tail = err.size() > 4096 ? err.substr(err.size() - 4096) : err;
  return r;
}

Json find_bench_result(const std::string& stdout_text) {
  const std::string marker = kBenchResultMarker;
  size_t pos = std::string::npos, from = 0;
  while (true) {
    const size_t p = stdout_text.find(marker, from);
    if (p == std::string::npos) break;
    if (p == 0 || stdout_text[p - 1] == '\n') pos = p;
    from = p + 1;
  }
  if (pos == std::string::npos) return nullptr;
  const size_t start = pos + marker.size();
  const size_t end = stdout_text.find('\n', start);
  try {
    Json j = Json::parse(stdout_text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    return j.is_object() ? j : Json(nullptr);
  } catch (const nlohmann::json::exception&) {
    return nullptr;
  }
}

BenchTaskRunner child_process_runner(std::vector<std::string> command, double timeout_s) {
  TF_CHECK(!command.empty(), InvalidArgument, "child_process_runner: empty command");
  return [command = std::move(command), timeout_s](const Json& task) {
    std::vector<std::string> argv = command;
    argv.push_back(task.dump());
    const ChildResult c = run_child_process(argv, timeout_s);
    Json result = find_bench_result(c.stdout_text);
    if (result.is_null()) {
      // No result line: say how the worker ended and what it said last.
      std::string last;
      std::stringstream ss(c.stderr_tail);
      for (std::string line; std::getline(ss, line);)
        if (!line.empty()) last = line;
      std::string how;
      if (c.timed_out) how = "timed out after " + std::to_string(int(timeout_s)) + " s";
      else if (c.signal == SIGKILL) how = "killed (signal 9; out of memory?)";
      else if (c.signal) how = "killed by signal " + std::to_string(c.signal) + " (" + strsignal(c.signal) + ")";
      else how = "exited with status " + std::to_string(c.exit_code) + " without a result";
      result = {{"error", "worker " + how + (last.empty() ? "" : ": " + last)}};
    }
    result["max_rss_mb"] = c.hwm_mb;
    result["ru_maxrss_mb"] = c.ru_maxrss_mb;
    result["process_s"] = c.seconds;
    return result;
  };
}

BenchTaskRunner in_process_runner() {
  return [](const Json& task) {
    try {
      return run_bench_task(task);
    } catch (const Error& e) {
      return Json{{"error", first_line(e.what())}};
    }
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Untrained model folders and the end-to-end case

void write_untrained_model_folder(const fs::path& dir, const std::string& model_key, const Json& options,
                                  const data::PreprocessPlan& plan, const Json& labels,
                                  const std::vector<int64_t>& patch_size, uint64_t seed) {
  TF_CHECK(patch_size.size() == 3, InvalidArgument, "untrained model folder '", dir.string(),
           "': patch_size must be [D, H, W], got ", patch_size);
  TF_CHECK(labels.is_object() && labels.size() >= 2, InvalidArgument, "untrained model folder '", dir.string(),
           "': labels must map at least two class names to values, got ", labels.dump());
  plan.validate("untrained model folder '" + dir.string() + "'");
  torch::manual_seed(seed);
  const auto model = models::create_model(model_key, options);
  const auto& spec = model->spec();
  const auto channels = plan.channel_names();
  TF_CHECK(int64_t(channels.size()) == spec.in_channels, InvalidArgument, "untrained model folder '", dir.string(),
           "': the plan has ", channels.size(), " channels ", channels, " but model '", model_key, "' reads ",
           spec.in_channels);
  TF_CHECK(int64_t(labels.size()) == spec.out_channels, InvalidArgument, "untrained model folder '", dir.string(),
           "': ", labels.size(), " label classes but model '", model_key, "' has ", spec.out_channels, " outputs");
  fs::create_directories(dir);
  write_json(dir / "config.json", {{"kind", "untrained"},
                                   {"model", model_key},
                                   {"options", spec.options},
                                   {"channels", channels},
                                   {"patch_size", patch_size},
                                   {"seed", seed},
                                   {"tool_version", kVersion}});
  write_json(dir / "plan.json", plan.to_json());
  write_json(dir / "dataset.json", {{"name", "untrained"},
                                    {"channel_names", channels},
                                    {"reference_channel", plan.reference_channel},
                                    {"labels", labels}});
  models::WeightsMetadata meta;
  meta.channel_names = channels;
  meta.normalization = plan.to_json();
  meta.patch_size = patch_size;
  meta.labels = labels;
  meta.extra["training"] = {{"kind", "untrained"}, {"seed", seed}};
  models::save_weights(dir / "fold_0" / "checkpoint_best.safetensors", *model, meta);
}

EndToEndCase prepare_end_to_end(const fs::path& work_dir, const BenchModel& student, double bbox_mm, uint64_t seed) {
  EndToEndCase e;
  e.dataset = work_dir / "raw";
  e.model_dir = work_dir / "model";
  e.output = work_dir / "prediction" / "case_label.nii.gz";
  data::SynthOptions so;
  so.kind = data::PhantomKind::PetCt;
  so.layout = data::DatasetFormat::Hecktor2021;
  so.cases = 1;
  so.seed = seed;
  so.bbox_mm = bbox_mm;
  data::synthesize(e.dataset, so);
  const data::Dataset ds = data::open_dataset(e.dataset);
  const data::PreprocessPlan plan = data::make_plan(ds, data::PlanOptions{});
  Json labels = Json::object();
  for (const auto& l : ds.labels) labels[l.name] = l.value;
  write_untrained_model_folder(e.model_dir, student.key, options_for_input(student, student.patch), plan, labels,
                               student.patch, seed);
  fs::create_directories(e.output.parent_path());
  return e;
}

// ---------------------------------------------------------------------------------------------------------------
// The run

namespace {

// Reference numbers (MONAI 1.5 / the H-DenseFormer reference code on torch 1.13, 2 threads, batch 1,
// median of 3 after a warm-up): only attached to rows of the exact paper configuration with 2 channels and 2 classes.
struct Reference {
  double forward_s = 0, forward_peak_mb = 0, train_s = 0, window_s = 0, window_peak_mb = 0;
  int64_t forward_size = 96;
};
const std::map<std::string, Reference>& references() {
  static const std::map<std::string, Reference> refs = {
      {"unetr", {2.76, 0, 9.19, 20.4, 0, 96}},
      {"swin_unetr", {12.77, 0, 43.63, 100.2, 2.2 * 1024, 96}},
      {"swin_unetr_24", {7.17, 0, 19.69, 64.3, 0, 96}},
      {"hdenseformer", {20.4, 3.3 * 1024, 0, 0, 0, 144}},
  };
  return refs;
}

std::string canonical_name(const std::string& name) { return name == "swin_unetr_48" ? "swin_unetr" : name; }

bool is_paper_config(const BenchModel& m) {
  const auto names = bench_model_names();
  if (std::find(names.begin(), names.end(), m.name) == names.end()) return false;
  const BenchModel paper = bench_model(m.name, 2, 2);
  return paper.key == m.key && paper.options == m.options && paper.patch == m.patch;
}

std::vector<int64_t> spatial(const std::vector<int64_t>& shape) {
  return std::vector<int64_t>(shape.end() - 3, shape.end());
}

int64_t in_channels_of(const BenchModel& m) { return m.options.value("in_channels", int64_t(1)); }

// Long as a whole but left in one piece: one short method per bench section, all sharing the rows and the options.
class Runner {
 public:
  explicit Runner(const BenchOptions& o) : o_(o) {}

  BenchReport run() {
    BenchReport report;
    const double matmul = measure_matmul_gflops(o_.matmul_size, 3);
    matmul_ = matmul;
    report.machine = describe_machine(matmul, o_.matmul_size);
    report.settings = settings();
    for (const auto& m : o_.models) specs_[m.name] = Json();
    const auto has = [&](BenchSection s) {
      return std::find(o_.sections.begin(), o_.sections.end(), s) != o_.sections.end();
    };
    if (has(BenchSection::Forward))
      for (const auto& m : o_.models) forward(m);
    if (has(BenchSection::Train))
      for (const auto& m : o_.models) train(m);
    const BenchModel* student = nullptr;
    for (const auto& m : o_.models)
      if (m.name == o_.student) student = &m;
    if ((has(BenchSection::Distill) || has(BenchSection::EndToEnd)) && !student)
      notes_.push_back("distill/e2e skipped: the student '" + o_.student + "' is not among the models");
    if (has(BenchSection::Distill) && student) distill(*student);
    if (has(BenchSection::Window))
      for (const auto& m : o_.models) window(m);
    if (has(BenchSection::EndToEnd) && student) end_to_end(*student);
    if (has(BenchSection::Ddp))
      for (const auto& m : o_.models) data_parallel(m);
    attach_references();
    std::stable_sort(rows_.begin(), rows_.end(),
                     [&](const auto& a, const auto& b) { return model_index(a.first) < model_index(b.first); });
    for (auto& r : rows_) report.rows.push_back(r.second);
    report.targets = evaluate_targets(report.rows, o_.student, matmul);
    report.notes = notes_;
    return report;
  }

 private:
  Json settings() const {
    Json models = Json::array(), teachers = Json::array(), inputs = Json::array(), sections = Json::array();
    for (const auto& m : o_.models) models.push_back(to_json(m));
    for (const auto& m : o_.teachers) teachers.push_back(to_json(m));
    for (const auto& i : o_.inputs) inputs.push_back(shape_string(i));
    for (auto s : o_.sections) sections.push_back(to_string(s));
    return {{"models", models},       {"teachers", teachers},          {"inputs", inputs},
            {"sections", sections},   {"student", o_.student},         {"repeats", o_.repeats},
            {"budget_s", o_.budget_s}, {"min_s", o_.min_s}, {"window_case", shape_string(o_.window_case)},
            {"overlap", o_.overlap},  {"e2e_bbox_mm", o_.e2e_bbox_mm}, {"threads", o_.threads},
            {"memory_limit_mb", o_.memory_limit_mb}, {"seed", o_.seed}, {"precisions", precisions()}};
  }

  Json task(const std::string& kind) const {
    return {{"task", kind},
            {"repeats", o_.repeats},
            {"budget_s", o_.budget_s},
            {"min_s", o_.min_s},
            {"seed", o_.seed},
            {"threads", o_.threads},
            {"memory_limit_mb", o_.memory_limit_mb}};
  }

  // The row of a model and input, created on first use (rows are put in model order at the end).
  Json& row(const BenchModel& m, const std::vector<int64_t>& input, const std::string& precision = "fp32") {
    const std::string in = shape_string(input);
    for (auto& r : rows_)
      if (r.first == m.name && r.second["input"] == in && r.second["precision"] == precision) return r.second;
    rows_.push_back({m.name,
                     {{"model", m.name}, {"key", m.key}, {"input", in}, {"precision", precision},
                      {"notes", Json::array()}}});
    return rows_.back().second;
  }

  size_t model_index(const std::string& name) const {
    for (size_t i = 0; i < o_.models.size(); ++i)
      if (o_.models[i].name == name) return i;
    return o_.models.size();
  }

  std::vector<int64_t> patch_input(const BenchModel& m) const {
    return {1, in_channels_of(m), m.patch[0], m.patch[1], m.patch[2]};
  }

  // False (with the reason) when a model's known size rule rejects `space`; unknown rules accept.
  bool accepts(const BenchModel& m, const std::vector<int64_t>& space, std::string& why) const {
    const Json& spec = specs_.at(m.name);
    if (spec.is_null() || !spec.contains("size_divisor")) return true;
    const auto div = spec["size_divisor"].get<std::vector<int64_t>>();
    for (size_t d = 0; d < 3 && d < div.size(); ++d)
      if (div[d] > 0 && space[d] % div[d] != 0) {
        why = m.name + " needs every spatial size divisible by " + std::to_string(div[d]) + ", got " +
              shape_string(space);
        return false;
      }
    return true;
  }

  Json run_task(const Json& task, const BenchModel* m, const std::string& what) {
    const auto t0 = Clock::now();
    Json r = o_.runner(task);
    if (m && r.contains("spec") && specs_[m->name].is_null()) specs_[m->name] = r["spec"];
    if (o_.log) {
      std::string line = "bench " + what + ": ";
      if (r.contains("error")) line += (r.value("skipped", false) ? "skipped: " : "error: ") + r["error"].get<std::string>();
      else if (r.contains("seconds")) line += format_seconds(r["seconds"].get<double>()) + " (median of " +
                                              std::to_string(r["runs"].size()) + ")";
      line += " [" + format_seconds(since(t0)) + " total]";
      o_.log(line);
    }
    return r;
  }

  static std::string format_seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, s < 10 ? "%.3f s" : "%.1f s", s);
    return buf;
  }

  // Records an error or a skip; returns true when the result holds measurements.
  static bool ok(Json& row, const Json& r, const std::string& section) {
    if (!r.contains("error")) return true;
    row["notes"].push_back(section + (r.value("skipped", false) ? " skipped: " : " failed: ") +
                           r["error"].get<std::string>());
    return false;
  }

  static void copy_common(Json& row, const Json& r) {
    for (const char* k : {"params", "options"})
      if (r.contains(k) && !row.contains(k)) row[k] = r[k];
  }

  void forward(const BenchModel& m) {
    std::vector<std::vector<int64_t>> inputs = o_.inputs;
    if (inputs.empty()) inputs.push_back(patch_input(m));
    // The model's own patch first: its result tells the size rules that decide the other inputs.
    std::stable_sort(inputs.begin(), inputs.end(), [&](const auto& a, const auto& b) {
      return (spatial(a) == m.patch) > (spatial(b) == m.patch);
    });
    for (const auto& in : inputs) {
      Json& rw = row(m, in);
      std::string why;
      if (!accepts(m, spatial(in), why)) {
        rw["error"] = why;
        rw["notes"].push_back("forward skipped: " + why);
        if (o_.log) o_.log("bench forward " + m.name + " " + shape_string(in) + ": skipped: " + why);
        continue;
      }
      for (const std::string& precision : precisions()) forward_at(m, in, precision);
    }
  }

  // fp32 first; each other precision once.
  std::vector<std::string> precisions() const {
    std::vector<std::string> out{"fp32"};
    for (const auto& p : o_.precisions) {
      const std::string name = models::precision_name(models::parse_precision(p));
      if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    }
    return out;
  }

  void forward_at(const BenchModel& m, const std::vector<int64_t>& in, const std::string& precision) {
    const bool low = precision != "fp32";
    Json t = task("forward");
    t["model"] = to_json(m);
    t["input"] = in;
    t["precision"] = precision;
    const Json r = run_task(t, &m, "forward " + m.name + " " + shape_string(in) + (low ? " " + precision : ""));
    if (low && r.value("skipped", false)) {
      // No such path for this model: it is measured at fp32 only.
      row(m, in)["notes"].push_back(precision + " skipped: " + r.value("error", std::string()));
      return;
    }
    Json& row2 = row(m, in, precision);
    if (!ok(row2, r, "forward")) {
      row2["error"] = r["error"];
      return;
    }
    copy_common(row2, r);
    row2["gflops"] = r["gflops"];
    row2["forward_s"] = r["seconds"];
    row2["forward_runs"] = r["runs"];
    row2["forward_cpu_s"] = r["cpu_s"];
    row2["peak_rss_mb"] = r["peak_rss_mb"];
    for (const char* k : {"max_rss_mb", "agreement_vs_fp32", "rel_error_vs_fp32"})
      if (r.contains(k)) row2[k] = r[k];
    const double s = r["seconds"].get<double>();
    if (s > 0) {
      row2["gflops_per_s"] = r["gflops"].get<double>() / s;
      if (matmul_ > 0) row2["matmul_fraction"] = r["gflops"].get<double>() / s / matmul_;
    }
  }

  void train(const BenchModel& m) {
    const auto in = patch_input(m);
    row(m, in);
    std::string why;
    if (!accepts(m, m.patch, why)) {
      row(m, in)["notes"].push_back("train skipped: " + why);
      return;
    }
    Json t = task("train");
    t["model"] = to_json(m);
    t["input"] = in;
    const Json r = run_task(t, &m, "train step " + m.name + " " + shape_string(in));
    Json& rw = row(m, in);
    if (!ok(rw, r, "train")) return;
    copy_common(rw, r);
    rw["train_step_s"] = r["seconds"];
    rw["train_runs"] = r["runs"];
    rw["train_cpu_s"] = r["cpu_s"];
    rw["train_peak_rss_mb"] = r["peak_rss_mb"];
  }

  void distill(const BenchModel& student) {
    const auto in = patch_input(student);
    row(student, in);
    std::vector<BenchModel> live;
    for (const auto& t : o_.teachers) {
      if (t.patch == student.patch) live.push_back(t);
      else
        row(student, in)["notes"].push_back("distill live: teacher " + t.name + " (patch " + shape_string(t.patch) +
                                            ") only runs from its cache at the student's patch " +
                                            shape_string(student.patch));
    }
    std::map<std::string, double> seconds;
    for (const std::string mode : {"student", "cached", "live"}) {
      const auto& teachers = mode == "live" ? live : o_.teachers;
      if (mode != "student" && teachers.empty()) {
        row(student, in)["notes"].push_back("distill " + mode + " skipped: no teacher");
        continue;
      }
      Json t = task("distill");
      t["mode"] = mode;
      t["model"] = to_json(student);
      t["input"] = in;
      t["teachers"] = Json::array();
      if (mode != "student")
        for (const auto& tm : teachers) t["teachers"].push_back(to_json(tm));
      const Json r = run_task(t, &student, "distill step (" + mode + ") " + student.name + " " + shape_string(in));
      Json& rw = row(student, in);
      if (!ok(rw, r, "distill " + mode)) continue;
      copy_common(rw, r);
      rw["distill_" + mode + "_s"] = r["seconds"];
      rw["distill_" + mode + "_runs"] = r["runs"];
      rw["distill_" + mode + "_cpu_s"] = r["cpu_s"];
      rw["distill_" + mode + "_peak_rss_mb"] = r["peak_rss_mb"];
      if (mode != "student") rw["distill_" + mode + "_teachers"] = r["teachers"];
      seconds[mode] = r["seconds"].get<double>();
    }
    Json& rw = row(student, in);
    for (const std::string mode : {"cached", "live"})
      if (seconds.count(mode) && seconds.count("student") && seconds["student"] > 0)
        rw["distill_" + mode + "_ratio"] = seconds[mode] / seconds["student"];
  }

  // The training step of 1 rank and of 2 ranks (each rank 1 thread, batch 1, the same model and loss as the train
  // section): scaling efficiency = samples/s of 2 ranks / (2 x samples/s of 1 rank) = 1-rank step / 2-rank step.
  void data_parallel(const BenchModel& m) {
    const auto in = patch_input(m);
    row(m, in);
    std::string why;
    if (!accepts(m, m.patch, why)) {
      row(m, in)["notes"].push_back("ddp skipped: " + why);
      return;
    }
    std::map<int, double> seconds;
    for (int ranks : {1, 2}) {
      Json t = task("train");
      t["model"] = to_json(m);
      t["input"] = in;
      t["threads"] = 1;
      t["ranks"] = ranks;
      const Json r = run_task(t, &m, "ddp train step " + m.name + " " + shape_string(in) + ", " +
                                         std::to_string(ranks) + (ranks == 1 ? " rank" : " ranks") + " x 1 thread");
      Json& rw = row(m, in);
      if (!ok(rw, r, "ddp " + std::to_string(ranks) + " ranks")) continue;
      copy_common(rw, r);
      const std::string k = "ddp_" + std::to_string(ranks) + "rank_";
      rw[k + "step_s"] = r["seconds"];
      rw[k + "runs"] = r["runs"];
      rw[k + "peak_rss_mb"] = r["peak_rss_mb"];
      if (r.contains("allreduce_bytes")) {
        rw["ddp_allreduce_mb"] = r["allreduce_bytes"].get<double>() / (1024.0 * 1024.0);
        rw["ddp_buckets"] = r["buckets"];
        rw["ddp_backend"] = r["backend"];
      }
      seconds[ranks] = r["seconds"].get<double>();
    }
    if (seconds.count(1) && seconds.count(2) && seconds[2] > 0) {
      Json& rw = row(m, in);
      rw["ddp_1rank_samples_per_s"] = 1.0 / seconds[1];
      rw["ddp_2rank_samples_per_s"] = 2.0 / seconds[2];
      rw["ddp_efficiency"] = seconds[1] / seconds[2];
    }
  }

  void window(const BenchModel& m) {
    const auto in = patch_input(m);
    row(m, in);
    std::string why;
    if (!accepts(m, m.patch, why)) {
      row(m, in)["notes"].push_back("window skipped: " + why);
      return;
    }
    std::vector<int64_t> image = o_.window_case;
    image[0] = in_channels_of(m);
    Json t = task("window");
    t["model"] = to_json(m);
    t["case"] = image;
    t["roi"] = m.patch;
    t["overlap"] = o_.overlap;
    const Json r = run_task(t, &m, "sliding window " + m.name + " case " + shape_string(image) + " roi " +
                                       shape_string(m.patch));
    Json& rw = row(m, in);
    if (!ok(rw, r, "window")) return;
    copy_common(rw, r);
    rw["window_s"] = r["seconds"];
    rw["window_runs"] = r["runs"];
    rw["window_cpu_s"] = r["cpu_s"];
    rw["window_case"] = shape_string(image);
    rw["windows"] = r["windows"];
    rw["window_peak_rss_mb"] = r["peak_rss_mb"];
  }

  void end_to_end(const BenchModel& student) {
    const auto in = patch_input(student);
    row(student, in);
    if (in_channels_of(student) != 2) {
      row(student, in)["notes"].push_back("e2e skipped: the PET/CT case needs a 2-channel student");
      return;
    }
    fs::path work = o_.work_dir;
    const bool temporary = work.empty();
    if (temporary) work = fs::temp_directory_path() / ("tf-bench-" + std::to_string(::getpid()));
    Json r;
    try {
      const EndToEndCase e = prepare_end_to_end(work, student, o_.e2e_bbox_mm, o_.seed);
      Json t = task("e2e");
      t["model_dir"] = e.model_dir.string();
      t["dataset"] = e.dataset.string();
      t["output"] = e.output.string();
      t["overlap"] = o_.overlap;
      r = run_task(t, nullptr, "end to end " + student.name + " (PET/CT case, bbox " +
                                   std::to_string(int(o_.e2e_bbox_mm)) + " mm)");
    } catch (const Error& err) {
      r = {{"error", first_line(err.what())}};
    }
    if (temporary) {
      std::error_code ec;
      fs::remove_all(work, ec);
    }
    Json& rw = row(student, in);
    if (!ok(rw, r, "e2e")) return;
    rw["e2e_s"] = r["seconds"];
    rw["e2e_runs"] = r["runs"];
    rw["e2e_cpu_s"] = r["cpu_s"];
    rw["e2e_first_s"] = r["first_s"];
    rw["e2e_load_s"] = r["load_s"];
    rw["e2e_network_s"] = r["network_s"];
    for (const char* phase : {"preprocess_s", "restore_s", "write_s"})
      if (r.contains(phase)) rw[std::string("e2e_") + phase] = r[phase];
    rw["e2e_peak_rss_mb"] = r["peak_rss_mb"];
    rw["e2e_case"] = shape_string(r["label_shape"].get<std::vector<int64_t>>());
    rw["e2e_bbox_mm"] = o_.e2e_bbox_mm;
    if (r.contains("process_s")) rw["e2e_process_s"] = r["process_s"];
  }

  void attach_references() {
    for (auto& [name, rw] : rows_) {
      const BenchModel* m = nullptr;
      for (const auto& mm : o_.models)
        if (mm.name == name) m = &mm;
      if (!m || !is_paper_config(*m)) continue;
      auto it = references().find(canonical_name(name));
      if (it == references().end()) continue;
      const Reference& ref = it->second;
      const auto in = parse_bench_shape(rw["input"].get<std::string>());
      const int64_t size = in[2];
      const bool cube = in[0] == 1 && in[3] == size && in[4] == size;
      if (!cube) continue;
      if (ref.forward_s > 0 && size == ref.forward_size && rw.contains("forward_s")) {
        rw["reference_forward_s"] = ref.forward_s;
        if (ref.forward_peak_mb > 0) rw["reference_peak_rss_mb"] = ref.forward_peak_mb;
      }
      if (ref.train_s > 0 && size == 96 && rw.contains("train_step_s")) rw["reference_train_step_s"] = ref.train_s;
      if (ref.window_s > 0 && rw.contains("window_s") && rw["window_case"] == "2x144x144x144" && o_.overlap == 0.5) {
        rw["reference_window_s"] = ref.window_s;
        if (ref.window_peak_mb > 0) rw["reference_window_peak_rss_mb"] = ref.window_peak_mb;
      }
    }
  }

  const BenchOptions& o_;
  double matmul_ = 0;
  std::vector<std::pair<std::string, Json>> rows_;
  std::map<std::string, Json> specs_;
  std::vector<std::string> notes_;
};

}  // namespace

BenchReport run_bench(const BenchOptions& options) {
  TF_CHECK(!options.models.empty(), InvalidArgument, "bench: no model to measure");
  TF_CHECK(options.repeats >= 1, InvalidArgument, "bench: repeats must be >= 1, got ", options.repeats);
  TF_CHECK(options.budget_s >= 0, InvalidArgument, "bench: budget must be >= 0 s, got ", options.budget_s);
  TF_CHECK(bool(options.runner), InvalidArgument, "bench: no task runner");
  TF_CHECK(options.window_case.size() == 4, InvalidArgument, "bench: the window case must be [C, D, H, W], got ",
           options.window_case);
  TF_CHECK(options.overlap >= 0 && options.overlap < 1, InvalidArgument, "bench: overlap must be in [0, 1), got ",
           options.overlap);
  std::set<std::string> names;
  for (const auto& m : options.models) {
    TF_CHECK(names.insert(m.name).second, InvalidArgument, "bench: model '", m.name, "' is listed twice");
    TF_CHECK(m.patch.size() == 3, InvalidArgument, "bench: model '", m.name, "': patch must be [D, H, W]");
  }
  for (const auto& in : options.inputs)
    TF_CHECK(in.size() == 5, InvalidArgument, "bench: inputs must be [B, C, D, H, W], got ", in);
  return Runner(options).run();
}

}  // namespace teachformer::bench
