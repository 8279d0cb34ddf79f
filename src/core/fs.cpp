#include "teachformer/core/fs.hpp"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "teachformer/core/error.hpp"

namespace teachformer {

fs::path temporary_sibling(const fs::path& target) {
  static std::atomic<unsigned> counter{0};
  const auto name = ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                    target.filename().string();
  return target.parent_path() / name;
}

void write_atomically(const fs::path& target, const std::function<void(const fs::path& tmp)>& write) {
  TF_CHECK(!target.filename().empty(), IoError, "cannot write '", target.string(), "': not a file name");
  std::error_code ec;
  if (!target.parent_path().empty()) {
    fs::create_directories(target.parent_path(), ec);
    TF_CHECK(!ec, IoError, "cannot create folder '", target.parent_path().string(), "': ", ec.message());
  }
  const fs::path tmp = temporary_sibling(target);
  try {
    write(tmp);
    TF_CHECK(fs::exists(tmp), IoError, "writing '", target.string(), "' produced no file");
    fs::rename(tmp, target, ec);
    TF_CHECK(!ec, IoError, "cannot move '", tmp.string(), "' to '", target.string(), "': ", ec.message());
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
}

void write_file_atomic(const fs::path& target, std::string_view bytes) {
  write_atomically(target, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    TF_CHECK(out.good(), IoError, "cannot open '", tmp.string(), "' for writing");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    TF_CHECK(out.good(), IoError, "write to '", target.string(), "' failed (disk full?)");
  });
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
  TF_CHECK(fs::exists(path), IoError, what, " '", path.string(), "' does not exist");
}

bool has_suffix(const fs::path& path, std::string_view suffix) {
  const std::string name = path.filename().string();
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace teachformer
