// teachformer report: the offline HTML report of an experiment, a model folder or a predictions folder.
#include <cstdio>

#include "common.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/report/report.hpp"

namespace teachformer::app {

void register_report(CLI::App& parent) {
  auto* cmd = parent.add_subcommand(
      "report", "Write DIR/report/index.html: an offline page with the table, accuracy against cost, per-case metrics, "
                "training curves, NiiVue viewers of the held-out cases and the attention maps");
  static std::string dir, ref, output;
  static report::ReportOptions o;
  static bool no_attention = false;
  cmd->add_option("DIR", dir, "Experiment folder, model folder, or predictions folder (with --ref)")->required();
  cmd->add_option("--ref", ref, "Reference labels: DIR is then a folder of predictions")->check(CLI::ExistingDirectory);
  cmd->add_option("-o,--output", output, "Report folder (default: DIR/report)");
  cmd->add_option("--max-cases", o.max_cases, "Viewers for at most this many held-out cases, worst first (0 = all)")
      ->capture_default_str()
      ->check(kNonNegativeNumber);
  cmd->add_option("--attention-case", o.attention_case,
                  "Case of the attention maps (default: the distilled student's median case)");
  cmd->add_flag("--no-attention", no_attention, "Skip the attention maps (no model is run)");
  cmd->add_flag("--png", o.png, "Also write the plots and one overlay slice per case as PNG files (headless Chromium)");
  cmd->add_option("--device", o.device, "Device for the attention maps: cpu, cuda, cuda:N or auto")->capture_default_str();
  set_command(cmd, [] {
    if (!ref.empty()) o.ref = fs::path(ref);
    if (!output.empty()) o.output = fs::path(output);
    o.attention = !no_attention;
    const auto r = report::write_report(dir, o);
    std::printf("report: %s (%.1f MiB, %lld case viewer(s), %.1f s)\n", r.index.c_str(), double(r.bytes) / (1 << 20),
                (long long)r.viewers, r.seconds);
    for (const auto& p : r.pngs) std::printf("  %s\n", p.c_str());
    return 0;
  });
}

}  // namespace teachformer::app
