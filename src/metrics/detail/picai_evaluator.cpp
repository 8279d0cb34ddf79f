// picai: lesion detection per case, then case-level AUROC, AP and the FROC over all cases.
#include <map>

#include "metrics/detail/protocol_evaluators.hpp"

namespace teachformer::metrics::detail {

void PicaiEvaluator::prepare(const Pairing& pairing) {
  detections_.assign(pairing.cases.size(), {});
  softmax_input_.assign(pairing.cases.size(), 0);
  case_ids_.clear();
  for (const auto& c : pairing.cases) case_ids_.push_back(c.case_id);
}

void PicaiEvaluator::evaluate_case(size_t index, const CasePair& pair, const io::Volume& reference, CaseWork& w) {
  const EvaluateOptions& o = options_;
  const torch::Tensor pred = w.eval.missing ? torch::zeros(reference.data.sizes(), torch::kFloat32)
                                            : io::read_image(pair.prediction).data;
  bool softmax = o.picai_input == PicaiInput::Softmax;
  if (o.picai_input == PicaiInput::Auto && !w.eval.missing) softmax = !picai::is_detection_map(pred);
  const torch::Tensor det =
      softmax ? picai::extract_lesion_candidates(pred, o.candidates).detection_map : pred.select(0, 0);
  softmax_input_[index] = softmax;
  picai::CaseDetection& detection = detections_[index];
  detection = picai::evaluate_detection_case(det, reference.data, o.matching);
  MetricOptions mo;
  mo.surface_metrics = false;
  const BinaryMetrics m = compute_binary_metrics(det.gt(0), reference.data.ne(0), reference.geometry.spacing, mo);
  double tp = 0, fn = 0, fp = 0;
  for (const auto& l : detection.lesions) {
    if (l.is_lesion && l.overlap > 0) ++tp;
    else if (l.is_lesion) ++fn;
    else ++fp;
  }
  w.eval.metrics[1] = {{"Dice", m.dice},
                       {"case_confidence", detection.case_confidence},
                       {"case_target", double(detection.case_target)},
                       {"n_lesions", double(detection.num_lesions)},
                       {"n_candidates", double(detection.num_candidates)},
                       {"TP_lesions", tp},
                       {"FN_lesions", fn},
                       {"FP_lesions", fp},
                       {"softmax_input", softmax ? 1.0 : 0.0},
                       {"n_pred", double(m.counts.n_pred())},
                       {"n_ref", double(m.counts.n_ref())}};
  w.eval.status[1] = m.empty;
}

void PicaiEvaluator::summarise(EvaluationResult& r, Json& settings, std::ostream& table) const {
  const EvaluateOptions& o = options_;
  std::map<std::string, picai::CaseDetection> detections;
  int64_t softmax_cases = 0;
  for (size_t i = 0; i < case_ids_.size(); ++i) {
    detections[case_ids_[i]] = detections_[i];
    softmax_cases += softmax_input_[i];
  }
  const picai::DetectionMetrics dm = picai::compute_detection_metrics(detections);
  r.picai_metrics = picai::to_picai_json(dm, detections);
  settings["picai_input"] = to_string(o.picai_input);
  settings["min_overlap"] = o.matching.min_overlap;
  settings["softmax_cases"] = softmax_cases;
  r.summary["picai"] = {{"auroc", finite_or_null(dm.auroc)},
                        {"AP", finite_or_null(dm.ap)},
                        {"score", finite_or_null(dm.score)},
                        {"num_cases", dm.num_cases},
                        {"num_lesions", dm.num_lesions},
                        {"sensitivity_at_fp_per_case", (*r.picai_metrics)["sensitivity_at_fp_per_case"]}};
  table << "AUROC " << format_metric(dm.auroc) << ", AP " << format_metric(dm.ap) << ", score (AUROC + AP) / 2 "
        << format_metric(dm.score) << ", " << dm.num_lesions << " lesions, sensitivity at 1 FP/case "
        << format_metric(picai::sensitivity_at(dm, 1.0)) << " (" << softmax_cases
        << " softmax maps turned into candidates)\n";
  table << summary_table(r.cases, r.labels, {"Dice", "TP_lesions", "FP_lesions", "FN_lesions"});
}

}  // namespace teachformer::metrics::detail
