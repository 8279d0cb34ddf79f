// teachformer synth: writes a multimodal phantom dataset (PET/CT or prostate MRI) in a raw layout.
#include <cstdio>

#include "common.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/strings.hpp"
#include "teachformer/data/synth.hpp"

namespace teachformer::app {
namespace {

Size3 parse_size(const std::string& text) {
  const auto v = parse_positive_ints(text, ',');
  TF_CHECK(v && v->size() == 3, InvalidArgument, "--size: expected three positive integers X,Y,Z, got '", text, "'");
  return {(*v)[0], (*v)[1], (*v)[2]};
}

}  // namespace

void register_synth(CLI::App& parent) {
  auto* cmd = parent.add_subcommand("synth", "Write a multimodal phantom dataset (PET/CT or prostate bpMRI)");
  static std::string out, kind = "petct", layout, size;
  static int cases = 8, unlabelled = 0, workers = 1;
  static uint64_t seed = 0;
  static double bbox_mm = 64.0;
  cmd->add_option("-o,--output", out, "Output folder (the dataset root)")->required();
  cmd->add_option("--kind", kind, "petct (head and neck PET/CT) or mri (prostate T2W/ADC/HBV)")
      ->check(CLI::IsMember({"petct", "mri"}))
      ->capture_default_str();
  cmd->add_option("--layout", layout,
                  "nnunet, msd, hecktor2021 (petct default), picai (mri default) or dicom (one DICOM study per case: "
                  "CT/PT or MR series, PET in Bq/mL with its SUV tags)")
      ->check(CLI::IsMember({"nnunet", "msd", "hecktor2021", "picai", "dicom"}));
  cmd->add_option("--cases", cases, "Number of cases")->capture_default_str();
  cmd->add_option("--seed", seed, "Seed of every random choice")->capture_default_str();
  cmd->add_option("--size", size,
                  "Reference grid size X,Y,Z in voxels (CT 1x1x3 mm: default 96,96,32, grown to fit --bbox-mm; "
                  "T2W 0.5x0.5x3 mm: default 128,128,16)");
  cmd->add_option("--bbox-mm", bbox_mm, "petct: bounding-box edge in mm (144 = real HECKTOR size)")->capture_default_str();
  cmd->add_option("--unlabelled", unlabelled, "The last N cases get no label (test cases)")->capture_default_str();
  cmd->add_option("--workers", workers, "Cases generated at once")->capture_default_str();
  set_command(cmd, [] {
    data::SynthOptions o;
    o.kind = data::phantom_kind_from_string(kind);
    if (!layout.empty()) o.layout = data::format_from_string(layout);
    o.cases = cases;
    o.seed = seed;
    if (!size.empty()) o.size = parse_size(size);
    o.bbox_mm = bbox_mm;
    o.unlabelled = unlabelled;
    o.workers = workers;
    const data::SynthResult r = data::synthesize(out, o);
    int64_t lesions = 0, labelled = 0;
    for (const auto& c : r.cases) {
      lesions += c.lesions;
      labelled += c.labelled ? 1 : 0;
    }
    const Size3 s = o.resolved_size();
    std::printf("synth: wrote %d %s case(s) (%lld labelled, %lld lesion(s)) in the %s layout to %s (reference grid "
                "%lld x %lld x %lld)\n",
                cases, data::to_string(o.kind).c_str(), (long long)labelled, (long long)lesions,
                data::to_string(r.layout).c_str(), out.c_str(), (long long)s[0], (long long)s[1], (long long)s[2]);
    return 0;
  });
}

}  // namespace teachformer::app
