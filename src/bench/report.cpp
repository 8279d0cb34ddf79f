// The benchmark's report: machine description, targets, and the markdown / CSV / JSON forms (bench/bench.hpp).
#include <sys/utsname.h>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <sstream>

#include "teachformer/core/runtime.hpp"
#include "teachformer/bench/bench.hpp"
#include "teachformer/version.hpp"

namespace teachformer::bench {
namespace {

using Json = nlohmann::json;

std::string proc_field(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const auto start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? std::string() : line.substr(start);
  }
  return {};
}

// The value after "<key>" up to the end of its line or the next comma in LibTorch's configuration text.
std::string config_value(const std::string& config, const std::string& key) {
  const auto pos = config.find(key);
  if (pos == std::string::npos) return {};
  const auto start = pos + key.size();
  const auto end = config.find_first_of(",\n", start);
  std::string v = config.substr(start, end == std::string::npos ? std::string::npos : end - start);
  const auto b = v.find_first_not_of(" \t:=");
  return b == std::string::npos ? std::string() : v.substr(b);
}

std::string num(const Json& v, const char* fmt = "%.3g") {
  if (!v.is_number()) return "";
  const double d = v.get<double>();
  if (!std::isfinite(d)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, d);
  return buf;
}

// Seconds: 3 significant digits below 100 s, whole seconds above.
std::string secs(const Json& v) {
  if (!v.is_number()) return "";
  return num(v, v.get<double>() >= 100 ? "%.0f" : "%.3g");
}

std::string mib(const Json& v) { return num(v, "%.0f"); }

std::string with_commas(const Json& v) {
  if (!v.is_number_integer()) return "";
  const std::string digits = std::to_string(v.get<int64_t>());
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string str(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) out += (out.empty() ? "" : ", ") + str(e);
    return out;
  }
  if (v.is_null()) return "";
  return v.dump();
}

std::string runs(const Json& v) { return v.is_array() ? std::to_string(v.size()) : ""; }

// A markdown table from a header and rows; rows without any value besides the first `keys` columns are dropped by
// the caller.
std::string table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string out = "|";
  for (const auto& h : header) out += " " + h + " |";
  out += "\n|";
  for (size_t i = 0; i < header.size(); ++i) out += i < 2 ? "---|" : "---:|";
  out += "\n";
  for (const auto& r : rows) {
    out += "|";
    for (const auto& c : r) out += " " + c + " |";
    out += "\n";
  }
  return out;
}

bool has(const Json& row, const char* key) { return row.contains(key) && !row[key].is_null(); }

}  // namespace

Json describe_machine(double matmul_gflops, int matmul_size) {
  Json m;
  m["cpu"] = proc_field("/proc/cpuinfo", "model name");
  m["cores"] = hardware_threads();
  const std::string mem = proc_field("/proc/meminfo", "MemTotal");
  m["memory_gib"] = mem.empty() ? 0.0 : std::atof(mem.c_str()) / (1024.0 * 1024.0);
  std::ifstream load("/proc/loadavg");
  double l1 = 0, l5 = 0, l15 = 0;
  load >> l1 >> l5 >> l15;
  m["load_average"] = {l1, l5, l15};
  struct utsname u {};
  m["os"] = ::uname(&u) == 0 ? std::string(u.sysname) + " " + u.release : std::string();
  m["libtorch"] = TORCH_VERSION;
  const std::string config = at::show_config();
  m["cpu_capability"] = config_value(config, "CPU capability usage");
  m["mkldnn"] = at::hasMKLDNN();
  m["parallel_backend"] = config_value(at::get_parallel_info(), "ATen parallel backend");
  const BlasInfo blas = blas_info();
  m["blas"] = blas.library;
  m["blas_kernels"] = blas.core;
  m["blas_config"] = blas.config;
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  m["openblas_coretype"] = coretype ? coretype : "";
  m["threads"] = num_threads();
  m["matmul_size"] = matmul_size;
  m["matmul_gflops"] = matmul_gflops;
  m["teachformer"] = kVersion;
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  m["date"] = date;
  return m;
}

std::vector<Json> evaluate_targets(const std::vector<Json>& rows, const std::string& student, double matmul_gflops) {
  std::vector<Json> out;
  auto add = [&](const std::string& target, double value, double limit, const std::string& unit, bool at_least) {
    out.push_back({{"target", target},
                   {"value", value},
                   {"limit", limit},
                   {"unit", unit},
                   {"met", at_least ? value >= limit : value <= limit}});
  };
  const auto precision = [](const Json& row) { return row.value("precision", std::string("fp32")); };
  for (const auto& s : rows) {
    if (s.value("model", "") != student) continue;
    const std::string in = s.value("input", "");
    if (has(s, "forward_s") && s["forward_s"].get<double>() > 0 && precision(s) != "fp32") {
      for (const auto& t : rows)
        if (t.value("model", "") == student && t.value("input", "") == in && precision(t) == "fp32" &&
            has(t, "forward_s"))
          add(student + " " + precision(s) + " forward >= 2x faster than fp32 at " + in,
              t["forward_s"].get<double>() / s["forward_s"].get<double>(), 2, "x", true);
      continue;
    }
    if (has(s, "forward_s") && s["forward_s"].get<double>() > 0) {
      const double fs = s["forward_s"].get<double>();
      for (const auto& t : rows) {
        if (t.value("input", "") != in || !has(t, "forward_s") || precision(t) != "fp32") continue;
        const std::string key = t.value("key", "");
        const bool swin48 = key == "swin_unetr" && t.contains("options") &&
                            t["options"].value("feature_size", int64_t(0)) == 48;
        if (key == "unetr")
          add(student + " forward >= 50x faster than " + t["model"].get<std::string>() + " at " + in,
              t["forward_s"].get<double>() / fs, 50, "x", true);
        if (swin48)
          add(student + " forward >= 100x faster than " + t["model"].get<std::string>() + " (feature 48) at " + in,
              t["forward_s"].get<double>() / fs, 100, "x", true);
      }
      if (matmul_gflops > 0 && has(s, "gflops_per_s"))
        add(student + " reaches >= 30% of the matmul peak (" + num(Json(matmul_gflops), "%.1f") + " GFLOP/s) at " + in,
            100.0 * s["gflops_per_s"].get<double>() / matmul_gflops, 30, "%", true);
    }
    if (has(s, "e2e_s")) {
      const std::string c = s.value("e2e_case", "");
      add("PET/CT case end to end (read, preprocess, sliding window, write; " + c + ") <= 1 s",
          s["e2e_s"].get<double>(), 1, "s", false);
      if (has(s, "e2e_peak_rss_mb"))
        add(student + " inference peak RSS on that case <= 1 GiB", s["e2e_peak_rss_mb"].get<double>(), 1024, "MiB",
            false);
    }
    if (has(s, "distill_cached_ratio"))
      add("distillation step with the teacher cache <= 1.3x a student-only step", s["distill_cached_ratio"].get<double>(),
          1.3, "x", false);
  }
  return out;
}

const std::vector<std::string>& bench_csv_columns() {
  static const std::vector<std::string> columns = {
      "model", "key", "input", "precision", "params", "gflops", "forward_s", "forward_runs", "forward_cpu_s", "peak_rss_mb",
      "max_rss_mb", "gflops_per_s", "matmul_fraction", "train_step_s", "train_runs", "train_cpu_s",
      "train_peak_rss_mb", "distill_student_s", "distill_cached_s", "distill_live_s", "distill_cached_ratio",
      "distill_live_ratio", "distill_student_cpu_s", "distill_cached_cpu_s", "distill_live_cpu_s",
      "distill_cached_teachers", "distill_live_teachers", "distill_student_peak_rss_mb", "distill_cached_peak_rss_mb",
      "distill_live_peak_rss_mb", "window_case", "windows", "window_s", "window_runs", "window_cpu_s",
      "window_peak_rss_mb", "agreement_vs_fp32", "rel_error_vs_fp32", "e2e_case", "e2e_bbox_mm", "e2e_load_s", "e2e_first_s", "e2e_s", "e2e_preprocess_s",
      "e2e_network_s", "e2e_restore_s", "e2e_write_s",
      "e2e_runs", "e2e_cpu_s", "e2e_peak_rss_mb", "e2e_process_s",
      "ddp_1rank_step_s", "ddp_2rank_step_s", "ddp_1rank_samples_per_s", "ddp_2rank_samples_per_s", "ddp_efficiency",
      "ddp_allreduce_mb", "ddp_buckets", "ddp_backend", "ddp_1rank_peak_rss_mb", "ddp_2rank_peak_rss_mb",
      "reference_forward_s", "reference_peak_rss_mb", "reference_train_step_s", "reference_window_s",
      "reference_window_peak_rss_mb", "error", "notes"};
  return columns;
}

std::string format_csv(const BenchReport& report) {
  auto cell = [](const Json& v) -> std::string {
    std::string s;
    if (v.is_null()) return s;
    if (v.is_array()) {
      for (const auto& e : v) s += (s.empty() ? "" : ";") + (e.is_string() ? e.get<std::string>() : e.dump());
    } else if (v.is_string()) {
      s = v.get<std::string>();
    } else if (v.is_number_float()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.6g", v.get<double>());
      s = buf;
    } else {
      s = v.dump();
    }
    if (s.find_first_of(",\"\n") != std::string::npos) {
      std::string q = "\"";
      for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
      s = q + "\"";
    }
    return s;
  };
  std::string out;
  const auto& cols = bench_csv_columns();
  for (size_t i = 0; i < cols.size(); ++i) out += (i ? "," : "") + cols[i];
  out += "\n";
  for (const auto& r : report.rows) {
    for (size_t i = 0; i < cols.size(); ++i) out += (i ? "," : "") + (r.contains(cols[i]) ? cell(r[cols[i]]) : "");
    out += "\n";
  }
  return out;
}

Json rows_json(const BenchReport& report) {
  Json a = Json::array();
  for (const auto& r : report.rows) a.push_back(r);
  return a;
}

Json to_json(const BenchReport& report) {
  return {{"machine", report.machine},
          {"settings", report.settings},
          {"rows", rows_json(report)},
          {"targets", report.targets},
          {"notes", report.notes}};
}

namespace {

using Rows = std::vector<std::vector<std::string>>;

// One table row per bench row that has `key`.
Rows collect(const std::vector<Json>& rows, const char* key,
             const std::function<std::vector<std::string>(const Json&)>& f) {
  Rows out;
  for (const auto& r : rows)
    if (has(r, key)) out.push_back(f(r));
  return out;
}

// The machine and the run settings.
std::string machine_section(const Json& m, const Json& st) {
  std::ostringstream md;
  md << "### Machine\n\n";
  std::vector<std::vector<std::string>> machine = {
      {"CPU", str(m.value("cpu", Json())) + " (" + str(m.value("cores", Json())) + " hardware threads)"},
      {"memory", num(m.value("memory_gib", Json()), "%.1f") + " GiB; load average " +
                     (m.contains("load_average") ? num(m["load_average"][0], "%.2f") + " / " +
                                                       num(m["load_average"][1], "%.2f") + " / " +
                                                       num(m["load_average"][2], "%.2f")
                                                 : std::string()) +
                     " (1 / 5 / 15 min) at the start"},
      {"OS", str(m.value("os", Json()))},
      {"LibTorch", str(m.value("libtorch", Json())) + ", CPU capability " + str(m.value("cpu_capability", Json())) +
                       (m.value("mkldnn", false) ? ", oneDNN" : "") +
                       (m.value("parallel_backend", std::string()).empty()
                            ? ""
                            : ", parallel backend " + str(m["parallel_backend"]))},
      {"BLAS", str(m.value("blas", Json())) +
                   (m.value("blas_kernels", std::string()).empty() ? "" : ", kernels " + str(m["blas_kernels"])) +
                   (m.value("openblas_coretype", std::string()).empty()
                        ? ""
                        : " (OPENBLAS_CORETYPE=" + str(m["openblas_coretype"]) + ")")},
      {"threads", str(m.value("threads", Json())) + " intra-op"},
      {"matmul peak", num(m.value("matmul_gflops", Json()), "%.1f") + " GFLOP/s (" +
                          str(m.value("matmul_size", Json())) + "^3 float32, median of 3)"},
      {"teachformer", str(m.value("teachformer", Json())) + ", " + str(m.value("date", Json()))},
  };
  md << table({"", ""}, machine) << "\n";
  md << "Settings: repeats " << str(st.value("repeats", Json())) << " (median of the timed runs after a warm-up; "
     << "no further run starts after " << num(st.value("budget_s", Json()), "%g") << " s), seed "
     << str(st.value("seed", Json())) << ".\n\n";

  return md.str();
}

// Each section is empty when no row measured it.
std::string forward_section(const std::vector<Json>& rows) {
  std::ostringstream md;
  auto fwd = collect(rows, "forward_s", [](const Json& r) {
    const bool low = r.value("precision", std::string("fp32")) != "fp32";
    return std::vector<std::string>{str(r["model"]),
                                    str(r["input"]),
                                    r.value("precision", std::string("fp32")),
                                    with_commas(r.value("params", Json())),
                                    num(r.value("gflops", Json()), "%.1f"),
                                    secs(r["forward_s"]),
                                    secs(r.value("forward_cpu_s", Json())),
                                    runs(r.value("forward_runs", Json())),
                                    mib(r.value("peak_rss_mb", Json())),
                                    num(r.value("gflops_per_s", Json()), "%.1f"),
                                    num(r.contains("matmul_fraction") ? Json(100.0 * r["matmul_fraction"].get<double>())
                                                                      : Json(),
                                        "%.0f%%"),
                                    low ? num(r.contains("agreement_vs_fp32")
                                                  ? Json(100.0 * r["agreement_vs_fp32"].get<double>())
                                                  : Json(),
                                              "%.2f%%") +
                                              " / " + num(r.contains("rel_error_vs_fp32")
                                                              ? Json(100.0 * r["rel_error_vs_fp32"].get<double>())
                                                              : Json(),
                                                          "%.2f%%")
                                        : std::string(),
                                    secs(r.value("reference_forward_s", Json()))};
  });
  if (!fwd.empty()) {
    md << "### Forward\n\nBatch 1, eval and inference mode, random weights and input. GFLOPs: analytic count of one "
          "forward (2 x MACs of convolutions, linear layers and matmuls). Peak RSS: the worker process's VmHWM "
          "(model, input and the forward's buffers, plus about the LibTorch baseline). bf16/int8 rows: the same model "
          "and input in that precision (int8 calibrated on 4 random inputs); vs fp32: the share of voxels whose class "
          "matches float32's / the logits' relative error, on random weights (the accuracy on real cases is "
          "`teachformer quantize`'s guard). Reference: MONAI 1.5 / the H-DenseFormer reference code on torch 1.13, "
          "2 threads, measured on a 2-core machine.\n\n";
    md << table({"model", "input", "precision", "parameters", "GFLOPs", "forward s", "CPU s", "runs", "peak RSS MiB",
                 "GFLOP/s", "of matmul peak", "vs fp32 (class agreement / rel. error)", "reference s"},
                fwd)
       << "\n";
  }
  return md.str();
}

// Training step per model.
std::string training_section(const std::vector<Json>& rows) {
  std::ostringstream md;
  auto tr = collect(rows, "train_step_s", [](const Json& r) {
    return std::vector<std::string>{str(r["model"]),
                                    str(r["input"]),
                                    secs(r["train_step_s"]),
                                    secs(r.value("train_cpu_s", Json())),
                                    runs(r.value("train_runs", Json())),
                                    mib(r.value("train_peak_rss_mb", Json())),
                                    secs(r.value("reference_train_step_s", Json()))};
  });
  if (!tr.empty()) {
    md << "### Training step\n\nBatch 1 at the model's patch: forward, the model's paper loss (Dice + CE with deep "
          "supervision; focal for H-DenseFormer), backward, gradient clipping, AdamW.\n\n";
    md << table({"model", "input", "step s", "CPU s", "runs", "peak RSS MiB", "reference s"}, tr) << "\n";
  }
  return md.str();
}

// Student alone, cached and live teachers.
std::string distillation_section(const std::vector<Json>& rows) {
  std::ostringstream md;
  std::vector<std::vector<std::string>> dist;
  for (const auto& r : rows) {
    for (const std::string mode : {"student", "cached", "live"}) {
      const std::string k = "distill_" + mode;
      if (!has(r, (k + "_s").c_str())) continue;
      dist.push_back({mode == "student" ? "student alone" : mode + " teachers", str(r["model"]) + " " + str(r["input"]),
                      mode == "student" ? "-" : str(r.value(k + "_teachers", Json())), secs(r[k + "_s"]),
                      secs(r.value(k + "_cpu_s", Json())), runs(r.value(k + "_runs", Json())),
                      mode == "student" ? "1" : num(r.value(k + "_ratio", Json()), "%.2f"),
                      mib(r.value(k + "_peak_rss_mb", Json()))});
    }
  }
  if (!dist.empty()) {
    md << "### Distillation step\n\nSame batch and patch: the student's supervised step; the step with DistillLoss "
          "(every KD term: prediction KD with agreement weighting, coarse and fine attention maps) on cached teacher "
          "knowledge (fp16 probabilities and maps as the cache loader crops them); and with the teachers running.\n\n";
    md << table({"mode", "student", "teachers", "step s", "CPU s", "runs", "x student alone", "peak RSS MiB"}, dist)
       << "\n";
  }
  return md.str();
}

// Sliding window per model and case.
std::string window_section(const std::vector<Json>& rows, const Json& st) {
  std::ostringstream md;
  auto win = collect(rows, "window_s", [](const Json& r) {
    const auto in = parse_bench_shape(r["input"].get<std::string>());
    return std::vector<std::string>{str(r["model"]),
                                    str(r.value("window_case", Json())),
                                    shape_string({in[2], in[3], in[4]}),
                                    str(r.value("windows", Json())),
                                    secs(r["window_s"]),
                                    secs(r.value("window_cpu_s", Json())),
                                    runs(r.value("window_runs", Json())),
                                    mib(r.value("window_peak_rss_mb", Json())),
                                    secs(r.value("reference_window_s", Json()))};
  });
  if (!win.empty()) {
    md << "### Sliding window\n\nRandom case, roi = the model's patch, overlap " << num(st.value("overlap", Json()), "%g")
       << ", Gaussian blending, probabilities accumulated, batch 1 per window.\n\n";
    md << table({"model", "case", "roi", "windows", "seconds", "CPU s", "runs", "peak RSS MiB", "reference s"}, win)
       << "\n";
  }
  return md.str();
}

// A phase of the end-to-end case: "0.384 s (34%)" of the case's median; a dash when not measured.
std::string phase(const Json& row, const char* key) {
  if (!row.contains(key) || !row[key].is_number()) return "-";
  const double v = row[key].get<double>();
  const double total = row.value("e2e_s", 0.0);
  char buf[64];
  if (total > 0) std::snprintf(buf, sizeof buf, "%.3g s (%.0f%%)", v, 100.0 * v / total);
  else std::snprintf(buf, sizeof buf, "%.3g s", v);
  return buf;
}

// One case predicted from a model folder.
std::string end_to_end_section(const std::vector<Json>& rows) {
  std::ostringstream md;
  auto e2e = collect(rows, "e2e_s", [](const Json& r) {
    return std::vector<std::string>{str(r["model"]),
                                    str(r.value("e2e_case", Json())),
                                    num(r.value("e2e_bbox_mm", Json()), "%g"),
                                    secs(r.value("e2e_load_s", Json())),
                                    secs(r.value("e2e_first_s", Json())),
                                    secs(r["e2e_s"]),
                                    secs(r.value("e2e_cpu_s", Json())),
                                    phase(r, "e2e_preprocess_s"),
                                    phase(r, "e2e_network_s"),
                                    phase(r, "e2e_restore_s"),
                                    phase(r, "e2e_write_s"),
                                    runs(r.value("e2e_runs", Json())),
                                    mib(r.value("e2e_peak_rss_mb", Json()))};
  });
  if (!e2e.empty()) {
    md << "### End to end\n\nOne synthetic PET/CT case (HECKTOR layout: CT and PET on their own grids, bbox CSV) "
          "predicted from an untrained model folder: read both images, resample into the bbox at 1 mm, normalise, "
          "sliding window, argmax, restore to the CT grid, write the .nii.gz label. \"load\" builds the predictor; "
          "\"first case\" is the first prediction in a fresh process; \"case\" the median after it. The phases "
          "(median seconds and share of the case): preprocess = read both images, resample, normalise; network = "
          "the sliding window; restore = argmax and resampling onto the CT grid; write = the label file.\n\n";
    md << table({"model", "label grid", "bbox mm", "load s", "first case s", "case s", "CPU s", "preprocess",
                 "network", "restore", "write", "runs", "peak RSS MiB"},
                e2e)
       << "\n";
  }
  return md.str();
}

// Data-parallel scaling from 1 to 2 ranks.
std::string ddp_section(const std::vector<Json>& rows) {
  std::ostringstream md;
  auto ddp = collect(rows, "ddp_1rank_step_s", [](const Json& r) {
    return std::vector<std::string>{str(r["model"]),
                                    str(r["input"]),
                                    secs(r["ddp_1rank_step_s"]),
                                    secs(r.value("ddp_2rank_step_s", Json())),
                                    num(r.value("ddp_1rank_samples_per_s", Json()), "%.3f"),
                                    num(r.value("ddp_2rank_samples_per_s", Json()), "%.3f"),
                                    num(r.value("ddp_efficiency", Json()), "%.2f"),
                                    num(r.value("ddp_allreduce_mb", Json()), "%.1f"),
                                    str(r.value("ddp_buckets", Json())),
                                    mib(r.value("ddp_2rank_peak_rss_mb", Json()))};
  });
  if (!ddp.empty()) {
    md << "### Data-parallel training step\n\nThe training step above with 1 thread per rank, batch 1 per rank: 1 rank "
          "alone, then 2 ranks on this machine (c10d, Gloo over loopback; gradients all-reduced in buckets during "
          "the backward pass). Efficiency = samples/s of 2 ranks / (2 x samples/s of 1 rank).\n\n";
    md << table({"model", "input", "1 rank step s", "2 ranks step s", "1 rank samples/s", "2 ranks samples/s",
                 "efficiency", "all-reduce MiB/step", "buckets", "rank 0 peak RSS MiB"},
                ddp)
       << "\n";
  }
  return md.str();
}

// The bench targets and whether they were met.
std::string targets_section(const BenchReport& report) {
  std::ostringstream md;
  if (!report.targets.empty()) {
    std::vector<std::vector<std::string>> t;
    for (const auto& x : report.targets)
      t.push_back({str(x["target"]), num(x["value"], "%.3g") + " " + str(x["unit"]),
                   num(x["limit"], "%g") + " " + str(x["unit"]), x["met"].get<bool>() ? "yes" : "**no**"});
    md << "### Targets\n\n" << table({"target", "value", "limit", "met"}, t) << "\n";
  }
  return md.str();
}

// Run-level and per-row notes.
std::string notes_section(const BenchReport& report) {
  std::ostringstream md;
  std::vector<std::string> notes = report.notes;
  for (const auto& r : report.rows)
    if (r.contains("notes"))
      for (const auto& n : r["notes"]) notes.push_back(str(r["model"]) + " " + str(r["input"]) + ": " + str(n));
  if (!notes.empty()) {
    md << "### Notes\n\n";
    for (const auto& n : notes) md << "- " << n << "\n";
    md << "\n";
  }
  return md.str();
}

}  // namespace

std::string format_markdown(const BenchReport& report) {
  const auto& rows = report.rows;
  return machine_section(report.machine, report.settings) + forward_section(rows) + training_section(rows) +
         distillation_section(rows) + window_section(rows, report.settings) + end_to_end_section(rows) +
         ddp_section(rows) + targets_section(report) + notes_section(report);
}

}  // namespace teachformer::bench
