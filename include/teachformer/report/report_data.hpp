// The data behind the report's table and charts, as JSON for the page (see web/report/template/report.js for the
// reader). Numbers are passed as they are in the experiment's files; the page formats them.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/report/experiment_folder.hpp"

namespace teachformer::report {

/// The table: {"columns": [{"key", "label", "digits", "source": "csv" | "extra"}], "rows": [{"model", "role",
/// "cells": {key: {"value": text as written, "spread": text or null}}}]}. Experiment: results.csv's columns (the
/// PI-CAI and undefined-HD95 columns only when some row is non-zero), the seeds' spread (Dice SD) and the paired
/// difference against the student trained alone (with its CI and Wilcoxon p) from results.json where present.
/// Model folder: parameters, GFLOPs and best validation Dice; predictions: mean Dice and median HD95.
nlohmann::json table_json(const ExperimentFolder& folder);

/// Accuracy against cost, one point per model: [{"model", "role", "parameters", "gflops", "seconds_per_case",
/// "dice", "dice_sd" (null without seeds)}]; empty without results.
nlohmann::json cost_json(const ExperimentFolder& folder);

/// Per-case metrics of every model and seed: [{"model", "role", "case", "seed", "dice", "hd95" (null when
/// undefined)}], from each predictions folder's summary.json (model folder: the last validation's per-case Dice).
nlohmann::json per_case_json(const ExperimentFolder& folder);

/// Mean and percentile-bootstrap 95% confidence interval of paired differences.
struct PairedSummary {
  double mean = 0;
  double ci_low = 0;
  double ci_high = 0;
  int64_t n = 0;
};
/// `resamples` bootstrap draws with a fixed seed (the same numbers every run).
PairedSummary paired_summary(const std::vector<double>& differences, int resamples = 2000, uint64_t seed = 0);

/// Paired Dice differences of each student against `reference` (same case and seed): {"reference", "rows":
/// [{"model", "case", "seed", "diff"}], "summary": [{"model", "mean", "ci_low", "ci_high", "n", "wilcoxon_p"}]};
/// null when the reference has no per-case results.
nlohmann::json paired_json(const ExperimentFolder& folder, const nlohmann::json& per_case,
                           const std::string& reference = "student:student_alone");

/// Training curves of every model and seed from fold_*/log.jsonl: {"points": [{"model", "seed", "panel" ("loss",
/// "weight", "validation Dice", "learning rate"), "series", "x" (epochs), "y"}], "stages": [{"model", "seed", "stage",
/// "x0", "x1"}]}. Steps are averaged in bins so that a curve has at most `max_points` points; a resumed run keeps
/// the last record of each step; loss terms that stay zero are left out.
nlohmann::json curves_json(const ExperimentFolder& folder, int max_points = 400);

}  // namespace teachformer::report
