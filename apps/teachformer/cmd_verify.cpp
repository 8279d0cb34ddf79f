// teachformer verify: every problem of a raw dataset at once, one line each; exit 1 when there are errors.
#include <cstdio>

#include "common.hpp"
#include "teachformer/data/verify.hpp"

namespace teachformer::app {

void register_verify(CLI::App& parent) {
  auto* cmd = parent.add_subcommand("verify", "Check a raw dataset (nnU-Net v2, MSD, HECKTOR, PI-CAI) and list every problem");
  static std::string root, format;
  static int workers = 1;
  static bool headers_only = false;
  static double tolerance_mm = 1e-3;
  cmd->add_option("dataset", root, "Dataset folder")->required();
  cmd->add_option("--format", format, "Layout (default: detected): nnunet, msd, hecktor2021, hecktor2022, picai, dicom")
      ->check(CLI::IsMember({"nnunet", "msd", "hecktor2021", "hecktor2022", "picai", "dicom"}));
  cmd->add_option("--workers", workers, "Cases checked at once")->capture_default_str();
  cmd->add_flag("--headers-only", headers_only, "Skip the voxel checks (NaN/Inf, label values, empty labels)");
  cmd->add_option("--tolerance-mm", tolerance_mm, "Largest spacing/origin difference between grids that must match")
      ->capture_default_str();
  set_command(cmd, [] {
    data::VerifyOptions o;
    o.workers = workers;
    o.check_voxels = !headers_only;
    o.tolerance_mm = tolerance_mm;
    std::optional<data::DatasetFormat> f;
    if (!format.empty()) f = data::format_from_string(format);
    const data::VerifyReport r = data::verify_dataset(root, f, o);
    for (const auto& p : r.problems) std::printf("%s\n", p.to_string().c_str());
    std::printf("verify: %s (%s): %lld labelled and %lld unlabelled case(s) checked, %d error(s), %d warning(s)\n",
                r.name.c_str(), data::to_string(r.format).c_str(), (long long)r.labelled, (long long)r.unlabelled,
                r.errors(), r.warnings());
    return r.errors() > 0 ? int(kRuntimeError) : int(kOk);
  });
}

}  // namespace teachformer::app
