#include "metrics/detail/protocol_evaluator.hpp"

#include <cmath>
#include <set>
#include <sstream>

#include "metrics/detail/protocol_evaluators.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/strings.hpp"

namespace teachformer::metrics {

namespace {

/// A flag that only some protocols use. `note` replaces the standard "only used by" message when set.
struct FlagRule {
  const char* flag;
  std::vector<Protocol> used_by;
  const char* note;
};

// The order in which given flags are checked; the first misuse is reported.
const std::vector<FlagRule>& flag_rules() {
  static const std::vector<FlagRule> rules{
      {"--bbox", {Protocol::Hecktor2021}, nullptr},
      {"--hecktor-official", {Protocol::Hecktor2021}, nullptr},
      {"--picai-input", {Protocol::Picai}, nullptr},
      {"--candidate-threshold", {Protocol::Picai}, nullptr},
      {"--min-voxels", {Protocol::Picai}, nullptr},
      {"--min-overlap", {Protocol::Picai}, nullptr},
      {"--labels",
       {Protocol::Generic, Protocol::Hecktor2021, Protocol::Hecktor2022},
       "--labels is not used by --protocol picai (reference >= 1 is lesion)"},
      {"--percentile",
       {Protocol::Generic, Protocol::Hecktor2021, Protocol::Hecktor2022},
       "--percentile is not used by --protocol picai (no surface distances)"},
      {"--nsd-tolerance",
       {Protocol::Generic, Protocol::Hecktor2022},
       "--nsd-tolerance is only used by --protocol generic and hecktor2022"},
  };
  return rules;
}

}  // namespace

std::vector<std::string> protocol_specific_flags() {
  std::vector<std::string> out;
  for (const auto& r : flag_rules()) out.push_back(r.flag);
  return out;
}

std::string unused_flag_message(Protocol protocol, const std::vector<std::string>& given) {
  const std::set<std::string> set(given.begin(), given.end());
  for (const auto& r : flag_rules()) {
    if (!set.count(r.flag)) continue;
    bool used = false;
    for (Protocol p : r.used_by) used = used || p == protocol;
    if (used) continue;
    if (r.note) return r.note;
    return std::string(r.flag) + " is only used by --protocol " + to_string(r.used_by.front()) + " (protocol is " +
           to_string(protocol) + ")";
  }
  return "";
}

namespace detail {

Json finite_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

std::string join_labels(const std::vector<int>& labels) {
  std::ostringstream os;
  for (size_t i = 0; i < labels.size(); ++i) os << (i ? ", " : "") << labels[i];
  return os.str();
}

std::string format_metric(double v, int precision) { return format_fixed(v, precision, "nan"); }

void ProtocolEvaluator::check() const {
  const EvaluateOptions& o = options_;
  TF_CHECK(o.percentile >= 0 && o.percentile <= 100, InvalidArgument, "evaluate: percentile must lie in [0, 100], got ",
           o.percentile);
  TF_CHECK(std::isfinite(o.nsd_tolerance_mm) && o.nsd_tolerance_mm >= 0, InvalidArgument,
           "evaluate: NSD tolerance must be >= 0 mm, got ", o.nsd_tolerance_mm);
  TF_CHECK(o.geometry_tolerance_mm >= 0, InvalidArgument, "evaluate: geometry tolerance must be >= 0 mm, got ",
           o.geometry_tolerance_mm);
  for (int l : o.labels)
    TF_CHECK(l >= 1 && l <= 255, InvalidArgument, "evaluate: labels must lie in [1, 255], got ", l);
  // Only the options whose absence is visible in the struct; the CLI also knows which flags were typed.
  std::vector<std::string> given;
  if (!o.labels.empty()) given.push_back("--labels");
  if (!o.bbox_csv.empty()) given.push_back("--bbox");
  const std::string misuse = unused_flag_message(o.protocol, given);
  TF_CHECK(misuse.empty(), InvalidArgument, "evaluate: ", misuse);
}

void ProtocolEvaluator::prepare(const Pairing&) {}

std::vector<int> ProtocolEvaluator::finish_cases(std::vector<CaseWork>& work) const {
  std::set<int> s;
  for (const auto& w : work)
    for (const auto& kv : w.eval.metrics) s.insert(kv.first);
  return {s.begin(), s.end()};
}

std::unique_ptr<ProtocolEvaluator> make_evaluator(const EvaluateOptions& options) {
  switch (options.protocol) {
    case Protocol::Generic: return std::make_unique<GenericEvaluator>(options);
    case Protocol::Hecktor2021: return std::make_unique<Hecktor2021Evaluator>(options);
    case Protocol::Hecktor2022: return std::make_unique<Hecktor2022Evaluator>(options);
    case Protocol::Picai: return std::make_unique<PicaiEvaluator>(options);
  }
  TF_THROW(InternalError, "make_evaluator: unknown protocol ", static_cast<int>(options.protocol));
}

}  // namespace detail
}  // namespace teachformer::metrics
