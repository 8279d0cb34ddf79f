#include "teachformer/dist/world.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "teachformer/core/error.hpp"

namespace teachformer::dist {
namespace {

int integer_variable(const EnvLookup& env, const std::string& name, std::optional<int> fallback) {
  const auto v = env(name);
  if (!v || v->empty()) {
    TF_CHECK(fallback.has_value(), InvalidArgument, "environment variable ", name, " is required for a distributed job");
    return *fallback;
  }
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(v->c_str(), &end, 10);
  TF_CHECK(errno == 0 && end && *end == '\0' && value >= -1 && value <= 1000000, InvalidArgument, "environment variable ",
           name, " must be an integer, got '", *v, "'");
  return int(value);
}

// Slurm writes tasks per node as "4" or "4(x2),3" (one entry per node): the first entry's count.
std::optional<int> slurm_tasks_per_node(const EnvLookup& env) {
  for (const char* name : {"SLURM_NTASKS_PER_NODE", "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"}) {
    const auto v = env(name);
    if (!v || v->empty()) continue;
    const std::string first = v->substr(0, v->find_first_of("(,"));
    char* end = nullptr;
    const long n = std::strtol(first.c_str(), &end, 10);
    TF_CHECK(end && *end == '\0' && n >= 1, InvalidArgument, "environment variable ", name,
             " must start with a task count, got '", *v, "'");
    return int(n);
  }
  return std::nullopt;
}

void check_world(const WorldInfo& w) {
  TF_CHECK(w.world_size >= 1, InvalidArgument, "the world size must be >= 1, got ", w.world_size, " (", w.source, ")");
  TF_CHECK(w.rank >= 0 && w.rank < w.world_size, InvalidArgument, "rank ", w.rank, " is outside [0, ", w.world_size,
           ") (", w.source, ")");
  TF_CHECK(w.local_rank >= 0 && w.local_world_size >= 1 && w.local_rank < w.local_world_size, InvalidArgument,
           "local rank ", w.local_rank, " is outside [0, ", w.local_world_size, ") (", w.source, ")");
  TF_CHECK(w.master_port >= 1 && w.master_port <= 65535, InvalidArgument, "MASTER_PORT must be in [1, 65535], got ",
           w.master_port);
  TF_CHECK(!w.distributed() || !w.master_addr.empty(), InvalidArgument,
           "MASTER_ADDR is required for a job of ", w.world_size, " processes");
}

}  // namespace

std::string WorldInfo::describe() const {
  return "rank " + std::to_string(rank) + "/" + std::to_string(world_size) + " (local " + std::to_string(local_rank) +
         ") at " + master_addr + ":" + std::to_string(master_port);
}

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::string first_slurm_host(const std::string& nodelist) {
  TF_CHECK(!nodelist.empty(), InvalidArgument, "the Slurm node list is empty");
  // The first entry ends at the first comma outside brackets.
  size_t end = 0;
  int depth = 0;
  for (; end < nodelist.size(); ++end) {
    const char c = nodelist[end];
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c == ',' && depth == 0) break;
    TF_CHECK(depth >= 0 && depth <= 1, InvalidArgument, "malformed Slurm node list '", nodelist, "'");
  }
  TF_CHECK(depth == 0, InvalidArgument, "malformed Slurm node list '", nodelist, "' (unbalanced brackets)");
  const std::string entry = nodelist.substr(0, end);
  const size_t open = entry.find('[');
  if (open == std::string::npos) {
    TF_CHECK(!entry.empty(), InvalidArgument, "malformed Slurm node list '", nodelist, "'");
    return entry;
  }
  const size_t close = entry.find(']', open);
  TF_CHECK(close != std::string::npos && open > 0, InvalidArgument, "malformed Slurm node list '", nodelist, "'");
  // The first range's first value keeps its zero padding: "node[03-05]" -> "node03".
  const std::string ranges = entry.substr(open + 1, close - open - 1);
  const std::string first = ranges.substr(0, ranges.find_first_of(",-"));
  TF_CHECK(!first.empty() && first.find_first_not_of("0123456789") == std::string::npos, InvalidArgument,
           "malformed Slurm node list '", nodelist, "'");
  return entry.substr(0, open) + first + entry.substr(close + 1);
}

WorldInfo world_from_environment(const EnvLookup& env) {
  WorldInfo w;
  const auto has = [&](const char* name) {
    const auto v = env(name);
    return v && !v->empty();
  };
  if (has("WORLD_SIZE")) {
    w.source = "torchrun";
    w.world_size = integer_variable(env, "WORLD_SIZE", std::nullopt);
    w.rank = integer_variable(env, "RANK", w.world_size == 1 ? std::optional<int>(0) : std::nullopt);
    w.local_rank = integer_variable(env, "LOCAL_RANK", 0);
    w.local_world_size = integer_variable(env, "LOCAL_WORLD_SIZE", std::max(1, w.local_rank + 1));
    if (w.world_size > 1) {
      TF_CHECK(has("MASTER_ADDR"), InvalidArgument, "environment variable MASTER_ADDR is required when WORLD_SIZE is ",
               w.world_size);
      w.master_addr = *env("MASTER_ADDR");
    } else if (has("MASTER_ADDR")) {
      w.master_addr = *env("MASTER_ADDR");
    }
    w.master_port = integer_variable(env, "MASTER_PORT", kDefaultMasterPort);
  } else if (has("SLURM_PROCID") && has("SLURM_NTASKS")) {
    w.source = "slurm";
    w.rank = integer_variable(env, "SLURM_PROCID", std::nullopt);
    w.world_size = integer_variable(env, "SLURM_NTASKS", std::nullopt);
    w.local_rank = integer_variable(env, "SLURM_LOCALID", 0);
    w.local_world_size = slurm_tasks_per_node(env).value_or(std::max(1, w.local_rank + 1));
    if (has("MASTER_ADDR")) {
      w.master_addr = *env("MASTER_ADDR");
    } else {
      const auto list = has("SLURM_STEP_NODELIST") ? env("SLURM_STEP_NODELIST") : env("SLURM_JOB_NODELIST");
      TF_CHECK(list && !list->empty(), InvalidArgument,
               "a Slurm job needs MASTER_ADDR or SLURM_JOB_NODELIST to find rank 0's host");
      w.master_addr = first_slurm_host(*list);
    }
    w.master_port = integer_variable(env, "MASTER_PORT", kDefaultMasterPort);
  }
  check_world(w);
  return w;
}

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  TF_CHECK(fd >= 0, IoError, "cannot open a socket to find a free port: ", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int err = errno;
  ::close(fd);
  TF_CHECK(ok, IoError, "cannot bind a socket on 127.0.0.1 to find a free port: ", std::strerror(err));
  return int(ntohs(addr.sin_port));
}

}  // namespace teachformer::dist
