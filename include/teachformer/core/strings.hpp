// Small string helpers shared by the error messages of several layers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
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

/// The parts of `text` between `separator`s as std::getline yields them ("a,b," -> {"a", "b"}), each trimmed of
/// blanks and tabs.
std::vector<std::string> split_trimmed(const std::string& text, char separator);

/// Positive integers joined by `separator`: "2x96x96x96" with 'x', "96,96,96" with ','. Parts are split as
/// std::getline does (a trailing separator adds nothing; "" gives an empty list); nullopt when a part is not a whole
/// positive integer.
std::optional<std::vector<int64_t>> parse_positive_ints(const std::string& text, char separator);

/// `value` with `precision` digits after the point ("0.853"); `nan_text` for NaN (default "n/a"), "inf" / "-inf"
/// for infinities.
std::string format_fixed(double value, int precision, const char* nan_text = "n/a");

}  // namespace teachformer
