#include "bench/detail/tasks.hpp"

#include <sys/resource.h>

#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <optional>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/runtime.hpp"
#include "teachformer/data/dataset.hpp"
#include "teachformer/dist/gradient_reducer.hpp"
#include "teachformer/dist/process_group.hpp"
#include "teachformer/dist/world.hpp"
#include "teachformer/distill/distill_loss.hpp"
#include "teachformer/inference/model_window.hpp"
#include "teachformer/inference/predictor.hpp"
#include "teachformer/inference/sliding_window.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/losses/deep_supervision.hpp"
#include "teachformer/models/low_precision.hpp"
#include "teachformer/models/model_info.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/bench/bench.hpp"
#include "teachformer/train/distillation_objective.hpp"
#include "teachformer/train/objective.hpp"
#include "teachformer/train/optim.hpp"
#include "teachformer/train/presets.hpp"

namespace teachformer::bench::detail {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Task fields: a missing or mistyped field names itself.
template <typename T>
T field(const Json& task, const char* key) {
  TF_CHECK(task.contains(key), InvalidArgument, "bench task '", task.value("task", std::string("?")),
           "': field '", key, "' is missing");
  try {
    return task.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    TF_THROW(InvalidArgument, "bench task '", task.value("task", std::string("?")), "': field '", key,
             "' has the wrong type (", task.at(key).dump(), ")");
  }
}

template <typename T>
T field_or(const Json& task, const char* key, T fallback) {
  return task.contains(key) ? field<T>(task, key) : fallback;
}

// How often and how long a measurement runs.
struct Timing {
  int repeats = 3;
  double budget_s = 20.0;
  double min_s = 0.0;
  uint64_t seed = 0;
};

Timing timing(const Json& task) {
  Timing t;
  t.repeats = field_or<int>(task, "repeats", t.repeats);
  t.budget_s = field_or<double>(task, "budget_s", t.budget_s);
  t.min_s = field_or<double>(task, "min_s", t.min_s);
  t.seed = field_or<uint64_t>(task, "seed", t.seed);
  TF_CHECK(t.repeats >= 1, InvalidArgument, "bench task: repeats must be >= 1, got ", t.repeats);
  TF_CHECK(t.budget_s >= 0, InvalidArgument, "bench task: budget_s must be >= 0, got ", t.budget_s);
  TF_CHECK(t.min_s >= 0, InvalidArgument, "bench task: min_s must be >= 0, got ", t.min_s);
  return t;
}

// CPU seconds (user + system, all threads) of this process so far.
double process_cpu_s() {
  struct rusage u {};
  ::getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Wall and CPU seconds of each timed run.
struct Runs {
  std::vector<double> wall, cpu;
};

// Timed runs after the caller's warm-up: `repeats` of them, fewer when the budget is spent (never none), more (up to
// kMaxRuns) while they took less than min_s.
Runs timed_runs(const std::function<void()>& fn, const Timing& t) {
  constexpr int kMaxRuns = 50;
  Runs runs;
  double total = 0;
  auto more = [&] {
    const int n = int(runs.wall.size());
    if (n == 0) return true;
    if (total >= t.budget_s) return false;
    return n < t.repeats || (total < t.min_s && n < kMaxRuns);
  };
  while (more()) {
    const double c0 = process_cpu_s();
    const auto t0 = Clock::now();
    fn();
    runs.wall.push_back(since(t0));
    runs.cpu.push_back(process_cpu_s() - c0);
    total += runs.wall.back();
  }
  return runs;
}

// Median wall seconds and the runs; CPU seconds (all threads) beside them: on a loaded machine the wall time
// includes waiting for descheduled threads, the CPU time much less so.
Json timing_result(const Runs& runs) {
  return {{"seconds", median(runs.wall)}, {"runs", runs.wall}, {"cpu_s", median(runs.cpu)}};
}

std::vector<int64_t> spatial_of(const std::vector<int64_t>& shape, size_t first) {
  return std::vector<int64_t>(shape.begin() + long(first), shape.end());
}

std::vector<int64_t> input_shape(const Json& task) {
  auto in = field<std::vector<int64_t>>(task, "input");
  TF_CHECK(in.size() == 5, InvalidArgument, "bench task: input must be [B, C, D, H, W], got ", in);
  for (int64_t v : in) TF_CHECK(v > 0, InvalidArgument, "bench task: input must be positive, got ", in);
  return in;
}

// The model's own message when it rejects the input shape.
std::optional<std::string> rejection(const models::SegmentationModelImpl& model, const std::vector<int64_t>& shape) {
  try {
    model.check_input(torch::zeros(shape));
  } catch (const InvalidArgument& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

// A model built for an input [B, C, D, H, W], with what the parent needs to know about it; `rejected` holds the
// model's message when its options (e.g. UNETR's img_size) or its input rules do not allow this input.
struct Built {
  models::SegmentationModel model;
  Json facts = Json::object();
  std::optional<std::string> rejected;
};

Built build(const BenchModel& m, const std::vector<int64_t>& input) {
  Built b;
  try {
    b.model = models::create_model(m.key, options_for_input(m, spatial_of(input, 2)));
  } catch (const InvalidArgument& e) {
    b.rejected = e.what();
    return b;
  }
  const auto& spec = b.model->spec();
  b.facts = {{"params", models::count_parameters(*b.model)},
             {"spec", {{"fixed_input_size", spec.fixed_input_size}, {"size_divisor", spec.size_divisor}}},
             {"options", spec.options}};
  b.rejected = rejection(*b.model, input);
  return b;
}

Json skipped(Json facts, const std::string& why) {
  facts["skipped"] = true;
  facts["error"] = why;
  return facts;
}

// A label with a foreground cube in the middle (classes 0 and 1): every loss term sees both classes.
torch::Tensor cube_label(const std::vector<int64_t>& input) {
  auto label = torch::zeros({input[0], 1, input[2], input[3], input[4]}, torch::kByte);
  using torch::indexing::Slice;
  label.index_put_({Slice(), Slice(), Slice(input[2] / 4, 3 * input[2] / 4), Slice(input[3] / 4, 3 * input[3] / 4),
                    Slice(input[4] / 4, 3 * input[4] / 4)},
                   1);
  return label;
}

// One optimiser step as the trainer takes it: forward with the objective's taps, loss, backward, clipping, AdamW.
class Stepper {
 public:
  Stepper(models::SegmentationModel model, std::shared_ptr<train::Objective> objective, data::Batch batch)
      : model_(std::move(model)), objective_(std::move(objective)), batch_(std::move(batch)) {
    model_->train();
    for (const auto& item : model_->named_parameters()) params_.emplace_back(item.key(), item.value());
    optimizer_ = train::make_optimizer(params_, train::OptimizerOptions{});
  }
  // Data-parallel: every rank starts from rank 0's weights and all-reduces its gradients in buckets during the
  // backward pass, as `train` does under --nproc-per-node.
  void distribute(std::shared_ptr<dist::ProcessGroup> group) {
    dist::broadcast_module(*group, *model_, 0);
    std::vector<torch::Tensor> params;
    for (const auto& [_, p] : params_) params.push_back(p);
    reducer_ = std::make_unique<dist::GradientReducer>(group, params);
  }
  const dist::GradientReducer* reducer() const { return reducer_.get(); }
  void step() {
    optimizer_->zero_grad();
    const models::SegOutput out = model_->forward(batch_.image, objective_->taps());
    last_ = objective_->compute(out, batch_, train::StepContext{step_, 0, 1000, 1});
    if (reducer_) reducer_->prepare();
    last_.total.backward();
    if (reducer_) reducer_->finish();
    torch::nn::utils::clip_grad_norm_(model_->parameters(), 12.0);
    optimizer_->step();
    ++step_;
  }
  const losses::LossBreakdown& last() const { return last_; }

 private:
  models::SegmentationModel model_;
  std::shared_ptr<train::Objective> objective_;
  data::Batch batch_;
  train::NamedParameters params_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<dist::GradientReducer> reducer_;
  losses::LossBreakdown last_;
  int64_t step_ = 0;
};

Json step_result(Stepper& stepper, const Timing& t, dist::ProcessGroup* group = nullptr) {
  stepper.step();  // warm-up
  if (group) group->barrier();  // the ranks start their timed steps together
  Json out = timing_result(timed_runs([&] { stepper.step(); }, t));
  out["loss"] = stepper.last().total.item<double>();
  Json terms = Json::object();
  for (const auto& [name, value] : stepper.last().values()) terms[name] = value;
  out["terms"] = terms;
  return out;
}

std::shared_ptr<train::Objective> supervised_objective(const BenchModel& m, int64_t in_channels, int64_t out_channels) {
  // The loss the model's paper preset trains with (focal with deep supervision for H-DenseFormer, Dice + CE else).
  const Json preset = train::preset_config("paper", m.key, in_channels, out_channels);
  losses::DeepSupervisionOptions ds;
  losses::from_json(preset.at("deep_supervision"), ds);
  return std::make_shared<train::SupervisedObjective>(preset.at("loss"), ds);
}

Json merge(Json a, const Json& b) {
  for (auto it = b.begin(); it != b.end(); ++it) a[it.key()] = *it;
  return a;
}

}  // namespace

Json bench_forward(const Json& task) {
  const BenchModel m = bench_model_from_json(field<Json>(task, "model"));
  const auto input = input_shape(task);
  const Timing t = timing(task);
  const models::Precision precision = models::parse_precision(field_or<std::string>(task, "precision", "fp32"));
  torch::manual_seed(t.seed);
  Built b = build(m, input);
  if (b.rejected) return skipped(b.facts, *b.rejected);
  Json out = b.facts;
  out["precision"] = models::precision_name(precision);
  const models::TapRequest none{false, false, false, false};
  torch::Tensor probe, reference;
  if (precision != models::Precision::kFloat32) {
    models::LowPrecisionModel* low = models::low_precision_model(*b.model);
    if (!low) return skipped(b.facts, "model " + m.name + " has no " + models::precision_name(precision) + " path");
    if (precision == models::Precision::kBFloat16) {
      const std::string why = models::low_precision_support().bf16_unavailable();
      if (!why.empty()) return skipped(b.facts, why);
    }
    b.model->eval();
    c10::InferenceMode guard;
    // Random weights, random inputs: the calibration and the comparison only make the timed model a faithful one.
    if (precision == models::Precision::kInt8) {
      low->start_calibration();
      for (int i = 0; i < 4; ++i) b.model->forward(torch::randn(input), none);
      const models::Int8Calibration calibration = low->finish_calibration();
      probe = torch::randn(input);
      reference = b.model->forward(probe, none).logits;
      low->set_precision(precision, &calibration);
    } else {
      probe = torch::randn(input);
      reference = b.model->forward(probe, none).logits;
      low->set_precision(precision);
    }
  }
  out["rss_model_mb"] = current_rss_mib();
  // describe_model's counted forward doubles as the warm-up.
  const models::ModelInfo info = models::describe_model(*b.model, input);
  out["gflops"] = info.gflops;
  out["macs_by_kind"] = info.macs_by_kind;
  out["output_shape"] = info.output_shape;
  b.model->eval();
  c10::InferenceMode guard;
  if (reference.defined()) {
    const torch::Tensor y = b.model->forward(probe, none).logits;
    out["agreement_vs_fp32"] = (y.argmax(1) == reference.argmax(1)).to(torch::kDouble).mean().item<double>();
    out["rel_error_vs_fp32"] = ((y - reference).norm() / reference.norm().clamp_min(1e-30)).item<double>();
  }
  const torch::Tensor x = torch::randn(input);
  out = merge(out, timing_result(timed_runs([&] { b.model->forward(x, none); }, t)));
  out["peak_rss_mb"] = peak_rss_mib();
  return out;
}

Json bench_train_step(const Json& task) {
  const BenchModel m = bench_model_from_json(field<Json>(task, "model"));
  const auto input = input_shape(task);
  const Timing t = timing(task);
  torch::manual_seed(t.seed);
  Built b = build(m, input);
  if (b.rejected) return skipped(b.facts, *b.rejected);
  data::Batch batch;
  batch.image = torch::randn(input);
  batch.label = cube_label(input);
  Stepper stepper(b.model, supervised_objective(m, input[1], b.model->spec().out_channels), batch);
  const int ranks = field_or<int>(task, "ranks", 1);
  TF_CHECK(ranks >= 1, InvalidArgument, "bench task 'train': ranks must be >= 1, got ", ranks);
  std::shared_ptr<dist::ProcessGroup> group;
  if (ranks > 1) {
    const dist::WorldInfo world = dist::world_from_environment();
    TF_CHECK(world.world_size == ranks, InvalidArgument, "bench task 'train': ", ranks,
             " ranks asked for, but this process is ", world.describe(), " (start it through bench --worker)");
    group = dist::ProcessGroup::connect(world);
    stepper.distribute(group);
  }
  Timing fixed = t;
  // Every rank must run the same number of steps (each one all-reduces): no time budget decides it.
  if (group) fixed.budget_s = 1e30, fixed.min_s = 0;
  Json out = merge(b.facts, step_result(stepper, fixed, group.get()));
  out["ranks"] = ranks;
  if (group) {
    out["rank"] = group->rank();
    out["allreduce_bytes"] = stepper.reducer()->bytes_per_step();
    out["buckets"] = stepper.reducer()->buckets();
    out["backend"] = group->backend();
  }
  out["peak_rss_mb"] = peak_rss_mib();
  return out;
}

Json bench_distill_step(const Json& task) {
  const std::string mode = field<std::string>(task, "mode");
  TF_CHECK(mode == "student" || mode == "cached" || mode == "live", InvalidArgument,
           "bench task 'distill': mode must be student, cached or live, got '", mode, "'");
  const BenchModel sm = bench_model_from_json(field<Json>(task, "model"));
  const auto input = input_shape(task);
  const auto patch = spatial_of(input, 2);
  const Timing t = timing(task);
  torch::manual_seed(t.seed);
  Built b = build(sm, input);
  if (b.rejected) return skipped(b.facts, *b.rejected);
  const int64_t classes = b.model->spec().out_channels;
  data::Batch batch;
  batch.image = torch::randn(input);
  batch.label = cube_label(input);
  Json out = b.facts;
  out["mode"] = mode;

  std::shared_ptr<train::Objective> objective;
  if (mode == "student") {
    objective = std::make_shared<train::SupervisedObjective>();
  } else {
    // The student's tap grids at the patch, as a distillation job computes them.
    distill::KnowledgeGrid grid;
    {
      torch::NoGradGuard no_grad;
      const auto o = b.model->forward(torch::zeros(input), {true, false, false});
      grid.coarse = o.taps.at(models::kEncoderCoarse).sizes().slice(2).vec();
      grid.fine = o.taps.at(models::kDecoderFine).sizes().slice(2).vec();
    }
    out["grid"] = {{"coarse", grid.coarse}, {"fine", grid.fine}};
    std::vector<std::shared_ptr<distill::Teacher>> teachers;
    std::vector<int64_t> channels;
    for (int64_t c = 0; c < input[1]; ++c) channels.push_back(c);
    Json names = Json::array();
    for (const auto& tj : field<Json>(task, "teachers")) {
      const BenchModel tm = bench_model_from_json(tj);
      models::SegmentationModel model;
      if (mode == "live") {
        Built tb = build(tm, input);
        TF_CHECK(!tb.rejected, InvalidArgument, "live teacher '", tm.name, "' rejects the student's patch ", patch,
                 ": ", *tb.rejected);
        model = tb.model;
      } else {
        // A cached teacher is never run: a tiny stand-in carries its name; its knowledge comes with the batch.
        model = models::create_model("teachformer_s",
                                     {{"preset", "tiny"}, {"in_channels", input[1]}, {"out_channels", classes}});
      }
      teachers.push_back(std::make_shared<distill::Teacher>(tm.name, model, channels, 1.0, "bench"));
      names.push_back(tm.name);
    }
    TF_CHECK(!teachers.empty(), InvalidArgument, "bench task 'distill': mode '", mode, "' needs teachers");
    out["teachers"] = names;
    if (mode == "cached") {
      // What the loader crops out of the teacher cache: fp16 probabilities at the patch, float maps on the grids.
      for (const auto& teacher : teachers) {
        const auto probs = torch::softmax(torch::randn({input[0], classes, patch[0], patch[1], patch[2]}), 1);
        batch.extras[distill::cache_extra_name(teacher->name(), "probs")] = {probs.to(torch::kHalf), 1};
        batch.extras[distill::cache_extra_name(teacher->name(), "coarse")] = {
            torch::rand({input[0], 1, grid.coarse[0], grid.coarse[1], grid.coarse[2]}), patch[0] / grid.coarse[0]};
        batch.extras[distill::cache_extra_name(teacher->name(), "fine")] = {
            torch::rand({input[0], 1, grid.fine[0], grid.fine[1], grid.fine[2]}), patch[0] / grid.fine[0]};
      }
    }
    distill::DistillOptions options;
    // Every KD term at weight 1 (the "joint" stage of the teachformer strategy): the most a step computes.
    options.strategy = distill::strategy_preset("multi_no_staging");
    options.cache = mode == "cached";
    auto loss = std::make_shared<distill::DistillLoss>(teachers, options, grid, mode == "cached");
    objective = std::make_shared<train::DistillationObjective>(loss);
    out["strategy"] = options.strategy.name;
  }
  Stepper stepper(b.model, objective, batch);
  out = merge(out, step_result(stepper, t));
  out["peak_rss_mb"] = peak_rss_mib();
  return out;
}

Json bench_window(const Json& task) {
  const BenchModel m = bench_model_from_json(field<Json>(task, "model"));
  const auto image_shape = field<std::vector<int64_t>>(task, "case");
  const auto roi = field<std::vector<int64_t>>(task, "roi");
  const double overlap = field_or<double>(task, "overlap", 0.5);
  TF_CHECK(image_shape.size() == 4, InvalidArgument, "bench task 'window': case must be [C, D, H, W], got ",
           image_shape);
  TF_CHECK(roi.size() == 3, InvalidArgument, "bench task 'window': roi must be [D, H, W], got ", roi);
  const Timing t = timing(task);
  torch::manual_seed(t.seed);
  const std::vector<int64_t> window{1, image_shape[0], roi[0], roi[1], roi[2]};
  Built b = build(m, window);
  if (b.rejected) return skipped(b.facts, *b.rejected);
  b.model->eval();
  const torch::Tensor image = torch::randn(image_shape);
  inference::SlidingWindowOptions o;
  o.roi_size(roi).overlap(overlap).mode(inference::BlendMode::Gaussian);
  const std::vector<inference::WindowFunction> members{inference::model_window_function(b.model)};
  c10::InferenceMode guard;
  b.model->forward(torch::zeros(window), models::TapRequest{false, false, false, false});  // warm-up
  int64_t windows = 0;
  Json out = merge(b.facts, timing_result(timed_runs(
                                [&] {
                                  const auto r = inference::sliding_window_inference(image, members,
                                                                                     {inference::WindowOutput{}}, o);
                                  windows = r.windows;
                                },
                                t)));
  out["windows"] = windows;
  out["peak_rss_mb"] = peak_rss_mib();
  return out;
}

Json bench_end_to_end(const Json& task) {
  const fs::path model_dir = field<std::string>(task, "model_dir");
  const fs::path dataset = field<std::string>(task, "dataset");
  const fs::path output = field<std::string>(task, "output");
  const Timing t = timing(task);
  inference::PredictOptions po;
  po.overlap = field_or<double>(task, "overlap", po.overlap);
  Json out;
  auto t0 = Clock::now();
  const inference::Predictor predictor(model_dir, po);
  out["load_s"] = since(t0);
  const auto cases = data::open_dataset(dataset).all_cases();
  TF_CHECK(!cases.empty(), DatasetError, "bench task 'e2e': dataset '", dataset.string(), "' has no case");
  const data::Case& c = cases.front();
  // Per phase, one entry per run: preprocess (read, resample, normalise), network (sliding window), restore (argmax
  // and resampling onto the CT grid), write (the .nii.gz label).
  std::vector<double> preprocess, network, restore, write;
  std::vector<int64_t> label_shape;
  auto predict_and_write = [&] {
    const inference::CasePrediction p = predictor.predict(c);
    const auto t_write = Clock::now();
    io::write_image(output, p.labels, io::PixelType::UInt8);
    write.push_back(since(t_write));
    preprocess.push_back(p.preprocess_seconds);
    network.push_back(p.network_seconds);
    restore.push_back(p.restore_seconds);
    label_shape = p.labels.data.sizes().vec();
  };
  t0 = Clock::now();
  predict_and_write();  // warm-up: the first case in a fresh process
  out["first_s"] = since(t0);
  for (auto* v : {&preprocess, &network, &restore, &write}) v->clear();
  out = merge(out, timing_result(timed_runs(predict_and_write, t)));
  out["preprocess_s"] = median(preprocess);
  out["network_s"] = median(network);
  out["restore_s"] = median(restore);
  out["write_s"] = median(write);
  out["case"] = c.id;
  out["label_shape"] = label_shape;
  out["patch"] = predictor.folder().patch_size;
  out["peak_rss_mb"] = peak_rss_mib();
  return out;
}

}  // namespace teachformer::bench::detail
