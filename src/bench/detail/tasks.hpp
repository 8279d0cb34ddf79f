// The measurements run_bench_task dispatches to (one per task kind); see bench/bench.hpp for the task fields.
#pragma once
#include <nlohmann/json.hpp>

namespace teachformer::bench::detail {

/// {"params", "spec", "options", "gflops", "macs_by_kind", "output_shape", "seconds", "runs", "peak_rss_mb",
///  "rss_model_mb"}
nlohmann::json bench_forward(const nlohmann::json& task);
/// {"params", "spec", "options", "seconds", "runs", "loss", "peak_rss_mb"}
nlohmann::json bench_train_step(const nlohmann::json& task);
/// {"mode", "params", "spec", "teachers", "grid", "seconds", "runs", "loss", "terms", "peak_rss_mb"}
nlohmann::json bench_distill_step(const nlohmann::json& task);
/// {"params", "spec", "options", "windows", "seconds", "runs", "peak_rss_mb"}
nlohmann::json bench_window(const nlohmann::json& task);
/// {"case", "label_shape", "load_s", "first_s", "seconds", "runs", "network_s", "peak_rss_mb"}
nlohmann::json bench_end_to_end(const nlohmann::json& task);

}  // namespace teachformer::bench::detail
