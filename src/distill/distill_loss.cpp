#include "teachformer/distill/distill_loss.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/losses/loss_factory.hpp"

namespace teachformer::distill {
namespace {

// Rows of `t` [B, ...] at `rows`.
torch::Tensor select_rows(const torch::Tensor& t, const torch::Tensor& rows) { return t.index_select(0, rows); }

// Teacher weights per sample, each row from `labelled` or `unlabelled` by the sample's mask.
std::vector<torch::Tensor> by_sample(const std::vector<torch::Tensor>& labelled,
                                     const std::vector<torch::Tensor>& unlabelled, const torch::Tensor& mask) {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < labelled.size(); ++i) {
    auto a = labelled[i], b = unlabelled[i];
    // A single teacher's weight is the scalar 1 ([1]): give it the batch's rank first.
    if (a.dim() == 1 && a.numel() == 1 && b.dim() > 1) a = a.view(std::vector<int64_t>(size_t(b.dim()), 1));
    if (b.dim() == 1 && b.numel() == 1 && a.dim() > 1) b = b.view(std::vector<int64_t>(size_t(a.dim()), 1));
    if (a.dim() == 1 && b.dim() == 1 && a.numel() == 1 && b.numel() == 1 && mask.size(0) > 1) {
      a = a.view({1, 1, 1, 1, 1});
      b = b.view({1, 1, 1, 1, 1});
    }
    const auto shape = at::infer_size(a.sizes(), b.sizes());
    a = a.expand(shape);
    b = b.expand(shape);
    std::vector<int64_t> m(shape.size(), 1);
    m[0] = mask.size(0);
    out.push_back(torch::where(mask.view(m), a, b));
  }
  return out;
}

double gradient_norm(const torch::Tensor& term, const torch::Tensor& at) {
  const auto g = torch::autograd::grad({term}, {at}, {}, /*retain_graph=*/true, /*create_graph=*/false,
                                       /*allow_unused=*/true);
  return g.empty() || !g[0].defined() ? 0.0 : g[0].norm().item<double>();
}

}  // namespace

BalanceOptions balance_options_from_json(const nlohmann::json& j) {
  BalanceOptions o;
  JsonReader r(j, "distill balance options");
  r.get("enabled", o.enabled).get("every", o.every).get("momentum", o.momentum).get("max_scale", o.max_scale);
  r.finish();
  TF_CHECK(o.every >= 1, ConfigError, "distill balance options: every must be >= 1, got ", o.every);
  TF_CHECK(o.momentum >= 0 && o.momentum < 1, ConfigError, "distill balance options: momentum must be in [0, 1)");
  TF_CHECK(o.max_scale >= 1, ConfigError, "distill balance options: max_scale must be >= 1");
  return o;
}

nlohmann::json to_json(const BalanceOptions& o) {
  return {{"enabled", o.enabled}, {"every", o.every}, {"momentum", o.momentum}, {"max_scale", o.max_scale}};
}

DistillOptions distill_options_from_json(const nlohmann::json& j) {
  DistillOptions o;
  nlohmann::json strategy = "teachformer", attention = nlohmann::json::object(), balance = nlohmann::json::object();
  std::string aggregation = to_string(o.aggregation);
  JsonReader r(j, "distill options");
  r.get("strategy", strategy).get("temperature", o.temperature).get("aggregation", aggregation);
  r.get("confidence_tau", o.confidence_tau).get("attention", attention).get("gt_loss", o.gt_loss);
  r.get("attention_weighting", o.attention_weighting).get("dice_tau", o.dice_tau).get("balance", balance);
  r.get("cache", o.cache).get("cache_overlap", o.cache_overlap).get("kd_dice", o.kd_dice);
  r.finish();
  o.strategy = strategy_from_json(strategy);
  o.aggregation = parse_aggregation(aggregation);
  o.attention = attention_map_options_from_json(attention);
  o.balance = balance_options_from_json(balance);
  TF_CHECK(o.temperature > 0, ConfigError, "distill options: temperature must be > 0, got ", o.temperature);
  TF_CHECK(o.confidence_tau > 0, ConfigError, "distill options: confidence_tau must be > 0");
  TF_CHECK(o.dice_tau > 0, ConfigError, "distill options: dice_tau must be > 0");
  TF_CHECK(o.kd_dice >= 0 && std::isfinite(o.kd_dice), ConfigError, "distill options: kd_dice must be >= 0, got ",
           o.kd_dice);
  TF_CHECK(o.attention_weighting == "dice" || o.attention_weighting == "fixed", ConfigError,
           "distill options: attention_weighting must be \"dice\" or \"fixed\", got '", o.attention_weighting, "'");
  losses::make_loss(o.gt_loss);  // validates
  return o;
}

nlohmann::json to_json(const DistillOptions& o) {
  return {{"strategy", to_json(o.strategy)},
          {"temperature", o.temperature},
          {"aggregation", to_string(o.aggregation)},
          {"confidence_tau", o.confidence_tau},
          {"attention_weighting", o.attention_weighting},
          {"dice_tau", o.dice_tau},
          {"attention", to_json(o.attention)},
          {"gt_loss", o.gt_loss},
          {"balance", to_json(o.balance)},
          {"cache", o.cache},
          {"cache_overlap", o.cache_overlap},
          {"kd_dice", o.kd_dice}};
}

std::string cache_extra_name(const std::string& teacher, const std::string& what) {
  return "teacher." + teacher + "." + what;
}

DistillLoss::DistillLoss(std::vector<std::shared_ptr<Teacher>> teachers, DistillOptions options, KnowledgeGrid grid,
                         bool cached)
    : teachers_(std::move(teachers)),
      options_(std::move(options)),
      grid_(std::move(grid)),
      cached_(cached),
      gt_(losses::make_loss(options_.gt_loss)) {
  TF_CHECK(!options_.strategy.needs_teachers() || !teachers_.empty(), InvalidArgument, "strategy '",
           options_.strategy.name, "' uses knowledge distillation but no teacher was given (--teacher)");
  grid_.p = options_.attention.p;
  grid_.fine_tap = options_.attention.fine_tap;
  TF_CHECK(!cached_ || !options_.strategy.uses(kTermAttnProbs), InvalidArgument, "distillation term '", kTermAttnProbs,
           "' (strategy '", options_.strategy.name,
           "') cannot be computed from the teacher cache: attention probabilities are not cached; run the teachers "
           "live (--no-cache) or give the term weight 0");
}

models::TapRequest DistillLoss::taps() const {
  const bool maps = options_.strategy.uses(kTermAttnCoarse) || options_.strategy.uses(kTermAttnFine);
  return {maps, options_.strategy.uses(kTermAttnProbs), false};
}

bool DistillLoss::needs_teacher_input() const { return !cached_ && options_.strategy.needs_teachers(); }

void DistillLoss::set_mean_over_ranks(std::function<std::vector<double>(const std::vector<double>&)> mean) {
  mean_over_ranks_ = std::move(mean);
}

void DistillLoss::to(const c10::Device& device) {
  if (!cached_)
    for (auto& t : teachers_) t->to(device);
}

void DistillLoss::check_terms(const models::SegOutput& student, const std::vector<int64_t>& patch) const {
  const bool coarse = options_.strategy.uses(kTermAttnCoarse), fine = options_.strategy.uses(kTermAttnFine);
  const bool probs = options_.strategy.uses(kTermAttnProbs);
  if (coarse)
    TF_CHECK(student.taps.contains(models::kEncoderCoarse), InvalidArgument, "distillation term '", kTermAttnCoarse,
             "': the student has no '", models::kEncoderCoarse, "' tap");
  if (fine)
    TF_CHECK(student.taps.contains(models::kDecoderFine), InvalidArgument, "distillation term '", kTermAttnFine,
             "': the student has no '", models::kDecoderFine, "' tap");
  if (!coarse && !fine && !probs) return;
  int64_t student_tokens = -1;
  if (probs) {
    for (auto it = student.taps.items().rbegin(); it != student.taps.items().rend(); ++it)
      if (it->first.rfind(models::kAttentionPrefix, 0) == 0 && it->second.dim() == 4) {
        student_tokens = it->second.size(-1);
        break;
      }
    TF_CHECK(student_tokens > 0, InvalidArgument, "distillation term '", kTermAttnProbs,
             "': the student records no attention probabilities");
  }
  for (const auto& t : teachers_) {
    const auto& spec = t->model()->spec();
    const int64_t c = spec.in_channels;
    const auto& fixed = spec.fixed_input_size;
    const auto& size = fixed.empty() ? patch : fixed;
    torch::NoGradGuard no_grad;
    auto device = t->model()->parameters().empty() ? c10::Device(c10::kCPU) : t->model()->parameters()[0].device();
    const auto out = t->model()->forward(torch::zeros({1, c, size[0], size[1], size[2]}, torch::TensorOptions().device(device)),
                                         {coarse || fine, probs, false, false});
    if (coarse)
      TF_CHECK(out.taps.contains(models::kEncoderCoarse), InvalidArgument, "distillation term '", kTermAttnCoarse,
               "': teacher '", t->name(), "' (", spec.key, ") has no '", models::kEncoderCoarse, "' tap");
    if (fine)
      TF_CHECK(out.taps.contains(grid_.fine_tap), InvalidArgument, "distillation term '", kTermAttnFine, "': teacher '",
               t->name(), "' (", spec.key, ") has no '", grid_.fine_tap, "' tap (attention.fine_tap)");
    if (probs) {
      int64_t tokens = -1;
      for (auto it = out.taps.items().rbegin(); it != out.taps.items().rend(); ++it)
        if (it->first.rfind(models::kAttentionPrefix, 0) == 0 && it->second.dim() == 4) {
          tokens = it->second.size(-1);
          break;
        }
      TF_CHECK(tokens > 0, InvalidArgument, "distillation term '", kTermAttnProbs, "': teacher '", t->name(), "' (",
               spec.key, ") records no attention probabilities");
      TF_CHECK(tokens == student_tokens, InvalidArgument, "distillation term '", kTermAttnProbs, "': teacher '",
               t->name(), "' (", spec.key, ") attends over ", tokens, " tokens in its last attention layer, the student over ",
               student_tokens, "; the probabilities cannot be compared (give the term weight 0)");
    }
  }
}

std::vector<TeacherKnowledge> DistillLoss::knowledge(const DistillBatch& batch, bool maps, bool attention) const {
  std::vector<TeacherKnowledge> out;
  const auto& input = batch.teacher_image.defined() ? batch.teacher_image : batch.image;
  for (const auto& t : teachers_) {
    if (!cached_) {
      out.push_back(t->run(input, grid_, maps, attention));
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

void DistillLoss::update_balance(const models::SegOutput& output, const torch::Tensor& gt,
                                 const std::map<std::string, torch::Tensor>& terms) {
  std::vector<std::string> names;
  std::vector<double> logs;
  for (const auto& [term, value] : terms) {
    if (!value.requires_grad() || !gt.requires_grad()) continue;
    const torch::Tensor& at = term == kTermKd ? output.logits
                              : term == kTermAttnCoarse ? output.taps.at(models::kEncoderCoarse)
                                                        : output.taps.at(models::kDecoderFine);
    const double g_term = gradient_norm(value, at), g_gt = gradient_norm(gt, at);
    if (!(g_term > 0) || !(g_gt > 0) || !std::isfinite(g_term) || !std::isfinite(g_gt)) continue;
    names.push_back(term);
    logs.push_back(std::log(g_gt / g_term));
  }
  // Every rank must take part in the reduction with the same list: measure all or none.
  if (mean_over_ranks_) {
    std::vector<double> packed;
    for (const char* term : {kTermKd, kTermAttnCoarse, kTermAttnFine}) {
      auto it = std::find(names.begin(), names.end(), std::string(term));
      packed.push_back(it == names.end() ? 0.0 : logs[size_t(it - names.begin())]);
      packed.push_back(it == names.end() ? 0.0 : 1.0);
    }
    packed = mean_over_ranks_(packed);
    names.clear();
    logs.clear();
    size_t i = 0;
    for (const char* term : {kTermKd, kTermAttnCoarse, kTermAttnFine}) {
      if (packed[2 * i + 1] > 0) {
        names.push_back(term);
        logs.push_back(packed[2 * i] / packed[2 * i + 1]);
      }
      ++i;
    }
  }
  const double limit = std::log(options_.balance.max_scale);
  for (size_t i = 0; i < names.size(); ++i) {
    const double measured = std::clamp(logs[i], -limit, limit);
    auto it = log_scale_.find(names[i]);
    log_scale_[names[i]] = it == log_scale_.end()
                               ? measured
                               : options_.balance.momentum * it->second + (1 - options_.balance.momentum) * measured;
  }
}

// Long on purpose: one block per term (gt, kd, coarse map, fine map, attention probabilities), in the order the
// strategy weights them; the terms themselves are in kd_terms.
losses::LossBreakdown DistillLoss::compute(const models::SegOutput& output, const DistillBatch& batch) {
  const auto w = options_.strategy.weights_at(batch.step, batch.epochs, batch.steps_per_epoch);
  const int64_t b = output.logits.size(0);
  losses::LossBreakdown result;
  const auto fopts = output.logits.options().dtype(torch::kFloat);
  const auto zero = torch::zeros({}, fopts);

  // Which samples carry a label.
  std::vector<int64_t> labelled_rows;
  for (int64_t i = 0; i < b; ++i)
    if (batch.labelled.empty() || batch.labelled[size_t(i)]) labelled_rows.push_back(i);
  const bool all_labelled = int64_t(labelled_rows.size()) == b;
  torch::Tensor mask;  // [B] bool: labelled
  if (!all_labelled) {
    mask = torch::zeros({b}, torch::TensorOptions().dtype(torch::kBool).device(output.logits.device()));
    for (auto r : labelled_rows) mask[r] = true;
  }

  torch::Tensor gt = zero;
  if (all_labelled) {
    const auto g = gt_.compute(models::all_outputs(output), batch.label);
    gt = g.total;
    result.add_term(kTermGt, gt);
    result.append_terms(g, "gt.");
  } else if (!labelled_rows.empty()) {
    const auto rows = torch::tensor(labelled_rows, torch::TensorOptions(torch::kLong).device(output.logits.device()));
    std::vector<torch::Tensor> outputs;
    for (const auto& o : models::all_outputs(output)) outputs.push_back(select_rows(o, rows));
    const auto g = gt_.compute(outputs, select_rows(batch.label, rows));
    // Scaled by the labelled share, so a sample's pull on the weights does not depend on its batch-mates.
    gt = g.total * (double(labelled_rows.size()) / double(b));
    result.add_term(kTermGt, gt);
  } else {
    result.add_term(kTermGt, gt);
  }
  torch::Tensor total = w.at(kTermGt) * gt;

  const bool want_kd = w.at(kTermKd) > 0;
  const bool want_maps = w.at(kTermAttnCoarse) > 0 || w.at(kTermAttnFine) > 0;
  const bool want_attn = w.at(kTermAttnProbs) > 0;
  torch::Tensor kd = zero, attn_coarse = zero, attn_fine = zero, attn_probs = zero;
  if (want_kd || want_maps || want_attn) {
    const auto know = knowledge(batch, want_maps, want_attn);
    double fixed_sum = 0;
    std::vector<double> fixed;
    for (const auto& t : teachers_) {
      fixed.push_back(t->weight());
      fixed_sum += t->weight();
    }
    std::vector<torch::Tensor> probs;
    for (const auto& k : know) probs.push_back(k.probs);
    if (want_kd) {
      const bool label_based = options_.aggregation == Aggregation::Agreement || options_.aggregation == Aggregation::Voxel;
      // Samples without a label are judged by the teachers' confidence; a batch of unlabelled samples only has no
      // label at all.
      std::vector<torch::Tensor> tw;
      if (label_based && labelled_rows.empty()) {
        tw = teacher_weights(probs, {}, Aggregation::Confidence, fixed, options_.confidence_tau);
      } else {
        tw = teacher_weights(probs, batch.label, options_.aggregation, fixed, options_.confidence_tau);
        if (label_based && !all_labelled)
          tw = by_sample(tw, teacher_weights(probs, batch.label, Aggregation::Confidence, fixed, options_.confidence_tau),
                         mask);
      }
      std::vector<torch::Tensor> tempered;
      for (const auto& p : probs)
        tempered.push_back(options_.temperature == 1.0 ? p : temper_probabilities(p, options_.temperature));
      const auto terms = multi_teacher_kd(output.logits, tempered, tw, options_.temperature);
      for (size_t i = 0; i < teachers_.size(); ++i) {
        result.add_term(std::string(kTermKd) + "." + teachers_[i]->name(), terms.per_teacher[i]);
        result.add_term("teacher_weight." + teachers_[i]->name(), tw[i].mean().detach());
      }
      kd = terms.total;
      if (options_.kd_dice > 0) {
        // The same target as the KL term (the teacher weights sum to 1 over teachers), at the same temperature.
        const auto dice = soft_dice_kd(output.logits / options_.temperature, terms.mixture);
        result.add_term("kd_dice", dice);
        kd = kd + options_.kd_dice * dice;
      }
    }
    if (want_maps) {
      // Per-sample teacher weights for the maps.
      std::vector<torch::Tensor> mw;
      const auto fixed_rows = [&] {
        std::vector<torch::Tensor> v;
        for (double f : fixed) v.push_back(torch::full({b}, f / fixed_sum, fopts));
        return v;
      };
      if (options_.attention_weighting == "dice" && teachers_.size() > 1 && !labelled_rows.empty()) {
        mw = dice_weights(probs, batch.label, fixed, options_.dice_tau);
        if (!all_labelled) mw = by_sample(mw, fixed_rows(), mask);
      } else {
        mw = fixed_rows();
      }
      const auto sc = attention_map(output.taps.at(models::kEncoderCoarse), options_.attention.p);
      const auto sf = attention_map(output.taps.at(models::kDecoderFine), options_.attention.p);
      for (size_t i = 0; i < teachers_.size(); ++i) {
        const auto c = attention_map_loss_per_sample(sc, know[i].coarse, options_.attention);
        const auto f = attention_map_loss_per_sample(sf, know[i].fine, options_.attention);
        result.add_term(std::string(kTermAttnCoarse) + "." + teachers_[i]->name(), c.mean());
        result.add_term(std::string(kTermAttnFine) + "." + teachers_[i]->name(), f.mean());
        result.add_term("map_weight." + teachers_[i]->name(), mw[i].mean().detach());
        attn_coarse = attn_coarse + (mw[i].detach() * c).mean();
        attn_fine = attn_fine + (mw[i].detach() * f).mean();
      }
    }
    if (want_attn) {
      // Attention probabilities of the last attention layer (token counts checked by check_terms()).
      torch::Tensor student;
      for (auto it = output.taps.items().rbegin(); it != output.taps.items().rend(); ++it)
        if (it->first.rfind(models::kAttentionPrefix, 0) == 0 && it->second.dim() == 4) {
          student = it->second.mean(1);
          break;
        }
      TF_CHECK(student.defined(), InvalidArgument, "distillation term '", kTermAttnProbs,
               "': the student recorded no attention probabilities");
      for (size_t i = 0; i < teachers_.size(); ++i) {
        TF_CHECK(know[i].attention.defined() && know[i].attention.sizes() == student.sizes(), InvalidArgument,
                 "distillation term '", kTermAttnProbs, "': teacher '", teachers_[i]->name(),
                 "' gave attention probabilities that do not match the student's ", student.sizes().vec());
        const auto t = know[i].attention;
        const auto term = (t * (t.clamp_min(1e-8).log() - student.clamp_min(1e-8).log())).sum(-1).mean();
        result.add_term(std::string(kTermAttnProbs) + "." + teachers_[i]->name(), term);
        attn_probs = attn_probs + fixed[i] / fixed_sum * term;
      }
    }
  }
  if (options_.balance.enabled && torch::GradMode::is_enabled() && batch.step % options_.balance.every == 0) {
    std::map<std::string, torch::Tensor> measured;
    if (want_kd) measured[kTermKd] = kd;
    if (w.at(kTermAttnCoarse) > 0) measured[kTermAttnCoarse] = attn_coarse;
    if (w.at(kTermAttnFine) > 0) measured[kTermAttnFine] = attn_fine;
    update_balance(output, gt, measured);  // on every rank alike (it may reduce over ranks)
  }
  const auto scale = [&](const char* term) {
    if (!options_.balance.enabled) return 1.0;
    auto it = log_scale_.find(term);
    return it == log_scale_.end() ? 1.0 : std::exp(it->second);
  };
  result.add_term(kTermKd, kd);
  result.add_term(kTermAttnCoarse, attn_coarse);
  result.add_term(kTermAttnFine, attn_fine);
  result.add_term(kTermAttnProbs, attn_probs);
  total = total + w.at(kTermKd) * scale(kTermKd) * kd + w.at(kTermAttnCoarse) * scale(kTermAttnCoarse) * attn_coarse +
          w.at(kTermAttnFine) * scale(kTermAttnFine) * attn_fine + w.at(kTermAttnProbs) * attn_probs;
  for (const auto& [term, value] : w) result.add_term("weight." + term, torch::full({}, value));
  if (options_.balance.enabled)
    for (const auto& term : {kTermKd, kTermAttnCoarse, kTermAttnFine})
      result.add_term(std::string("scale.") + term, torch::full({}, scale(term)));
  result.total = total;
  return result;
}

nlohmann::json DistillLoss::state() const {
  nlohmann::json s = nlohmann::json::object();
  for (const auto& [term, v] : log_scale_) s["log_scale"][term] = v;
  return s;
}

void DistillLoss::load_state(const nlohmann::json& state) {
  log_scale_.clear();
  if (state.contains("log_scale"))
    for (auto it = state["log_scale"].begin(); it != state["log_scale"].end(); ++it)
      log_scale_[it.key()] = it->get<double>();
}

nlohmann::json DistillLoss::describe() const {
  nlohmann::json teachers = nlohmann::json::array();
  for (const auto& t : teachers_)
    teachers.push_back({{"name", t->name()}, {"weight", t->weight()}, {"source", t->source()},
                        {"channels", t->channel_names()}});
  // The active terms of each stage, for the log's first line.
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& st : options_.strategy.stages) {
    nlohmann::json active = nlohmann::json::object();
    for (const auto& [term, ramp] : st.weights)
      if (ramp.from != 0 || ramp.to != 0)
        active[term] = ramp.from == ramp.to ? nlohmann::json(ramp.from) : nlohmann::json{{"from", ramp.from}, {"to", ramp.to}};
    nlohmann::json j = {{"name", st.name}, {"active_terms", active}};
    if (st.epochs >= 0) j["epochs"] = st.epochs;
    else j["fraction"] = st.fraction;
    stages.push_back(j);
  }
  return {{"type", "distill"},
          {"options", to_json(options_)},
          {"teachers", teachers},
          {"cached", cached_},
          {"stages", stages},
          {"student_grid", {{"coarse", grid_.coarse}, {"fine", grid_.fine}, {"teacher_fine_tap", grid_.fine_tap}}}};
}

}  // namespace teachformer::distill
