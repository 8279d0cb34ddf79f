#include "teachformer/train/optim.hpp"

#include <cmath>

#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::train {

OptimizerOptions optimizer_options_from_json(const nlohmann::json& j) {
  OptimizerOptions o;
  JsonReader r(j, "optimizer options");
  r.get("name", o.name).get("lr", o.lr).get("weight_decay", o.weight_decay).get("betas", o.betas);
  r.get("eps", o.eps).get("momentum", o.momentum).get("nesterov", o.nesterov);
  r.finish();
  TF_CHECK(o.name == "adamw" || o.name == "sgd", ConfigError, "optimizer options: name must be adamw or sgd, got '",
           o.name, "'");
  TF_CHECK(o.lr > 0, ConfigError, "optimizer options: lr must be > 0, got ", o.lr);
  TF_CHECK(o.betas.size() == 2, ConfigError, "optimizer options: betas must have two values, got ", o.betas);
  return o;
}

nlohmann::json to_json(const OptimizerOptions& o) {
  return {{"name", o.name}, {"lr", o.lr},         {"weight_decay", o.weight_decay}, {"betas", o.betas},
          {"eps", o.eps},   {"momentum", o.momentum}, {"nesterov", o.nesterov}};
}

ScheduleOptions schedule_options_from_json(const nlohmann::json& j) {
  ScheduleOptions s;
  JsonReader r(j, "schedule options");
  r.get("name", s.name).get("exponent", s.exponent).get("warmup_steps", s.warmup_steps).get("min_lr", s.min_lr);
  r.finish();
  TF_CHECK(s.name == "poly" || s.name == "cosine" || s.name == "constant", ConfigError,
           "schedule options: name must be poly, cosine or constant, got '", s.name, "'");
  TF_CHECK(s.warmup_steps >= 0, ConfigError, "schedule options: warmup_steps must be >= 0");
  return s;
}

nlohmann::json to_json(const ScheduleOptions& s) {
  return {{"name", s.name}, {"exponent", s.exponent}, {"warmup_steps", s.warmup_steps}, {"min_lr", s.min_lr}};
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const NamedParameters& params, const OptimizerOptions& o) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    (p.dim() > 1 ? decay : no_decay).push_back(p);
  }
  if (o.name == "adamw") {
    auto make = [&](double wd) {
      return std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(o.lr).betas({o.betas[0], o.betas[1]}).eps(o.eps).weight_decay(wd));
    };
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, make(o.weight_decay));
    groups.emplace_back(no_decay, make(0.0));
    return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(o.lr));
  }
  auto make = [&](double wd) {
    return std::make_unique<torch::optim::SGDOptions>(
        torch::optim::SGDOptions(o.lr).momentum(o.momentum).nesterov(o.nesterov).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, make(o.weight_decay));
  groups.emplace_back(no_decay, make(0.0));
  return std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(o.lr));
}

double scheduled_lr(const ScheduleOptions& s, double peak_lr, int64_t step, int64_t total_steps) {
  if (s.warmup_steps > 0 && step < s.warmup_steps) return peak_lr * double(step + 1) / double(s.warmup_steps);
  if (s.name == "constant") return peak_lr;
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - s.warmup_steps);
  const double t = std::clamp(double(step - s.warmup_steps) / double(decay_steps), 0.0, 1.0);
  const double factor = s.name == "poly" ? std::pow(1.0 - t, s.exponent) : 0.5 * (1.0 + std::cos(M_PI * t));
  return s.min_lr + (peak_lr - s.min_lr) * factor;
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

namespace {
// LibTorch 1.13 keys optimizer state by the printed TensorImpl pointer, 2.x by the pointer itself.
template <typename Optimizer>
auto state_key(Optimizer& optimizer, const torch::Tensor& p) {
  using Key = typename std::decay_t<decltype(optimizer.state())>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    return c10::guts::to_string(p.unsafeGetTensorImpl());
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

template <typename Fn>
void for_each_state(torch::optim::Optimizer& optimizer, const NamedParameters& params, Fn fn) {
  for (const auto& [name, p] : params) {
    auto it = optimizer.state().find(state_key(optimizer, p));
    fn(name, p, it == optimizer.state().end() ? nullptr : it->second.get());
  }
}
}  // namespace

std::map<std::string, torch::Tensor> optimizer_state(torch::optim::Optimizer& optimizer,
                                                     const NamedParameters& params) {
  std::map<std::string, torch::Tensor> out;
  for_each_state(optimizer, params, [&](const std::string& name, const torch::Tensor&,
                                        torch::optim::OptimizerParamState* st) {
    if (!st) return;
    if (auto* a = dynamic_cast<torch::optim::AdamWParamState*>(st)) {
      out[name + ".step"] = torch::tensor(int64_t(a->step()));
      out[name + ".exp_avg"] = a->exp_avg().detach().clone().cpu();
      out[name + ".exp_avg_sq"] = a->exp_avg_sq().detach().clone().cpu();
    } else if (auto* s = dynamic_cast<torch::optim::SGDParamState*>(st)) {
      out[name + ".momentum_buffer"] = s->momentum_buffer().detach().clone().cpu();
    }
  });
  return out;
}

void load_optimizer_state(torch::optim::Optimizer& optimizer, const NamedParameters& params,
                          const std::map<std::string, torch::Tensor>& state) {
  const bool adam = dynamic_cast<torch::optim::AdamW*>(&optimizer) != nullptr;
  for (const auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    const auto key = state_key(optimizer, p);
    auto fetch = [&](const std::string& field) -> const torch::Tensor* {
      auto it = state.find(name + "." + field);
      return it == state.end() ? nullptr : &it->second;
    };
    if (adam) {
      const auto* step = fetch("step");
      if (!step) continue;  // parameter never stepped
      const auto* m = fetch("exp_avg");
      const auto* v = fetch("exp_avg_sq");
      TF_CHECK(m && v && m->sizes() == p.sizes() && v->sizes() == p.sizes(), InvalidArgument,
               "optimizer state for '", name, "' is missing or has the wrong shape");
      auto st = std::make_unique<torch::optim::AdamWParamState>();
      st->step(step->item<int64_t>());
      st->exp_avg(m->to(p.device(), p.scalar_type()).clone());
      st->exp_avg_sq(v->to(p.device(), p.scalar_type()).clone());
      optimizer.state()[key] = std::move(st);
    } else {
      const auto* b = fetch("momentum_buffer");
      if (!b) continue;
      TF_CHECK(b->sizes() == p.sizes(), InvalidArgument, "optimizer state for '", name, "' has the wrong shape");
      auto st = std::make_unique<torch::optim::SGDParamState>();
      st->momentum_buffer(b->to(p.device(), p.scalar_type()).clone());
      optimizer.state()[key] = std::move(st);
    }
  }
}

}  // namespace teachformer::train
