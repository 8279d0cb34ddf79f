// teachformer models: every registered model with its parameters and GFLOPs at an input size (optionally timed).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "common.hpp"
#include "teachformer/bench/bench.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/runtime.hpp"
#include "teachformer/models/model_info.hpp"
#include "teachformer/models/registry.hpp"

namespace teachformer::app {
namespace {

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

void register_models(CLI::App& parent) {
  auto* cmd = parent.add_subcommand(
      "models",
      "List every model with its parameters and GFLOPs (one forward, analytic count) at an input size; default "
      "options with in_channels set from --input. --time also measures the forward (eval, inference mode, random "
      "weights and input).");
  struct Args {
    std::string input = "2x96x96x96";
    std::vector<std::string> models, options;
    int time = 0;
    bool json = false;
  };
  static Args a;
  cmd->add_option("--input", a.input, "Input shape CxDxHxW or BxCxDxHxW")->capture_default_str();
  cmd->add_option("-m,--model", a.models, "Only these models (repeatable; default all)");
  cmd->add_option("--options", a.options,
                  "Options of one model as KEY=JSON or KEY=FILE (repeatable), e.g. hdenseformer='{\"image_size\":96}'");
  cmd->add_option("--time", a.time, "Also time this many forwards after one warm-up (median, seconds; peak RSS)")
      ->capture_default_str()
      ->check(kNonNegativeNumber);
  cmd->add_flag("--json", a.json, "Print one JSON object per model instead of a table");
  set_command(cmd, [] {
    const std::vector<int64_t> shape = bench::parse_bench_shape(a.input, "--input");
    std::map<std::string, nlohmann::json> per_model;
    for (const auto& spec : a.options) {
      const auto eq = spec.find('=');
      TF_CHECK(eq != std::string::npos && eq > 0, InvalidArgument, "--options '", spec,
               "': expected MODEL=JSON or MODEL=FILE");
      const std::string key = spec.substr(0, eq);
      models::require_model_key(key);
      per_model[key] = json_from_string_or_file(spec.substr(eq + 1));
    }
    std::vector<std::string> keys = a.models.empty() ? models::model_keys() : a.models;
    for (const auto& key : keys) models::require_model_key(key);
    for (const auto& [key, _] : per_model)
      TF_CHECK(std::find(keys.begin(), keys.end(), key) != keys.end(), InvalidArgument, "--options for '", key,
               "' but that model is not listed (-m)");
    if (!a.json)
      std::printf("%-14s %12s %10s %10s %10s  %s\n", "model", "parameters", "GFLOPs", a.time ? "forward_s" : "",
                  a.time ? "peak_MiB" : "", "output / note");
    for (const auto& key : keys) {
      nlohmann::json options = per_model.count(key) ? per_model[key] : nlohmann::json::object();
      if (!options.contains("in_channels")) options["in_channels"] = shape[1];
      nlohmann::json row = {{"model", key}, {"input", shape}};
      try {
        auto model = models::create_model(key, options);
        const models::ModelInfo info = models::describe_model(*model, shape);
        row["info"] = models::to_json(info);
        row["options"] = model->spec().options;
        if (a.time > 0) {
          reset_peak_rss();
          model->eval();
          torch::InferenceMode guard;
          const torch::Tensor x = torch::randn(shape);
          const models::TapRequest prediction{false, false, false, false};  // what `predict` asks for
          model->forward(x, prediction);
          std::vector<double> times;
          for (int i = 0; i < a.time; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            model->forward(x, prediction);
            times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          }
          std::sort(times.begin(), times.end());
          row["forward_s"] = times[times.size() / 2];
          row["forward_runs"] = times;
          row["peak_rss_mib"] = peak_rss_mib();
          row["achieved_gflops_per_s"] = info.gflops / times[times.size() / 2];
        }
        if (a.json) {
          std::printf("%s\n", row.dump().c_str());
        } else {
          char seconds[32] = "", mib[32] = "";
          if (a.time) {
            std::snprintf(seconds, sizeof seconds, "%.3f", row["forward_s"].get<double>());
            std::snprintf(mib, sizeof mib, "%.0f", row["peak_rss_mib"].get<double>());
          }
          std::printf("%-14s %12s %10.2f %10s %10s  %s\n", key.c_str(), with_commas(info.parameters).c_str(),
                      info.gflops, seconds, mib, bench::shape_string(info.output_shape).c_str());
        }
      } catch (const Error& e) {
        // A model whose constraints reject this input (or these options) says why instead of numbers.
        row["error"] = e.what();
        if (a.json)
          std::printf("%s\n", row.dump().c_str());
        else
          std::printf("%-14s %12s %10s %10s %10s  %s\n", key.c_str(), "-", "-", "", "", e.what());
      }
      std::fflush(stdout);
    }
    return 0;
  });
}

}  // namespace teachformer::app
