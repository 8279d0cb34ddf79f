// Errors: typed exceptions with context, and the TF_CHECK / TF_THROW macros that build their messages.
#pragma once
#include <array>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace teachformer {

namespace detail {
/// `text` with every run of line breaks (and the blanks around it) replaced by one space.
inline std::string one_line(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_break = false;
  for (const char c : text) {
    if (c == '\n' || c == '\r') {
      while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
      in_break = true;
      continue;
    }
    if (in_break && (c == ' ' || c == '\t')) continue;
    if (in_break && !out.empty()) out += ' ';
    in_break = false;
    out += c;
  }
  return out;
}
}  // namespace detail

/// Base of every error the library throws on bad input or failed operations. Messages are one line:
/// "context: what must hold, expected X, got Y (hint)". Line breaks in the parts (a third-party library's
/// description, a name read from a file) become spaces, so the CLI's one line per error holds for any input.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(detail::one_line(message)) {}
  explicit Error(const char* message) : Error(std::string(message)) {}
};
/// A bad argument, option value or tensor shape passed by the caller.
class InvalidArgument : public Error { using Error::Error; };
/// A file that is missing, unreadable or cannot be written.
class IoError : public Error { using Error::Error; };
/// A file whose contents do not match its format (corrupt gzip, lying header, unsupported pixel type).
class FormatError : public Error { using Error::Error; };
/// A JSON configuration with unknown keys, wrong types or invalid values.
class ConfigError : public Error { using Error::Error; };
/// A dataset whose layout or cases are inconsistent.
class DatasetError : public Error { using Error::Error; };
/// A NaN/Inf loss or another numerical failure during training.
class NumericalError : public Error { using Error::Error; };
/// A distributed job that cannot go on: a peer that never came, died or timed out, a rendezvous address that
/// cannot be reached.
class DistributedError : public Error { using Error::Error; };
/// A broken internal invariant (a bug): exit status 3 in the CLI.
class InternalError : public Error { using Error::Error; };

namespace detail {
template <typename T>
void append(std::ostringstream& os, const T& value) { os << value; }
template <typename T>
void append(std::ostringstream& os, const std::vector<T>& values) {
  os << '[';
  for (size_t i = 0; i < values.size(); ++i) { if (i) os << ", "; append(os, values[i]); }
  os << ']';
}
template <typename T, size_t N>
void append(std::ostringstream& os, const std::array<T, N>& values) {
  os << '[';
  for (size_t i = 0; i < N; ++i) { if (i) os << ", "; append(os, values[i]); }
  os << ']';
}
/// Concatenates the parts as written (no spaces are added); vectors and arrays print as [a, b, c].
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream os;
  (append(os, parts), ...);
  return os.str();
}
}  // namespace detail
}  // namespace teachformer

/// Throws `teachformer::Type` with the concatenated parts when `cond` is false. Never compiled out.
#define TF_CHECK(cond, Type, ...)                                              \
  do {                                                                         \
    if (!(cond)) throw ::teachformer::Type(::teachformer::detail::cat(__VA_ARGS__)); \
  } while (0)

/// Throws `teachformer::Type` with the concatenated parts.
#define TF_THROW(Type, ...) throw ::teachformer::Type(::teachformer::detail::cat(__VA_ARGS__))
