#include "teachformer/core/strings.hpp"

#include "teachformer/core/error.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>

#include <algorithm>

namespace teachformer {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string nearest_name(const std::string& query, const std::vector<std::string>& candidates) {
  std::string nearest;
  size_t best = std::string::npos;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(query, c);
    if (d < best) best = d, nearest = c;
  }
  return nearest;
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  TF_CHECK(!quoted, InvalidArgument, "CSV line with an unterminated quote: ", line);
  return fields;
}

std::vector<std::string> split_trimmed(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, separator)) {
    const auto b = part.find_first_not_of(" \t");
    const auto e = part.find_last_not_of(" \t");
    parts.push_back(b == std::string::npos ? std::string() : part.substr(b, e - b + 1));
  }
  return parts;
}

std::optional<std::vector<int64_t>> parse_positive_ints(const std::string& text, char separator) {
  std::vector<int64_t> values;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, separator)) {
    long long v = 0;
    size_t used = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      return std::nullopt;
    }
    if (part.empty() || used != part.size() || v <= 0) return std::nullopt;
    values.push_back(v);
  }
  return values;
}

std::string format_fixed(double value, int precision, const char* nan_text) {
  if (std::isnan(value)) return nan_text;
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", precision, value);
  return buf;
}

}  // namespace teachformer
