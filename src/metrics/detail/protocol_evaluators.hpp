// The four protocol evaluators (see protocols.hpp for what each protocol measures).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "metrics/detail/protocol_evaluator.hpp"
#include "teachformer/metrics/hecktor.hpp"
#include "teachformer/metrics/picai.hpp"

namespace teachformer::metrics::detail {

/// generic: every label (or the given ones) with voxel-surface distances and NSD.
class GenericEvaluator : public ProtocolEvaluator {
 public:
  explicit GenericEvaluator(const EvaluateOptions& options, std::vector<int> default_labels = {});
  void evaluate_case(size_t index, const CasePair& pair, const io::Volume& reference, CaseWork& work) override;
  std::vector<int> finish_cases(std::vector<CaseWork>& work) const override;
  void summarise(EvaluationResult& result, Json& settings, std::ostream& table) const override;

 protected:
  /// The labels every case reports; empty: every label found in the case's reference or prediction.
  std::vector<int> fixed_labels_;
};

/// hecktor2022: the generic per-case metrics of labels 1 and 2 (by default) plus the aggregated Dice per label.
class Hecktor2022Evaluator : public GenericEvaluator {
 public:
  explicit Hecktor2022Evaluator(const EvaluateOptions& options);
  void summarise(EvaluationResult& result, Json& settings, std::ostream& table) const override;
};

/// hecktor2021: inside the per-patient bounding box, surfel distances, the official scores of empty and missing
/// cases, and the leaderboard (mean DSC, median HD95).
class Hecktor2021Evaluator : public ProtocolEvaluator {
 public:
  using ProtocolEvaluator::ProtocolEvaluator;
  void prepare(const Pairing& pairing) override;
  void evaluate_case(size_t index, const CasePair& pair, const io::Volume& reference, CaseWork& work) override;
  void summarise(EvaluationResult& result, Json& settings, std::ostream& table) const override;

 private:
  std::map<std::string, transforms::BoundingBox> boxes_;
};

/// picai: lesion detection (candidates from softmax maps when needed), case-level AUROC, AP and FROC.
class PicaiEvaluator : public ProtocolEvaluator {
 public:
  using ProtocolEvaluator::ProtocolEvaluator;
  void prepare(const Pairing& pairing) override;
  void evaluate_case(size_t index, const CasePair& pair, const io::Volume& reference, CaseWork& work) override;
  void summarise(EvaluationResult& result, Json& settings, std::ostream& table) const override;

 private:
  // One slot per case, written by that case's evaluate_case only.
  std::vector<picai::CaseDetection> detections_;
  std::vector<char> softmax_input_;
  std::vector<std::string> case_ids_;
};

}  // namespace teachformer::metrics::detail
