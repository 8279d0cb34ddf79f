#include "teachformer/pipeline/job_runner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/interrupt.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/runtime.hpp"

extern char** environ;

namespace teachformer::pipeline {
namespace {

using Json = nlohmann::json;

Json teacher_json(const distill::TeacherSpec& t) {
  return {{"dir", t.dir.string()}, {"fold", t.fold}, {"checkpoint", t.checkpoint}, {"weight", t.weight}, {"name", t.name}};
}

distill::TeacherSpec teacher_from_json(const Json& j) {
  distill::TeacherSpec t;
  JsonReader r(j, "job teacher");
  std::string dir;
  r.require("dir", dir).get("fold", t.fold).get("checkpoint", t.checkpoint).get("weight", t.weight).get("name", t.name);
  r.finish();
  t.dir = dir;
  return t;
}

template <class T>
Json optional_json(const std::optional<T>& v) {
  return v ? Json(*v) : Json(nullptr);
}
template <class T>
void read_optional(const Json& j, const char* key, std::optional<T>& out) {
  if (j.contains(key) && !j.at(key).is_null()) out = j.at(key).get<T>();
}

Json result_json(const JobResult& r) {
  return {{"model_dir", r.model_dir.string()},
          {"config", r.config},
          {"parameters", r.parameters},
          {"cache_bytes", r.cache_bytes},
          {"cache_seconds", r.cache_seconds},
          {"summary",
           {{"epochs_run", r.summary.epochs_run},
            {"steps_run", r.summary.steps_run},
            {"best_dice", r.summary.best_dice},
            {"best_epoch", r.summary.best_epoch},
            {"last_dice", r.summary.last_dice},
            {"seconds", r.summary.seconds},
            {"seconds_per_step", r.summary.seconds_per_step},
            {"skipped_steps", r.summary.skipped_steps},
            {"stopped_early", r.summary.stopped_early}}}};
}

JobResult result_from_json(const Json& j) {
  JobResult r;
  r.model_dir = j.at("model_dir").get<std::string>();
  r.config = j.at("config");
  r.parameters = j.at("parameters").get<int64_t>();
  r.cache_bytes = j.at("cache_bytes").get<int64_t>();
  r.cache_seconds = j.at("cache_seconds").get<double>();
  const auto& s = j.at("summary");
  r.summary.epochs_run = s.at("epochs_run").get<int64_t>();
  r.summary.steps_run = s.at("steps_run").get<int64_t>();
  r.summary.best_dice = s.at("best_dice").get<double>();
  r.summary.best_epoch = s.at("best_epoch").get<int64_t>();
  r.summary.last_dice = s.at("last_dice").get<double>();
  r.summary.seconds = s.at("seconds").get<double>();
  r.summary.seconds_per_step = s.at("seconds_per_step").get<double>();
  r.summary.skipped_steps = s.value("skipped_steps", int64_t(0));
  r.summary.stopped_early = s.value("stopped_early", false);
  return r;
}

fs::path job_file_of(const JobSpec& spec) { return spec.job.output / "job_spec.json"; }
fs::path result_file_of(const fs::path& job_file) { return job_file.string() + ".result.json"; }

}  // namespace

Json to_json(const JobSpec& s) {
  const auto& j = s.job;
  Json teachers = Json::array();
  for (const auto& t : s.distill.teachers) teachers.push_back(teacher_json(t));
  return {{"kind", s.kind},
          {"label", s.label},
          {"job",
           {{"dataset", j.dataset.string()},
            {"model", j.model},
            {"preset", j.preset},
            {"fold", j.fold},
            {"n_folds", j.n_folds},
            {"output", j.output.string()},
            {"config", j.config},
            {"channels", j.channels},
            {"resume", j.resume},
            {"patch_size", j.patch_size},
            {"epochs", optional_json(j.epochs)},
            {"steps_per_epoch", optional_json(j.steps_per_epoch)},
            {"seed", optional_json(j.seed)},
            {"device", optional_json(j.device)},
            {"batch_size", optional_json(j.batch_size)},
            {"precision", optional_json(j.precision)}}},
          {"distill",
           {{"teachers", teachers},
            {"strategy", optional_json(s.distill.strategy)},
            {"cache", optional_json(s.distill.cache)},
            {"unlabelled", s.distill.unlabelled ? Json(s.distill.unlabelled->string()) : Json(nullptr)}}}};
}

JobSpec job_spec_from_json(const Json& in) {
  JobSpec s;
  s.kind = in.at("kind").get<std::string>();
  TF_CHECK(s.kind == "train" || s.kind == "distill", ConfigError, "job file: kind must be train or distill, got '",
           s.kind, "'");
  s.label = in.value("label", "");
  const auto& j = in.at("job");
  auto& o = s.job;
  o.dataset = j.at("dataset").get<std::string>();
  o.model = j.at("model").get<std::string>();
  o.preset = j.at("preset").get<std::string>();
  o.fold = j.at("fold").get<int>();
  o.n_folds = j.at("n_folds").get<int>();
  o.output = j.at("output").get<std::string>();
  o.config = j.at("config");
  o.channels = j.at("channels").get<std::vector<std::string>>();
  o.resume = j.at("resume").get<bool>();
  o.patch_size = j.at("patch_size").get<std::vector<int64_t>>();
  read_optional(j, "epochs", o.epochs);
  read_optional(j, "steps_per_epoch", o.steps_per_epoch);
  read_optional(j, "seed", o.seed);
  read_optional(j, "device", o.device);
  read_optional(j, "batch_size", o.batch_size);
  read_optional(j, "precision", o.precision);
  const auto& d = in.at("distill");
  for (const auto& t : d.at("teachers")) s.distill.teachers.push_back(teacher_from_json(t));
  read_optional(d, "strategy", s.distill.strategy);
  read_optional(d, "cache", s.distill.cache);
  if (d.contains("unlabelled") && !d.at("unlabelled").is_null())
    s.distill.unlabelled = fs::path(d.at("unlabelled").get<std::string>());
  return s;
}

JobResult run_job_spec(const JobSpec& spec) {
  return spec.kind == "train" ? run_train_job(spec.job) : run_distill_job(spec.job, spec.distill);
}

int job_worker_main(const fs::path& job_file) {
  const JobSpec spec = job_spec_from_json(read_json(job_file));
  const JobResult r = run_job_spec(spec);
  write_json(result_file_of(job_file), result_json(r));
  return 0;
}

double machine_load() {
  std::ifstream in("/proc/loadavg");
  double one = 0;
  if (!(in >> one)) return 0;
  return one / double(std::max(1, hardware_threads()));
}

std::vector<JobResult> run_jobs(const std::vector<JobSpec>& specs, const JobRunnerOptions& o) {
  std::vector<JobResult> results(specs.size());
  if (o.jobs <= 1 || specs.size() <= 1) {
    for (size_t i = 0; i < specs.size(); ++i) results[i] = run_job_spec(specs[i]);
    return results;
  }
  TF_CHECK(!o.worker_command.empty(), InvalidArgument, "job runner: a worker command is needed for parallel jobs");
  const int threads = o.threads_per_job > 0 ? o.threads_per_job : std::max(1, hardware_threads() / o.jobs);
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    if (key != "TF_THREADS" && key != "OMP_NUM_THREADS" && key != "OMP_WAIT_POLICY") env.push_back(kv);
  }
  env.push_back("TF_THREADS=" + std::to_string(threads));
  env.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
  if (o.passive_wait) env.push_back("OMP_WAIT_POLICY=PASSIVE");
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  std::map<pid_t, size_t> running;
  size_t next = 0;
  std::string failure;
  bool forwarded = false;
  while ((next < specs.size() && failure.empty() && !stop_requested()) || !running.empty()) {
    while (failure.empty() && !stop_requested() && next < specs.size() && int(running.size()) < o.jobs) {
      const auto& spec = specs[next];
      fs::create_directories(spec.job.output);
      const fs::path job_file = job_file_of(spec);
      write_json(job_file, to_json(spec));
      std::error_code ec;
      fs::remove(result_file_of(job_file), ec);
      const fs::path log = spec.job.output / "job.log";
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
      std::vector<std::string> argv = o.worker_command;
      argv.push_back(job_file.string());
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      pid_t pid = 0;
      const int rc = ::posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), envp.data());
      posix_spawn_file_actions_destroy(&actions);
      if (rc != 0) {
        failure = spec.label + ": cannot start a worker ('" + argv[0] + "'): " + std::strerror(rc);
        break;
      }
      spdlog::info("started {} ({} threads; log {})", spec.label, threads, log.string());
      running[pid] = next++;
    }
    if (stop_requested() && !forwarded) {
      // A stop for the experiment is a stop for its workers: each writes its resume checkpoint and exits.
      forwarded = true;
      for (const auto& [p, _] : running) ::kill(p, stop_signal());
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const size_t i = it->second;
    running.erase(it);
    const auto& spec = specs[i];
    const fs::path result = result_file_of(job_file_of(spec));
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && fs::exists(result);
    if (!ok && stop_requested()) continue;  // it stopped because we asked it to
    if (!ok) {
      if (failure.empty()) {
        std::string last;
        std::ifstream in(spec.job.output / "job.log");
        for (std::string line; std::getline(in, line);)
          if (!line.empty()) last = line;
        failure = spec.label + " failed (" +
                  (WIFSIGNALED(status) ? std::string("signal ") + ::strsignal(WTERMSIG(status))
                                       : "exit status " + std::to_string(WEXITSTATUS(status))) +
                  "): " + last + " (log: " + (spec.job.output / "job.log").string() + ")";
      }
      continue;
    }
    results[i] = result_from_json(read_json(result));
    spdlog::info("finished {}", spec.label);
  }
  TF_CHECK(failure.empty(), Error, failure);
  throw_if_stop_requested("the workers wrote their resume checkpoints");
  return results;
}

}  // namespace teachformer::pipeline
