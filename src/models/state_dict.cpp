#include "teachformer/models/state_dict.hpp"

#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::models {
namespace {

// Glob with '*' only; iterative with backtracking to the last star (linear in practice for short keys).
bool glob_match(const std::string& text, const std::string& pattern) {
  size_t t = 0, p = 0, star = std::string::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p, ++t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool matches_any(const std::string& key, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns)
    if (key_matches(key, p)) return true;
  return false;
}

// "a, b, c (and 12 more)" with at most `limit` names.
std::string list_keys(const std::vector<std::string>& keys, size_t limit = 10) {
  std::string out;
  for (size_t i = 0; i < keys.size() && i < limit; ++i) {
    if (i) out += ", ";
    out += keys[i];
  }
  if (keys.size() > limit) out += " (and " + std::to_string(keys.size() - limit) + " more)";
  return out;
}

std::string shape_str(const torch::Tensor& t) { return detail::cat(t.sizes().vec()); }

}  // namespace

bool key_matches(const std::string& key, const std::string& pattern) {
  if (pattern.empty()) return false;
  if (pattern.find('*') != std::string::npos) return glob_match(key, pattern);
  for (size_t pos = key.find(pattern); pos != std::string::npos; pos = key.find(pattern, pos + 1))
    if (pos == 0 || key[pos - 1] == '.') return true;
  return false;
}

StateDict state_dict(const torch::nn::Module& module) {
  StateDict out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) out[item.key()] = item.value();
  for (const auto& item : module.named_buffers(/*recurse=*/true)) out[item.key()] = item.value();
  return out;
}

LoadReport load_state_dict(torch::nn::Module& module, const StateDict& tensors,
                           const std::vector<std::string>& ignorable_patterns) {
  const StateDict targets = state_dict(module);
  LoadReport report;
  std::vector<std::string> unexpected, missing, mismatched;
  for (const auto& [key, value] : tensors) {
    auto it = targets.find(key);
    if (it == targets.end()) {
      (matches_any(key, ignorable_patterns) ? report.ignored : unexpected).push_back(key);
      continue;
    }
    const torch::Tensor& target = it->second;
    if (!value.defined() || value.sizes() != target.sizes() ||
        value.is_floating_point() != target.is_floating_point()) {
      mismatched.push_back(key + " (file " + (value.defined() ? shape_str(value) + " " +
                                                  std::string(c10::toString(value.scalar_type()))
                                                                : std::string("undefined")) +
                           ", model " + shape_str(target) + " " + c10::toString(target.scalar_type()) + ")");
      continue;
    }
    report.loaded.push_back(key);
  }
  for (const auto& [key, target] : targets) {
    if (tensors.count(key)) continue;
    (matches_any(key, ignorable_patterns) ? report.kept : missing).push_back(key);
  }
  if (!unexpected.empty() || !missing.empty() || !mismatched.empty()) {
    std::string msg = "load_state_dict: the weights do not fit the model (" + std::to_string(targets.size()) +
                      " model keys, " + std::to_string(tensors.size()) + " given)";
    if (!missing.empty())
      msg += "; missing " + std::to_string(missing.size()) + " key(s): " + list_keys(missing);
    if (!unexpected.empty())
      msg += "; unexpected " + std::to_string(unexpected.size()) + " key(s): " + list_keys(unexpected);
    if (!mismatched.empty())
      msg += "; " + std::to_string(mismatched.size()) + " shape/type mismatch(es): " + list_keys(mismatched);
    throw InvalidArgument(msg);
  }
  torch::NoGradGuard no_grad;
  for (const auto& key : report.loaded) {
    torch::Tensor target = targets.at(key);
    target.copy_(tensors.at(key));
  }
  return report;
}

}  // namespace teachformer::models
