// Small string helpers shared by the error messages of several layers.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace teachformer {

/// Levenshtein distance (insertions, deletions, substitutions of bytes).
size_t edit_distance(const std::string& a, const std::string& b);
/// The candidate closest to `query` by edit distance (the first on ties); empty when there is no candidate. For
/// "did you mean" hints.
std::string nearest_name(const std::string& query, const std::vector<std::string>& candidates);

/// The fields of one CSV line (RFC 4180): fields in double quotes may hold commas, a doubled quote is a quote. An
/// unterminated quote is InvalidArgument.
std::vector<std::string> split_csv_line(const std::string& line);

/// `value` with `precision` digits after the point ("0.853"); "n/a" for NaN, "inf" / "-inf" for infinities.
std::string format_fixed(double value, int precision);

}  // namespace teachformer
