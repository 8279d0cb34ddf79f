#include "teachformer/losses/loss_breakdown.hpp"

#include <iomanip>
#include <sstream>

#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::losses {

void LossBreakdown::add_term(const std::string& name, torch::Tensor value) {
  TF_CHECK(!has_term(name), InvalidArgument, "LossBreakdown: term '", name, "' is already present; terms are ",
           term_names());
  TF_CHECK(value.defined() && value.dim() == 0, InvalidArgument, "LossBreakdown: term '", name,
           "' must be a 0-dim tensor, got ", value.defined() ? value.sizes().vec() : std::vector<int64_t>{});
  terms.emplace_back(name, std::move(value));
}

bool LossBreakdown::has_term(const std::string& name) const {
  for (const auto& [n, v] : terms)
    if (n == name) return true;
  return false;
}

const torch::Tensor& LossBreakdown::term(const std::string& name) const {
  for (const auto& [n, v] : terms)
    if (n == name) return v;
  TF_THROW(InvalidArgument, "LossBreakdown: no term '", name, "'; terms are ", term_names());
}

std::vector<std::string> LossBreakdown::term_names() const {
  std::vector<std::string> names;
  names.reserve(terms.size());
  for (const auto& [n, v] : terms) names.push_back(n);
  return names;
}

void LossBreakdown::append_terms(const LossBreakdown& other, const std::string& prefix) {
  for (const auto& [n, v] : other.terms) add_term(prefix + n, v);
}

std::vector<std::pair<std::string, double>> LossBreakdown::values() const {
  std::vector<std::pair<std::string, double>> out;
  out.reserve(terms.size() + 1);
  if (total.defined()) out.emplace_back("total", total.detach().to(torch::kDouble).item<double>());
  for (const auto& [n, v] : terms) out.emplace_back(n, v.detach().to(torch::kDouble).item<double>());
  return out;
}

std::string LossBreakdown::summary(int precision) const {
  std::ostringstream os;
  os << std::setprecision(precision);
  bool first = true;
  for (const auto& [n, v] : values()) {
    if (!first) os << ' ';
    os << n << ' ' << v;
    first = false;
  }
  return os.str();
}

}  // namespace teachformer::losses
