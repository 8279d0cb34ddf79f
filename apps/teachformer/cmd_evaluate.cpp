// teachformer evaluate: score a folder of predictions against a folder of references under a challenge protocol.
#include <cstdio>
#include <string>
#include <vector>

#include "common.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/metrics/protocols.hpp"

namespace teachformer::app {

namespace {

struct EvaluateArgs {
  std::string ref, pred, output, protocol = "generic", bbox, ref_suffix, pred_suffix, picai_input = "auto",
                                candidate_threshold = "dynamic";
  std::vector<int> labels;
  double nsd_tolerance = 2.0, percentile = 95.0, geometry_tolerance = 1e-3, min_overlap = 0.1;
  int64_t min_voxels = 10;
  bool hecktor_official = false;
};

// The flags, grouped as the help prints them, every default shown.
void add_evaluate_flags(CLI::App* cmd, EvaluateArgs& a) {
  const std::string io = "Input and output", proto = "Protocol", surf = "Surface distances", hk = "HECKTOR 2021",
                    pc = "PI-CAI";
  cmd->add_option("--ref", a.ref, "Folder of reference label maps")->required()->group(io);
  cmd->add_option("--pred", a.pred, "Folder of predictions (label maps; detection or softmax maps for picai)")
      ->required()
      ->group(io);
  cmd->add_option("-o,--output", a.output,
                  "Output folder, or a path ending in .json for the summary (cases.csv goes beside it); "
                  "default: <pred>/summary.json")
      ->group(io);
  cmd->add_option("--ref-suffix", a.ref_suffix, "Suffix stripped from reference file names to form case ids (e.g. _gtvt)")
      ->group(io);
  cmd->add_option("--pred-suffix", a.pred_suffix,
                  "Suffix stripped from prediction file names to form case ids (e.g. _detection_map)")
      ->group(io);
  cmd->add_option("--geometry-tolerance", a.geometry_tolerance,
                  "Largest spacing/origin difference (mm) between a prediction and its reference")
      ->capture_default_str()
      ->check(kNonNegativeNumber)
      ->group(io);
  cmd->add_option("--protocol", a.protocol, "generic, hecktor2021, hecktor2022 or picai")
      ->capture_default_str()
      ->check(CLI::IsMember(metrics::protocol_names()))
      ->group(proto);
  cmd->add_option("--labels", a.labels,
                  "Labels to evaluate, comma separated (default: generic all found; hecktor2021 any non-zero; "
                  "hecktor2022 1,2)")
      ->delimiter(',')
      ->check(CLI::Range(1, 255))
      ->group(proto);
  cmd->add_option("--percentile", a.percentile, "Percentile of the robust Hausdorff distance (HD95)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0))
      ->group(surf);
  cmd->add_option("--nsd-tolerance", a.nsd_tolerance, "Normalised surface Dice tolerance in mm (generic, hecktor2022)")
      ->capture_default_str()
      ->check(kNonNegativeNumber)
      ->group(surf);
  cmd->add_option("--bbox", a.bbox, "Bounding-box CSV (PatientID,x1,x2,y1,y2,z1,z2 in mm); crop to it")
      ->check(CLI::ExistingFile)
      ->group(hk);
  cmd->add_flag("--hecktor-official", a.hecktor_official,
                "Reproduce the official evaluator's quirks (spacing in x,y,z order on z,y,x arrays; HD95 0 for an "
                "empty prediction)")
      ->group(hk);
  cmd->add_option("--picai-input", a.picai_input, "auto, detection or softmax")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "detection", "softmax"}))
      ->group(pc);
  cmd->add_option("--candidate-threshold", a.candidate_threshold,
                  "Lesion candidates from softmax maps: dynamic, dynamic-fast or a probability")
      ->capture_default_str()
      ->group(pc);
  cmd->add_option("--min-voxels", a.min_voxels, "Candidates with at most this many voxels are dropped")
      ->capture_default_str()
      ->check(kNonNegativeNumber)
      ->group(pc);
  cmd->add_option("--min-overlap", a.min_overlap, "Minimal IoU of a hit")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->group(pc);

}

// The library's options from the flags.
void apply_flags(const EvaluateArgs& a, metrics::EvaluateOptions& o) {
  o.labels = a.labels;
  o.bbox_csv = a.bbox;
  o.hecktor_official = a.hecktor_official;
  o.nsd_tolerance_mm = a.nsd_tolerance;
  o.percentile = a.percentile;
  o.geometry_tolerance_mm = a.geometry_tolerance;
  o.ref_suffix = a.ref_suffix;
  o.pred_suffix = a.pred_suffix;
  o.picai_input = metrics::picai_input_from_string(a.picai_input);
  metrics::picai::parse_threshold(a.candidate_threshold, o.candidates);
  o.candidates.min_voxels = a.min_voxels;
  o.matching.min_overlap = a.min_overlap;
  o.progress = default_progress_mode();
}

}  // namespace

void register_evaluate(CLI::App& parent) {
  auto* cmd = parent.add_subcommand(
      "evaluate",
      "Score predictions against references (summary.json in nnU-Net's layout, cases.csv; metrics.json for picai). "
      "Global options --threads and --quiet apply.");
  static EvaluateArgs a;
  add_evaluate_flags(cmd, a);
  set_command(cmd, [cmd] {
    metrics::EvaluateOptions o;
    o.protocol = metrics::protocol_from_string(a.protocol);
    // Options that belong to another protocol are usage errors, never silently ignored.
    std::vector<std::string> given;
    for (const auto& flag : metrics::protocol_specific_flags())
      if (cmd->count(flag) > 0) given.push_back(flag);
    const std::string misuse = metrics::unused_flag_message(o.protocol, given);
    if (!misuse.empty()) {
      std::fprintf(stderr, "usage error: %s\n", misuse.c_str());
      return static_cast<int>(kUsageError);
    }
    apply_flags(a, o);

    const metrics::EvaluationResult r = metrics::evaluate_folders(a.ref, a.pred, o);
    const metrics::OutputPaths paths =
        metrics::output_paths(a.output.empty() ? std::filesystem::path(a.pred) : std::filesystem::path(a.output));
    metrics::write_evaluation(r, paths);
    std::printf("%s", r.table.c_str());
    std::printf("wrote %s and %s", paths.summary.c_str(), paths.cases_csv.c_str());
    if (r.picai_metrics) std::printf(" and %s", paths.picai_metrics.c_str());
    std::printf("\n");
    return 0;
  });
}

}  // namespace teachformer::app
