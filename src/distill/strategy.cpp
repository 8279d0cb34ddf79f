#include "teachformer/distill/strategy.hpp"

#include <algorithm>
#include <cmath>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::distill {

const std::vector<std::string>& term_names() {
  static const std::vector<std::string> names{kTermGt, kTermKd, kTermAttnCoarse, kTermAttnFine, kTermAttnProbs};
  return names;
}

std::vector<int64_t> Strategy::boundaries(int64_t epochs) const {
  std::vector<int64_t> b{0};
  double total_fraction = 0;
  for (const auto& s : stages)
    if (s.epochs < 0) total_fraction += s.fraction;
  int64_t fixed = 0;
  for (const auto& s : stages)
    if (s.epochs >= 0) fixed += s.epochs;
  const double flexible = double(std::max<int64_t>(0, epochs - fixed));
  double acc = 0;
  for (size_t i = 0; i < stages.size(); ++i) {
    const auto& s = stages[i];
    if (i + 1 == stages.size()) {
      b.push_back(epochs);
      break;
    }
    acc += s.epochs >= 0 ? double(s.epochs) : (total_fraction > 0 ? flexible * s.fraction / total_fraction : 0.0);
    b.push_back(std::clamp<int64_t>(int64_t(std::llround(acc)), b.back(), epochs));
  }
  return b;
}

size_t Strategy::stage_at(int64_t epoch, int64_t epochs) const {
  const auto b = boundaries(epochs);
  for (size_t i = 0; i < stages.size(); ++i)
    if (epoch < b[i + 1]) return i;
  return stages.size() - 1;
}

std::map<std::string, double> Strategy::weights_at(int64_t step, int64_t epochs, int64_t steps_per_epoch) const {
  std::map<std::string, double> w;
  for (const auto& t : term_names()) w[t] = 0.0;
  if (stages.empty()) return w;
  const auto b = boundaries(epochs);
  const int64_t epoch = step / std::max<int64_t>(1, steps_per_epoch);
  const size_t i = stage_at(epoch, epochs);
  const double first = double(b[i] * steps_per_epoch);
  const double len = double((b[i + 1] - b[i]) * steps_per_epoch);
  const double t = len > 1 ? std::clamp((double(step) - first) / (len - 1), 0.0, 1.0) : 0.0;
  for (const auto& [term, ramp] : stages[i].weights) w[term] = ramp.at(t);
  return w;
}

bool Strategy::uses(const std::string& term) const {
  for (const auto& s : stages) {
    auto it = s.weights.find(term);
    if (it != s.weights.end() && (it->second.from != 0 || it->second.to != 0)) return true;
  }
  return false;
}

bool Strategy::needs_teachers() const {
  return uses(kTermKd) || uses(kTermAttnCoarse) || uses(kTermAttnFine) || uses(kTermAttnProbs);
}

namespace {
Ramp flat(double v) { return {v, v}; }
}  // namespace

std::vector<std::string> strategy_preset_names() {
  return {"teachformer", "student_alone", "hinton", "hinton_coarse", "hinton_fine", "at", "multi_no_staging"};
}

Strategy strategy_preset(const std::string& name) {
  Strategy s;
  s.name = name;
  if (name == "teachformer") {
    s.stages.push_back({"align", 0.2, -1, {{kTermGt, flat(1)}, {kTermAttnCoarse, flat(1)}, {kTermAttnFine, flat(1)}}});
    s.stages.push_back({"joint", 0.5, -1,
                        {{kTermGt, flat(1)}, {kTermKd, flat(1)}, {kTermAttnCoarse, flat(1)}, {kTermAttnFine, flat(1)}}});
    s.stages.push_back({"finetune", 0.3, -1,
                        {{kTermGt, flat(1)}, {kTermKd, flat(1)}, {kTermAttnCoarse, {1, 0}}, {kTermAttnFine, {1, 0}}}});
  } else if (name == "student_alone") {
    s.stages.push_back({"supervised", 1.0, -1, {{kTermGt, flat(1)}}});
  } else if (name == "hinton") {
    s.stages.push_back({"kd", 1.0, -1, {{kTermGt, flat(1)}, {kTermKd, flat(1)}}});
  } else if (name == "hinton_coarse") {
    s.stages.push_back({"kd", 1.0, -1, {{kTermGt, flat(1)}, {kTermKd, flat(1)}, {kTermAttnCoarse, flat(1)}}});
  } else if (name == "hinton_fine") {
    s.stages.push_back({"kd", 1.0, -1, {{kTermGt, flat(1)}, {kTermKd, flat(1)}, {kTermAttnFine, flat(1)}}});
  } else if (name == "at") {
    s.stages.push_back({"at", 1.0, -1, {{kTermGt, flat(1)}, {kTermAttnCoarse, flat(1)}, {kTermAttnFine, flat(1)}}});
  } else if (name == "multi_no_staging") {
    s.stages.push_back({"joint", 1.0, -1,
                        {{kTermGt, flat(1)}, {kTermKd, flat(1)}, {kTermAttnCoarse, flat(1)}, {kTermAttnFine, flat(1)}}});
  } else {
    TF_THROW(ConfigError, "unknown strategy '", name, "'; built-in strategies: ", strategy_preset_names(),
             " (or give {\"stages\": [...]})");
  }
  return s;
}

Strategy strategy_from_json(const nlohmann::json& j) {
  if (j.is_string()) return strategy_preset(j.get<std::string>());
  Strategy s;
  s.name = "custom";
  nlohmann::json stages = nlohmann::json::array();
  JsonReader r(j, "strategy");
  r.get("name", s.name).require("stages", stages);
  r.finish();
  TF_CHECK(stages.is_array() && !stages.empty(), ConfigError, "strategy: stages must be a non-empty list");
  for (size_t i = 0; i < stages.size(); ++i) {
    Stage st;
    st.name = "stage" + std::to_string(i + 1);
    nlohmann::json weights = nlohmann::json::object();
    JsonReader sr(stages[i], "strategy stage " + std::to_string(i + 1));
    sr.get("name", st.name).get("fraction", st.fraction).get("epochs", st.epochs).require("weights", weights);
    sr.finish();
    TF_CHECK(st.fraction >= 0 && st.fraction <= 1e6, ConfigError, "strategy stage '", st.name,
             "': fraction must be from 0 to 1e6 (fractions are relative to each other)");
    TF_CHECK(st.epochs >= -1 && st.epochs <= 1000000, ConfigError, "strategy stage '", st.name,
             "': epochs must be from 0 to 1000000 (or -1: use the fraction)");
    TF_CHECK(weights.is_object(), ConfigError, "strategy stage '", st.name, "': weights must be an object");
    for (auto it = weights.begin(); it != weights.end(); ++it) {
      const auto& names = term_names();
      TF_CHECK(std::find(names.begin(), names.end(), it.key()) != names.end(), ConfigError, "strategy stage '",
               st.name, "': unknown term '", it.key(), "'; terms are ", names);
      Ramp ramp;
      if (it->is_number()) {
        ramp = flat(it->get<double>());
      } else {
        JsonReader rr(*it, "strategy stage '" + st.name + "' weight '" + it.key() + "'");
        rr.require("from", ramp.from).require("to", ramp.to);
        rr.finish();
      }
      TF_CHECK(ramp.from >= 0 && ramp.to >= 0 && ramp.from <= 1e4 && ramp.to <= 1e4, ConfigError,
               "strategy stage '", st.name, "': weight '", it.key(), "' must be from 0 to 1e4");
      st.weights[it.key()] = ramp;
    }
    s.stages.push_back(std::move(st));
  }
  return s;
}

nlohmann::json to_json(const Strategy& s) {
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& st : s.stages) {
    nlohmann::json w = nlohmann::json::object();
    for (const auto& [term, ramp] : st.weights)
      w[term] = ramp.from == ramp.to ? nlohmann::json(ramp.from) : nlohmann::json{{"from", ramp.from}, {"to", ramp.to}};
    nlohmann::json js = {{"name", st.name}, {"weights", w}};
    if (st.epochs >= 0) js["epochs"] = st.epochs;
    else js["fraction"] = st.fraction;
    stages.push_back(js);
  }
  return {{"name", s.name}, {"stages", stages}};
}

}  // namespace teachformer::distill
