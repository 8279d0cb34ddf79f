#include "fuzz_support.hpp"

#include <cxxabi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <typeinfo>

#include "teachformer/core/error.hpp"

namespace teachformer::fuzz {
namespace {

std::filesystem::path make_scratch() {
  const char* tmp = std::getenv("TMPDIR");
  std::filesystem::path dir = std::filesystem::path(tmp && *tmp ? tmp : "/tmp") /
                              ("teachformer-fuzz-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

void remove_scratch() {
  std::error_code ec;
  std::filesystem::remove_all(scratch_dir(), ec);
}

std::string current_exception_type() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  if (!type) return "unknown";
  int status = 0;
  char* name = abi::__cxa_demangle(type->name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name ? name : type->name();
  std::free(name);
  return out;
}

[[noreturn]] void finding(const char* reader, const std::string& type, const std::string& message) {
  std::fprintf(stderr, "==FINDING== %s threw %s: %s\n", reader, type.c_str(), message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace

const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto d = make_scratch();
    std::atexit(remove_scratch);
    return d;
  }();
  return dir;
}

std::filesystem::path write_input(const std::string& relative, const uint8_t* data, size_t size) {
  const std::filesystem::path path = scratch_dir() / relative;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

void expect_success_or_error(const char* reader, const std::function<void()>& read) {
  try {
    read();
  } catch (const Error& e) {
    const std::string message = e.what();
    if (message.find_first_of("\r\n") != std::string::npos)
      finding(reader, current_exception_type() + " with a multi-line message", message);
  } catch (const std::exception& e) {
    finding(reader, current_exception_type(), e.what());
  } catch (...) {
    finding(reader, current_exception_type(), "(not a std::exception)");
  }
}

}  // namespace teachformer::fuzz
