// The experiment's comparison table: per model its cost and its held-out scores averaged over seeds, and for every
// student the paired per-case difference against the lone student (pooled over seeds) with a bootstrap CI and the
// Wilcoxon p; as markdown, CSV and JSON.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/pipeline/experiment.hpp"

namespace teachformer::pipeline::detail {

/// One model's results in one seed.
struct ModelSeedResult {
  std::string name, role, terms, note;
  /// The training stage's record (parameters, gflops, val_dice, seconds, model ...).
  nlohmann::json stage;
  std::map<std::string, double> case_dice;
  std::vector<double> hd95;
  double auroc = 0, ap = 0;
  double seconds_per_case = 0, peak_rss_mib = 0;
};

struct SeedTable {
  uint64_t seed = 0;
  std::vector<ModelSeedResult> models;
};

struct TableInput {
  std::string preset, source, protocol, held_out_source;
  std::vector<std::string> scored_cases;
  std::vector<uint64_t> seeds;
  bool vary_data = false;
  std::vector<SeedTable> seeds_tables;
};

/// Rows, markdown table (without the heading), CSV and JSON.
ExperimentResult build_table(const TableInput& input);
/// The heading paragraph of results.md: data, scored cases, protocol, seeds, wall time.
std::string table_heading(const TableInput& input, double seconds);

}  // namespace teachformer::pipeline::detail
