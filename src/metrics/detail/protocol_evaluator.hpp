// One evaluator per protocol behind one interface: what a protocol checks in the options, what it needs before the
// cases run (bounding boxes), how it scores one case, which labels it reports and what it adds to summary.json and
// the table. evaluate_folders pairs the folders, runs evaluate_case in parallel and writes the common summary.
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <ostream>
#include <vector>

#include "teachformer/core/json.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/metrics/protocols.hpp"
#include "teachformer/metrics/segmentation_metrics.hpp"
#include "teachformer/metrics/summary.hpp"

namespace teachformer::metrics::detail {

/// What one case produced, before the labels of all cases are known.
struct CaseWork {
  /// The case's rows (filled by the evaluator or, from `metrics`, once the labels are known).
  CaseEvaluation eval;
  /// Per-label metrics whose rows are written once the labels of every case are known (generic, hecktor2022).
  std::map<int, BinaryMetrics> metrics;
  /// Voxels evaluated (the whole image, or the voxels inside the bounding box).
  int64_t numel = 0;
  /// Voxel volume (mm^3) of the reference.
  double voxel_volume = 0;
};

/// A protocol's part of evaluate_folders. evaluate_case runs concurrently on different cases: it may only write to
/// its own CaseWork and to per-case slots the evaluator sized in prepare.
class ProtocolEvaluator {
 public:
  explicit ProtocolEvaluator(const EvaluateOptions& options) : options_(options) {}
  virtual ~ProtocolEvaluator() = default;
  ProtocolEvaluator(const ProtocolEvaluator&) = delete;
  ProtocolEvaluator& operator=(const ProtocolEvaluator&) = delete;

  /// Throws InvalidArgument when the options are out of range or belong to another protocol.
  virtual void check() const;
  /// Reads what the cases need (e.g. bounding boxes) and sizes per-case state; throws before any volume is read.
  virtual void prepare(const Pairing& pairing);
  /// Scores case `index` (`pair`; `reference` already read) into `work`.
  virtual void evaluate_case(size_t index, const CasePair& pair, const io::Volume& reference,
                             CaseWork& work) = 0;
  /// The labels reported; writes the rows still missing. Default: every label some case has a row for.
  virtual std::vector<int> finish_cases(std::vector<CaseWork>& work) const;
  /// Adds the protocol's sections to the summary and settings, and its lines to the table (after the header line).
  virtual void summarise(EvaluationResult& result, Json& settings, std::ostream& table) const = 0;

  const EvaluateOptions& options() const { return options_; }

 protected:
  EvaluateOptions options_;
};

/// The evaluator of `options.protocol`.
std::unique_ptr<ProtocolEvaluator> make_evaluator(const EvaluateOptions& options);

/// `v`, or null when not finite (JSON has no NaN/inf).
Json finite_or_null(double v);
/// "1, 2, 3".
std::string join_labels(const std::vector<int>& labels);
/// `v` with `precision` digits for the table; "nan", "inf", "-inf" for non-finite values.
std::string format_metric(double v, int precision = 4);

}  // namespace teachformer::metrics::detail
