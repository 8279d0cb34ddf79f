#include "teachformer/core/folder_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/interrupt.hpp"

namespace teachformer {
namespace fs = std::filesystem;
namespace {

std::string own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (auto& c : raw)
    if (c == '\0') c = ' ';
  while (!raw.empty() && raw.back() == ' ') raw.pop_back();
  if (raw.size() > 300) raw = raw.substr(0, 300) + "...";
  return raw;
}

std::string read_holder(int fd) {
  char buffer[400] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
  std::string text = n > 0 ? std::string(buffer, size_t(n)) : std::string();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.empty() ? "a process that has not written its pid yet" : text;
}

}  // namespace

fs::path FolderLock::file_of(const fs::path& folder) { return folder / ".teachformer.lock"; }

FolderLock::FolderLock(const fs::path& folder, std::string what, Mode mode) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  TF_CHECK(!ec, IoError, "cannot create ", what, " '", folder.string(), "': ", ec.message());
  const fs::path file = file_of(folder);
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  TF_CHECK(fd_ >= 0, IoError, "cannot open the lock file '", file.string(), "': ", std::strerror(errno));
  bool announced = false;
  while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK) {
      ::close(fd_);
      fd_ = -1;
      TF_THROW(IoError, "cannot lock ", what, " '", folder.string(), "': ", std::strerror(err));
    }
    const std::string who = read_holder(fd_);
    if (mode == Mode::Refuse) {
      ::close(fd_);
      fd_ = -1;
      TF_THROW(IoError, what, " '", folder.string(), "' is in use by another process (", who,
               "); wait for it to finish or choose another folder");
    }
    if (!announced) {
      spdlog::info("waiting for {} '{}', which is in use by {}", what, folder.string(), who);
      announced = true;
    }
    if (stop_requested()) {
      ::close(fd_);
      fd_ = -1;
      throw_if_stop_requested("nothing was written to " + what + " '" + folder.string() + "'");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::string me = "pid " + std::to_string(::getpid()) + ": " + own_command_line() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != ssize_t(me.size()))
    spdlog::debug("could not record the holder in '{}'", file.string());
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) {
    // Leave the file (removing it would race with a process that just opened it); empty it so it names nobody.
    const int ignored = ::ftruncate(fd_, 0);
    (void)ignored;
    ::close(fd_);
  }
}

FolderLock::FolderLock(FolderLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

FolderLock& FolderLock::operator=(FolderLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

std::string FolderLock::holder(const fs::path& folder) {
  const fs::path file = file_of(folder);
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string who;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) who = read_holder(fd);
  else ::flock(fd, LOCK_UN);
  ::close(fd);
  return who;
}

}  // namespace teachformer
