// teachformer preprocess: resample onto the reference grid (or the HECKTOR bbox), normalise per channel, and write
// each case once as safetensors with plan.json, dataset.json and fingerprint.json.
#include <cstdio>

#include "common.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/data/preprocessed.hpp"

namespace teachformer::app {
namespace {

Vec3 parse_spacing(const std::string& text) {
  double a = 0, b = 0, c = 0;
  char tail = 0;
  const int n = std::sscanf(text.c_str(), "%lf,%lf,%lf%c", &a, &b, &c, &tail);
  TF_CHECK(n == 3 && a > 0 && b > 0 && c > 0, InvalidArgument,
           "--target-spacing: expected three positive numbers X,Y,Z in mm, got '", text, "'");
  return {a, b, c};
}

}  // namespace

void register_preprocess(CLI::App& parent) {
  auto* cmd = parent.add_subcommand("preprocess", "Resample, crop and normalise a raw dataset into safetensors cases");
  static std::string root, out, format, spacing, ct_window = "fixed", interpolation = "linear", lesion_check = "warn";
  static std::vector<std::string> norms;
  static int workers = 1;
  cmd->add_option("dataset", root, "Raw dataset folder")->required();
  cmd->add_option("-o,--output", out, "Output folder")->required();
  cmd->add_option("--format", format, "Layout (default: detected): nnunet, msd, hecktor2021, hecktor2022, picai, dicom")
      ->check(CLI::IsMember({"nnunet", "msd", "hecktor2021", "hecktor2022", "picai", "dicom"}));
  cmd->add_option("--target-spacing", spacing,
                  "Voxel size X,Y,Z in mm (HECKTOR: of the bbox grid, default 1,1,1; others: default keep the "
                  "reference grid)");
  cmd->add_option("--ct-window", ct_window, "CT window: fixed [-1024, 1024] or fingerprint (foreground p0.5..p99.5)")
      ->check(CLI::IsMember({"fixed", "fingerprint"}))
      ->capture_default_str();
  cmd->add_option("--interpolation", interpolation, "Image interpolation: linear or bspline (labels: nearest)")
      ->check(CLI::IsMember({"linear", "bspline"}))
      ->capture_default_str();
  cmd->add_option("--lesion-check", lesion_check, "When resampling changes a label's lesion count: off, warn or error")
      ->check(CLI::IsMember({"off", "warn", "error"}))
      ->capture_default_str();
  cmd->add_option("--norm", norms,
                  "Normalisation of a channel, NAME=SCHEME with SCHEME zscore, none, window:LOWER,UPPER or "
                  "scale:OFFSET,DIVISOR (repeatable; needed for channel names without a default)");
  cmd->add_option("--workers", workers, "Cases processed at once (each with 1 torch thread)")->capture_default_str();
  set_command(cmd, [] {
    data::PreprocessOptions o;
    o.workers = workers;
    if (!spacing.empty()) o.plan.target_spacing = parse_spacing(spacing);
    o.plan.ct_window = data::ct_window_from_string(ct_window);
    o.plan.image_interpolation = transforms::interpolation_from_string(interpolation, "--interpolation");
    o.plan.lesion_check = transforms::lesion_check_from_string(lesion_check, "--lesion-check");
    for (const auto& n : norms) {
      const auto eq = n.find('=');
      TF_CHECK(eq != std::string::npos && eq > 0, InvalidArgument, "--norm: expected NAME=SCHEME, got '", n, "'");
      o.plan.normalization[n.substr(0, eq)] = transforms::parse_normalization(n.substr(eq + 1), "--norm " + n);
    }
    std::optional<data::DatasetFormat> f;
    if (!format.empty()) f = data::format_from_string(format);
    const data::Dataset ds = data::open_dataset(root, f);
    const data::PreprocessSummary s = data::preprocess_dataset(ds, out, o);
    for (const auto& c : s.plan.channels)
      std::printf("  %-6s %s\n", c.name.c_str(), c.normalization.describe().c_str());
    std::printf("preprocess: %s (%s): wrote %lld case(s), skipped %lld finished, %zu warning(s), %.1f s -> %s\n",
                ds.name.c_str(), data::to_string(ds.format).c_str(), (long long)s.written, (long long)s.skipped,
                s.warnings.size(), s.seconds, out.c_str());
    return 0;
  }, graceful_stop());
}

}  // namespace teachformer::app
