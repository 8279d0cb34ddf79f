#include "teachformer/distill/distill_loss.hpp"

#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/losses/loss_factory.hpp"

namespace teachformer::distill {

DistillOptions distill_options_from_json(const nlohmann::json& j) {
  DistillOptions o;
  nlohmann::json strategy = "teachformer", attention = nlohmann::json::object();
  std::string aggregation = "agreement";
  JsonReader r(j, "distill options");
  r.get("strategy", strategy).get("temperature", o.temperature).get("aggregation", aggregation);
  r.get("confidence_tau", o.confidence_tau).get("attention", attention).get("gt_loss", o.gt_loss);
  r.get("cache", o.cache).get("cache_overlap", o.cache_overlap);
  r.finish();
  o.strategy = strategy_from_json(strategy);
  o.aggregation = parse_aggregation(aggregation);
  o.attention = attention_map_options_from_json(attention);
  TF_CHECK(o.temperature > 0, ConfigError, "distill options: temperature must be > 0, got ", o.temperature);
  TF_CHECK(o.confidence_tau > 0, ConfigError, "distill options: confidence_tau must be > 0");
  losses::make_loss(o.gt_loss);  // validates
  return o;
}

nlohmann::json to_json(const DistillOptions& o) {
  return {{"strategy", to_json(o.strategy)}, {"temperature", o.temperature},
          {"aggregation", to_string(o.aggregation)}, {"confidence_tau", o.confidence_tau},
          {"attention", to_json(o.attention)},      {"gt_loss", o.gt_loss},
          {"cache", o.cache},                        {"cache_overlap", o.cache_overlap}};
}

std::string cache_extra_name(const std::string& teacher, const std::string& what) {
  return "teacher." + teacher + "." + what;
}

DistillLoss::DistillLoss(std::vector<std::shared_ptr<Teacher>> teachers, DistillOptions options,
                                   KnowledgeGrid grid, bool cached)
    : teachers_(std::move(teachers)),
      options_(std::move(options)),
      grid_(std::move(grid)),
      cached_(cached),
      gt_(losses::make_loss(options_.gt_loss)) {
  TF_CHECK(!options_.strategy.needs_teachers() || !teachers_.empty(), InvalidArgument, "strategy '",
           options_.strategy.name, "' uses knowledge distillation but no teacher was given (--teacher)");
  grid_.p = options_.attention.p;
}

models::TapRequest DistillLoss::taps() const {
  const bool maps = options_.strategy.uses(kTermAttnCoarse) || options_.strategy.uses(kTermAttnFine);
  return {maps, options_.strategy.uses(kTermAttnProbs), false};
}

void DistillLoss::to(const c10::Device& device) {
  if (!cached_)
    for (auto& t : teachers_) t->to(device);
}

std::vector<TeacherKnowledge> DistillLoss::knowledge(const DistillBatch& batch, bool maps, bool attention) const {
  std::vector<TeacherKnowledge> out;
  for (const auto& t : teachers_) {
    if (!cached_) {
      out.push_back(t->run(batch.image, grid_, maps, attention));
      continue;
    }
    TeacherKnowledge k;
    auto fetch = [&](const std::string& what) {
      auto it = batch.cached.find(cache_extra_name(t->name(), what));
      TF_CHECK(it != batch.cached.end(), InvalidArgument, "teacher cache: the batch has no '",
               cache_extra_name(t->name(), what), "' (cache not loaded?)");
      return it->second.to(torch::kFloat);
    };
    k.probs = fetch("probs");
    k.probs = k.probs / k.probs.sum(1, true).clamp_min(1e-6);  // fp16 storage: renormalise
    if (maps) {
      k.coarse = fetch("coarse");
      k.fine = fetch("fine");
    }
    out.push_back(std::move(k));
  }
  return out;
}

losses::LossBreakdown DistillLoss::compute(const models::SegOutput& output, const DistillBatch& batch) const {
  const auto w = options_.strategy.weights_at(batch.step, batch.epochs, batch.steps_per_epoch);
  losses::LossBreakdown result;
  const auto gt = gt_.compute(models::all_outputs(output), batch.label);
  torch::Tensor total = w.at(kTermGt) * gt.total;
  result.add_term(kTermGt, gt.total);
  result.append_terms(gt, "gt.");

  const bool want_kd = w.at(kTermKd) > 0;
  const bool want_maps = w.at(kTermAttnCoarse) > 0 || w.at(kTermAttnFine) > 0;
  const bool want_attn = w.at(kTermAttnProbs) > 0;
  const auto zero = torch::zeros({}, output.logits.options().dtype(torch::kFloat));
  torch::Tensor kd = zero, attn_coarse = zero, attn_fine = zero, attn_probs = zero;
  if (want_kd || want_maps || want_attn) {
    const auto know = knowledge(batch, want_maps, want_attn);
    double fixed_sum = 0;
    std::vector<double> fixed;
    for (const auto& t : teachers_) {
      fixed.push_back(t->weight());
      fixed_sum += t->weight();
    }
    if (want_kd) {
      std::vector<torch::Tensor> probs;
      for (const auto& k : know) probs.push_back(k.probs);
      const auto tw = teacher_weights(probs, batch.label, options_.aggregation, fixed, options_.confidence_tau);
      std::vector<torch::Tensor> tempered;
      for (const auto& p : probs)
        tempered.push_back(options_.temperature == 1.0 ? p : temper_probabilities(p, options_.temperature));
      const auto terms = multi_teacher_kd(output.logits, tempered, tw, options_.temperature);
      for (size_t i = 0; i < teachers_.size(); ++i) {
        result.add_term(std::string(kTermKd) + "." + teachers_[i]->name(), terms.per_teacher[i]);
        result.add_term("teacher_weight." + teachers_[i]->name(), tw[i].mean().detach());
      }
      kd = terms.total;
    }
    if (want_maps) {
      const auto sc = attention_map(output.taps.at(models::kEncoderCoarse), options_.attention.p);
      const auto sf = attention_map(output.taps.at(models::kDecoderFine), options_.attention.p);
      for (size_t i = 0; i < teachers_.size(); ++i) {
        const double wi = fixed[i] / fixed_sum;
        const auto c = attention_map_loss(sc, know[i].coarse, options_.attention);
        const auto f = attention_map_loss(sf, know[i].fine, options_.attention);
        result.add_term(std::string(kTermAttnCoarse) + "." + teachers_[i]->name(), c);
        result.add_term(std::string(kTermAttnFine) + "." + teachers_[i]->name(), f);
        attn_coarse = attn_coarse + wi * c;
        attn_fine = attn_fine + wi * f;
      }
    }
    if (want_attn) {
      // Attention probabilities: compared where the student's last attention layer has the teacher's token count.
      torch::Tensor student;
      for (auto it = output.taps.items().rbegin(); it != output.taps.items().rend(); ++it)
        if (it->first.rfind(models::kAttentionPrefix, 0) == 0 && it->second.dim() == 4) {
          student = it->second.mean(1);
          break;
        }
      for (size_t i = 0; i < teachers_.size(); ++i) {
        if (!student.defined() || !know[i].attention.defined() || know[i].attention.sizes() != student.sizes())
          continue;
        const auto t = know[i].attention;
        const auto term = (t * (t.clamp_min(1e-8).log() - student.clamp_min(1e-8).log())).sum(-1).mean();
        result.add_term(std::string(kTermAttnProbs) + "." + teachers_[i]->name(), term);
        attn_probs = attn_probs + fixed[i] / fixed_sum * term;
      }
    }
  }
  result.add_term(kTermKd, kd);
  result.add_term(kTermAttnCoarse, attn_coarse);
  result.add_term(kTermAttnFine, attn_fine);
  result.add_term(kTermAttnProbs, attn_probs);
  total = total + w.at(kTermKd) * kd + w.at(kTermAttnCoarse) * attn_coarse + w.at(kTermAttnFine) * attn_fine +
          w.at(kTermAttnProbs) * attn_probs;
  for (const auto& [term, value] : w) result.add_term("weight." + term, torch::full({}, value));
  result.total = total;
  return result;
}

nlohmann::json DistillLoss::describe() const {
  nlohmann::json teachers = nlohmann::json::array();
  for (const auto& t : teachers_)
    teachers.push_back({{"name", t->name()}, {"weight", t->weight()}, {"source", t->source()},
                        {"channels", t->channel_indices()}});
  return {{"type", "distill"}, {"options", to_json(options_)}, {"teachers", teachers}, {"cached", cached_},
          {"student_grid", {{"coarse", grid_.coarse}, {"fine", grid_.fine}}}};
}

}  // namespace teachformer::distill
