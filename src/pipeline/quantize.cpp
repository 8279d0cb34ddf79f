#include "teachformer/pipeline/quantize.hpp"

#include <algorithm>
#include <chrono>
#include <map>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/core/random.hpp"
#include "teachformer/version.hpp"
#include "teachformer/data/preprocessed.hpp"
#include "teachformer/data/sampler.hpp"
#include "teachformer/data/splits.hpp"
#include "teachformer/inference/ensemble.hpp"
#include "teachformer/inference/predictor.hpp"
#include "teachformer/models/low_precision.hpp"
#include "teachformer/models/model_folder.hpp"
#include "teachformer/train/trainer.hpp"

namespace teachformer::pipeline {
namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<int64_t> channel_indices(const models::ModelFolder& folder, const data::PreprocessedDataset& dataset) {
  const auto names = dataset.channel_names();
  std::vector<int64_t> indices;
  for (const auto& ch : folder.channels) {
    const auto it = std::find(names.begin(), names.end(), ch);
    TF_CHECK(it != names.end(), DatasetError, "preprocessed dataset '", dataset.root().string(), "' has no channel '",
             ch, "' that model folder '", folder.root.string(), "' needs; it has ", names);
    indices.push_back(int64_t(it - names.begin()));
  }
  return indices;
}

// The fold's training and validation cases (labelled only); fold -1 ("all") uses every labelled case for both.
data::Fold fold_cases(const models::ModelFolder& folder, const data::PreprocessedDataset& dataset, int fold) {
  const auto labelled = dataset.labelled_case_ids();
  auto keep_labelled = [&](std::vector<std::string> ids) {
    ids.erase(std::remove_if(ids.begin(), ids.end(),
                             [&](const std::string& id) {
                               return std::find(labelled.begin(), labelled.end(), id) == labelled.end();
                             }),
              ids.end());
    return ids;
  };
  if (fold < 0) return {labelled, labelled};
  fs::path splits = folder.root / "splits_final.json";
  if (!fs::exists(splits)) splits = dataset.root() / "splits_final.json";
  const auto folds = data::read_splits(splits);
  TF_CHECK(fold < int(folds.size()), DatasetError, "'", splits.string(), "' has ", folds.size(), " folds; fold ", fold,
           " of model folder '", folder.root.string(), "' is not among them");
  return {keep_labelled(folds[size_t(fold)].train), keep_labelled(folds[size_t(fold)].val)};
}

// Calibrates the activation ranges of one fold's model on `patches` training patches.
models::Int8Calibration calibrate(models::SegmentationModelImpl& model, const data::PreprocessedDataset& dataset,
                                  const std::vector<std::string>& train, const std::vector<int64_t>& channels,
                                  const std::vector<int64_t>& patch_size, int64_t patches, Rng& rng) {
  models::LowPrecisionModel* low = models::low_precision_model(model);
  data::PatchSamplerOptions so;
  so.patch_size = patch_size;
  transforms::AugmentOptions no_augmentation;
  no_augmentation.p_scale = 0.0;
  const data::PatchSampler sampler(so, no_augmentation);
  std::vector<size_t> order(train.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[size_t(rng.below(int64_t(i)))]);
  const torch::Tensor index = torch::tensor(channels, torch::kLong);
  std::map<size_t, data::TrainingCase> loaded;
  torch::NoGradGuard no_grad;
  low->start_calibration();
  for (int64_t i = 0; i < patches; ++i) {
    const size_t c = order[size_t(i) % order.size()];
    auto it = loaded.find(c);
    if (it == loaded.end()) {
      const auto pc = dataset.load_case(train[c]);
      data::TrainingCase tc{pc.id, pc.image.index_select(0, index), pc.label, {}, {}};
      data::index_foreground(tc);
      it = loaded.emplace(c, std::move(tc)).first;
      if (loaded.size() > 8) loaded.erase(loaded.begin() == it ? std::next(loaded.begin()) : loaded.begin());
    }
    const auto sample = sampler.sample(it->second, rng);
    model.forward(sample.image.unsqueeze(0), models::TapRequest{false, false, false, false});
  }
  return low->finish_calibration();
}

QuantizeGuard guard_fold(const fs::path& folder_dir, int fold, const std::string& which,
                         const data::PreprocessedDataset& dataset, std::vector<std::string> cases,
                         const QuantizeOptions& o, int64_t classes) {
  if (o.guard_cases > 0 && int64_t(cases.size()) > o.guard_cases) cases.resize(size_t(o.guard_cases));
  TF_CHECK(!cases.empty(), DatasetError, "quantize: fold ", fold, " has no labelled validation case to check the ",
           "int8 model against float32 (use --no-guard to skip the check)");
  inference::PredictOptions po;
  po.folds = {fold};
  po.checkpoint = which;
  po.overlap = o.overlap;
  po.precision = "fp32";
  const inference::Predictor fp32(folder_dir, po);
  po.precision = "int8";
  const inference::Predictor int8(folder_dir, po);
  QuantizeGuard g;
  g.cases = cases;
  int64_t both = 0, either = 0;
  for (const auto& id : cases) {
    const auto pc = dataset.load_case(id);
    auto t0 = std::chrono::steady_clock::now();
    const torch::Tensor a = inference::argmax_labels(fp32.predict_preprocessed(pc.image));
    g.seconds_fp32 += since(t0);
    t0 = std::chrono::steady_clock::now();
    const torch::Tensor b = inference::argmax_labels(int8.predict_preprocessed(pc.image));
    g.seconds_int8 += since(t0);
    const torch::Tensor ref = pc.label.to(a.scalar_type());
    g.dice_fp32 += train::mean_foreground_dice(a, ref, classes);
    g.dice_int8 += train::mean_foreground_dice(b, ref, classes);
    const torch::Tensor fg = (a > 0) | (b > 0);
    either += fg.sum().item<int64_t>();
    both += (fg & (a == b)).sum().item<int64_t>();
  }
  g.dice_fp32 /= double(cases.size());
  g.dice_int8 /= double(cases.size());
  g.foreground_agreement = either ? double(both) / double(either) : 1.0;
  g.passed = g.dice_fp32 - g.dice_int8 <= o.max_dice_drop && g.foreground_agreement >= o.min_agreement;
  return g;
}

nlohmann::json guard_json(const QuantizeGuard& g, const QuantizeOptions& o) {
  return {{"cases", g.cases},
          {"dice_fp32", g.dice_fp32},
          {"dice_int8", g.dice_int8},
          {"foreground_agreement", g.foreground_agreement},
          {"seconds_fp32", g.seconds_fp32},
          {"seconds_int8", g.seconds_int8},
          {"max_dice_drop", o.max_dice_drop},
          {"min_agreement", o.min_agreement},
          {"passed", g.passed}};
}

}  // namespace

QuantizeSummary quantize_model_folder(const QuantizeOptions& o) {
  const models::ModelFolder folder = models::open_model_folder(o.model_dir);
  const std::string where = "model folder '" + o.model_dir.string() + "'";
  TF_CHECK(folder.quantization.is_null(), InvalidArgument, where, " is already quantized (it has quantization.json); ",
           "quantize the float32 folder it was made from");
  TF_CHECK(o.checkpoint == "best" || o.checkpoint == "final", InvalidArgument,
           "quantize: --checkpoint must be best or final, got '", o.checkpoint, "'");
  TF_CHECK(o.calibration_patches >= 1, InvalidArgument, "quantize: --calibration must be >= 1 patch, got ",
           o.calibration_patches);
  TF_CHECK(o.max_dice_drop >= 0 && o.min_agreement >= 0 && o.min_agreement <= 1, InvalidArgument,
           "quantize: --max-dice-drop must be >= 0 and --min-agreement in [0, 1], got ", o.max_dice_drop, " and ",
           o.min_agreement);
  fs::path root = o.model_dir;
  if (!root.has_filename()) root = root.parent_path();
  const fs::path output = o.output.empty() ? fs::path(root.string() + "_int8") : o.output;
  TF_CHECK(!fs::exists(output) && !fs::is_symlink(output), IoError, "quantize: output '", output.string(),
           "' already exists; choose another -o or remove it");

  fs::path data_dir = o.data;
  if (data_dir.empty()) {
    TF_CHECK(folder.config.contains("dataset") && folder.config["dataset"].contains("path"), InvalidArgument, where,
             ": config.json does not name its preprocessed dataset; pass --data");
    data_dir = folder.config["dataset"]["path"].get<std::string>();
  }
  TF_CHECK(fs::is_directory(data_dir), IoError, "quantize: preprocessed dataset '", data_dir.string(),
           "' (from ", o.data.empty() ? "config.json of the " + where : std::string("--data"),
           ") does not exist; pass --data");
  const data::PreprocessedDataset dataset = data::open_preprocessed(data_dir);
  TF_CHECK(dataset.plan().channel_names() == folder.plan.channel_names(), DatasetError, "preprocessed dataset '",
           data_dir.string(), "' has channels ", dataset.channel_names(), " but ", where, " was planned for ",
           folder.plan.channel_names());
  const auto channels = channel_indices(folder, dataset);
  const int64_t classes = int64_t(dataset.labels().size());

  std::vector<int> folds = o.folds;
  if (folds.empty())
    for (int f : folder.folds)
      if (fs::exists(folder.root / models::fold_folder(f) / ("checkpoint_" + o.checkpoint + ".safetensors")))
        folds.push_back(f);
  TF_CHECK(!folds.empty(), IoError, where, " has no fold with checkpoint_", o.checkpoint, ".safetensors");

  QuantizeSummary summary;
  summary.output = output;
  nlohmann::json q = {{"format", "teachformer-quantization"},
                      {"version", 1},
                      {"precision", "int8"},
                      {"checkpoint", o.checkpoint},
                      {"scheme",
                       {{"weights", "symmetric s8, one scale per output channel (127 / max |w|)"},
                        {"activations", "asymmetric u8, one scale and zero point per layer (255 steps over "
                                        "[min(smallest x, 0), largest |x|] in calibration)"},
                        {"layers", "3^3 stride-1 and k2 s2 convolutions but the first; the rest runs in float32"}}},
                      {"calibration",
                       {{"patches", o.calibration_patches},
                        {"patch_size", folder.patch_size},
                        {"seed", o.seed},
                        {"data", fs::absolute(data_dir).string()},
                        {"foreground_fraction", 1.0 / 3.0}}},
                      {"source", fs::absolute(o.model_dir).string()},
                      {"tool_version", kVersion},
                      {"folds", nlohmann::json::object()}};

  // Everything is assembled under a temporary name beside the output and renamed at the end.
  const fs::path tmp = temporary_sibling(output);
  fs::create_directories(tmp);
  try {
    for (const char* name : {"config.json", "plan.json", "dataset.json", "fingerprint.json", "splits_final.json"})
      if (fs::exists(folder.root / name)) fs::copy_file(folder.root / name, tmp / name);
    for (int f : folds) {
      const fs::path ck = folder.checkpoint(f, o.checkpoint);
      fs::create_directories(tmp / models::fold_folder(f));
      fs::copy_file(ck, tmp / models::fold_folder(f) / ck.filename());
      sync_path(tmp / models::fold_folder(f) / ck.filename());
      sync_path(tmp / models::fold_folder(f));
    }
    for (int f : folds) {
      QuantizeFold qf;
      qf.fold = f;
      qf.patches = o.calibration_patches;
      const data::Fold cases = fold_cases(folder, dataset, f);
      TF_CHECK(!cases.train.empty(), DatasetError, "quantize: fold ", f, " of ", where,
               " has no labelled training case in '", data_dir.string(), "' to calibrate on");
      auto model = folder.load(f, o.checkpoint);
      model->eval();
      TF_CHECK(models::low_precision_model(*model), InvalidArgument, "quantize: model '", folder.model, "' of ", where,
               " has no int8 path (only teachformer_s)");
      Rng rng({o.seed, uint64_t(f + 1)});
      const auto t0 = std::chrono::steady_clock::now();
      const models::Int8Calibration calibration =
          calibrate(*model, dataset, cases.train, channels, folder.patch_size, o.calibration_patches, rng);
      spdlog::info("quantize: {}: {} calibration patches in {:.1f} s, {} layers", models::fold_folder(f),
                   o.calibration_patches, since(t0), calibration.input_absmax.size());
      for (const auto& [name, absmax] : calibration.input_absmax) qf.layers.emplace_back(name, absmax);
      q["folds"][models::fold_folder(f)] = {{"layers", models::to_json(calibration)}, {"guard", nullptr}};
      write_json(tmp / "quantization.json", q);
      if (!o.no_guard) {
        qf.guarded = true;
        qf.guard = guard_fold(tmp, f, o.checkpoint, dataset, cases.val, o, classes);
        q["folds"][models::fold_folder(f)]["guard"] = guard_json(qf.guard, o);
        TF_CHECK(qf.guard.passed, InvalidArgument, "quantize: ", models::fold_folder(f), " of ", where,
                 " fails the accuracy guard on ", qf.guard.cases.size(), " validation case(s): Dice int8 ",
                 qf.guard.dice_int8, " vs fp32 ", qf.guard.dice_fp32, " (allowed drop ", o.max_dice_drop,
                 "), foreground agreement ", qf.guard.foreground_agreement, " (needs >= ", o.min_agreement,
                 "); nothing was written. More --calibration patches may help; the float32 folder is unchanged");
      }
      summary.folds.push_back(std::move(qf));
    }
    write_json(tmp / "quantization.json", q);
    sync_path(tmp);
    fs::rename(tmp, output);
    sync_path(output.has_parent_path() ? output.parent_path() : fs::current_path());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  return summary;
}

}  // namespace teachformer::pipeline
