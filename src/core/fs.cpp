#include "teachformer/core/fs.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <algorithm>
#include <sstream>
#include <vector>

#include <spdlog/spdlog.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/stale_temporaries.hpp"

namespace teachformer {

fs::path temporary_sibling(const fs::path& target) {
  static std::atomic<unsigned> counter{0};
  const auto name = ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                    target.filename().string();
  return target.parent_path() / name;
}

void sync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TF_CHECK(fd >= 0, IoError, "cannot open '", path.string(), "' to flush it to disk: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems cannot fsync a folder (EINVAL); the rename is then as durable as they allow.
  TF_CHECK(rc == 0 || err == EINVAL, IoError, "cannot flush '", path.string(), "' to disk: ", std::strerror(err));
}

namespace {

std::string mib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", bytes / (1024.0 * 1024.0));
  return text;
}

// The message for a write that failed because the device is (nearly) full; empty when there is room.
std::string out_of_space_message(const fs::path& target, const fs::path& tmp, uint64_t expected_bytes) {
  std::error_code ec;
  const auto space = fs::space(target.parent_path().empty() ? fs::path(".") : target.parent_path(), ec);
  if (ec) return {};
  const uint64_t written = fs::exists(tmp, ec) ? uint64_t(fs::file_size(tmp, ec)) : 0;
  const uint64_t needed = std::max(expected_bytes, written);
  // A full device leaves less than a block or two; a failure with room to spare has another cause.
  if (space.available >= std::max<uint64_t>(1 << 20, needed > written ? needed - written : 0)) return {};
  std::string msg = "cannot write '" + target.string() + "': no space left on the device (";
  if (expected_bytes > 0)
    msg += "the file needs " + mib(double(expected_bytes)) + ", ";
  else
    msg += "it needs more than the " + mib(double(written)) + " written, ";
  msg += mib(double(space.available) + double(written)) + " free); the previous file is unchanged";
  return msg;
}

}  // namespace

void write_atomically(const fs::path& target, const std::function<void(const fs::path& tmp)>& write,
                      uint64_t expected_bytes) {
  TF_CHECK(!target.filename().empty(), IoError, "cannot write '", target.string(), "': not a file name");
  std::error_code ec;
  if (!target.parent_path().empty()) {
    fs::create_directories(target.parent_path(), ec);
    TF_CHECK(!ec, IoError, "cannot create folder '", target.parent_path().string(), "': ", ec.message());
  }
  const fs::path tmp = temporary_sibling(target);
  try {
    try {
      write(tmp);
      TF_CHECK(fs::exists(tmp), IoError, "writing '", target.string(), "' produced no file");
      sync_path(tmp);
    } catch (const std::exception&) {
      const std::string full = out_of_space_message(target, tmp, expected_bytes);
      if (!full.empty()) TF_THROW(IoError, full);
      throw;
    }
    fs::rename(tmp, target, ec);
    TF_CHECK(!ec, IoError, "cannot move '", tmp.string(), "' to '", target.string(), "': ", ec.message());
    sync_path(target.parent_path().empty() ? fs::path(".") : target.parent_path());
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
}

int remove_stale_temporaries(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  int removed = 0;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(".tmp-", 0) != 0) continue;
    const size_t dash = name.find('-', 5);
    if (dash == std::string::npos) continue;
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + 5, &end, 10);
    if (end != name.c_str() + dash || pid <= 0) continue;
    if (::kill(pid_t(pid), 0) == 0 || errno == EPERM) continue;  // its writer still runs
    std::error_code rm;
    fs::remove_all(entry.path(), rm);
    if (!rm) ++removed;
  }
  if (removed > 0)
    spdlog::info("removed {} temporary file(s) left by an interrupted run in '{}'", removed, dir.string());
  return removed;
}

int remove_stale_temporaries_under(const fs::path& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return 0;
  std::vector<fs::path> dirs{root};
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
    if (it->path().filename().string().rfind(".tmp-", 0) == 0) {  // a writer's own folder: removed whole or kept
      it.disable_recursion_pending();
      continue;
    }
    dirs.push_back(it->path());
  }
  int removed = 0;
  for (const auto& d : dirs) removed += remove_stale_temporaries(d);
  return removed;
}

std::string path_escape_reason(const fs::path& root, const std::string& entry) {
  if (entry.empty()) return "is empty";
  if (entry.find('\0') != std::string::npos) return "contains a NUL character";
  const fs::path rel(entry);
  if (rel.is_absolute()) return "is an absolute path (paths must be relative to the folder)";
  int depth = 0;
  for (const auto& part : rel.lexically_normal()) {
    if (part == "..") --depth;
    else if (part != "." && !part.empty()) ++depth;
    if (depth < 0) return "climbs out of the folder with '..'";
  }
  // Symbolic links: where the path really leads must stay under where the folder really is.
  std::error_code ec;
  const fs::path real_root = fs::weakly_canonical(root, ec);
  if (ec) return {};
  const fs::path real = fs::weakly_canonical(root / rel, ec);
  if (ec) return {};
  const auto mismatch = std::mismatch(real_root.begin(), real_root.end(), real.begin(), real.end());
  if (mismatch.first != real_root.end()) return "leads outside the folder through a symbolic link (to '" + real.string() + "')";
  return {};
}

fs::path path_inside(const fs::path& root, const std::string& entry, std::string_view where) {
  const std::string reason = path_escape_reason(root, entry);
  TF_CHECK(reason.empty(), DatasetError, where, ": '", entry, "' ", reason, "; refused, it must stay inside '",
           root.string(), "'");
  return root / entry;
}

std::string unsafe_name_reason(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name == "." || name == "..") return "is not a name";
  if (name.find('/') != std::string_view::npos) return "contains '/'";
  if (name.find('\0') != std::string_view::npos) return "contains a NUL character";
  return {};
}

void write_file_atomic(const fs::path& target, std::string_view bytes) {
  write_atomically(target, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    TF_CHECK(out.good(), IoError, "cannot open '", tmp.string(), "' for writing");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    TF_CHECK(out.good(), IoError, "write to '", target.string(), "' failed (disk full?)");
  }, bytes.size());
}

std::string read_file(const fs::path& path) {
  require_exists(path);
  std::ifstream in(path, std::ios::binary);
  TF_CHECK(in.good(), IoError, "cannot open '", path.string(), "' for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void require_exists(const fs::path& path, std::string_view what) {
  // With an error_code: a name too long or a path through a file is an IoError, not a filesystem_error.
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  TF_CHECK(!ec, IoError, what, " '", path.string(), "' cannot be accessed: ", ec.message());
  TF_CHECK(exists, IoError, what, " '", path.string(), "' does not exist");
}

bool has_suffix(const fs::path& path, std::string_view suffix) {
  const std::string name = path.filename().string();
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace teachformer
