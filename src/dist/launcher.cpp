#include "teachformer/dist/launcher.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "teachformer/core/error.hpp"
#include "teachformer/core/runtime.hpp"
#include "teachformer/dist/world.hpp"

extern char** environ;

namespace teachformer::dist {
namespace {

std::atomic<int> g_forward_signal{0};
void remember_signal(int sig) { g_forward_signal.store(sig); }

// The current environment minus the variables we set, plus ours.
std::vector<std::string> worker_environment(const std::map<std::string, std::string>& set) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    if (!set.count(key)) env.push_back(kv);
  }
  for (const auto& [k, v] : set) env.push_back(k + "=" + v);
  return env;
}

int exit_status_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal ") + ::strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

}  // namespace

bool is_launched_worker() {
  const char* v = std::getenv(kWorkerEnv);
  return v && *v && std::string(v) != "0";
}

int launch_local_workers(const std::vector<std::string>& argv, const LaunchOptions& o) {
  TF_CHECK(!argv.empty(), InvalidArgument, "launch: empty command");
  TF_CHECK(o.nproc >= 1, InvalidArgument, "--nproc-per-node must be >= 1, got ", o.nproc);
  const int port = o.master_port > 0 ? o.master_port : free_local_port();
  const int threads = o.threads_per_worker > 0 ? o.threads_per_worker : std::max(1, hardware_threads() / o.nproc);

  struct sigaction sa {}, old_int {}, old_term {}, old_usr1 {};
  sa.sa_handler = remember_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  ::sigaction(SIGUSR1, &sa, &old_usr1);

  std::map<pid_t, int> rank_of;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (int r = 0; r < o.nproc; ++r) {
    const auto env = worker_environment({{"RANK", std::to_string(r)},
                                         {"WORLD_SIZE", std::to_string(o.nproc)},
                                         {"LOCAL_RANK", std::to_string(r)},
                                         {"LOCAL_WORLD_SIZE", std::to_string(o.nproc)},
                                         {"MASTER_ADDR", "127.0.0.1"},
                                         {"MASTER_PORT", std::to_string(port)},
                                         {"TF_THREADS", std::to_string(threads)},
                                         {"OMP_NUM_THREADS", std::to_string(threads)},
                                         {kWorkerEnv, "1"}});
    std::vector<char*> envp;
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, argv[0].c_str(), nullptr, nullptr, args.data(), envp.data());
    if (rc != 0) {
      for (const auto& [p, _] : rank_of) ::kill(p, SIGKILL);
      for (const auto& [p, _] : rank_of) ::waitpid(p, nullptr, 0);
      ::sigaction(SIGINT, &old_int, nullptr);
      ::sigaction(SIGTERM, &old_term, nullptr);
      ::sigaction(SIGUSR1, &old_usr1, nullptr);
      TF_THROW(IoError, "cannot start rank ", r, " ('", argv[0], "'): ", std::strerror(rc));
    }
    rank_of[pid] = r;
  }

  int result = 0;
  bool stopping = false;
  std::chrono::steady_clock::time_point stop_at{};
  while (!rank_of.empty()) {
    if (const int sig = g_forward_signal.exchange(0)) {
      for (const auto& [p, _] : rank_of) ::kill(p, sig);
      if (!stopping) {
        stopping = true;
        stop_at = std::chrono::steady_clock::now();
        if (result == 0) result = 128 + sig;
      } else {
        for (const auto& [p, _] : rank_of) ::kill(p, SIGKILL);  // a second signal stops at once
      }
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0 && rank_of.count(pid)) {
      const int rank = rank_of[pid];
      rank_of.erase(pid);
      if (exit_status_of(status) != 0 && !stopping) {
        std::fprintf(stderr, "error: rank %d of %d (127.0.0.1:%d) failed with %s; stopping the other ranks\n", rank,
                     o.nproc, port, describe_status(status).c_str());
        result = exit_status_of(status);
        stopping = true;
        stop_at = std::chrono::steady_clock::now();
        for (const auto& [p, _] : rank_of) ::kill(p, SIGTERM);
      }
      continue;
    }
    if (stopping && std::chrono::duration<double>(std::chrono::steady_clock::now() - stop_at).count() > o.grace_seconds)
      for (const auto& [p, _] : rank_of) ::kill(p, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGUSR1, &old_usr1, nullptr);
  return result;
}

}  // namespace teachformer::dist
