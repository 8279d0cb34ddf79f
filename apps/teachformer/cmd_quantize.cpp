// teachformer quantize: post-training static int8 quantization of a model folder, with an accuracy guard.
#include <cstdio>

#include "common.hpp"
#include "teachformer/pipeline/quantize.hpp"

namespace teachformer::app {

void register_quantize(CLI::App& parent) {
  auto* cmd = parent.add_subcommand(
      "quantize", "Write an int8 copy of a model folder (calibrated on training patches, checked against float32)");
  static pipeline::QuantizeOptions o;
  static std::string model_dir, output, data;
  cmd->add_option("model", model_dir, "Float32 model folder (written by train or distill)")->required();
  cmd->add_option("-o,--output", output, "The int8 model folder to write (default: <model>_int8; must not exist)");
  cmd->add_option("--calibration", o.calibration_patches, "Training patches per fold that calibrate the activation "
                  "ranges")->capture_default_str();
  cmd->add_option("-d,--data", data, "Preprocessed dataset (default: the one the model was trained on)");
  cmd->add_option("--checkpoint", o.checkpoint, "best or final")
      ->check(CLI::IsMember({"best", "final"}))
      ->capture_default_str();
  cmd->add_option("-f,--folds", o.folds, "Folds to quantize (default: every fold with the checkpoint)");
  cmd->add_option("--seed", o.seed, "Seed of the calibration patches")->capture_default_str();
  cmd->add_option("--max-dice-drop", o.max_dice_drop,
                  "Guard: largest allowed fall of the mean validation Dice from fp32 to int8")->capture_default_str();
  cmd->add_option("--min-agreement", o.min_agreement,
                  "Guard: smallest share of the voxels either precision calls foreground on which both agree")
      ->capture_default_str();
  cmd->add_option("--guard-cases", o.guard_cases, "Validation cases the guard predicts per fold (0 = all)")
      ->capture_default_str();
  cmd->add_flag("--no-guard", o.no_guard, "Write the folder without comparing int8 with fp32");
  set_command(cmd, [] {
    o.model_dir = model_dir;
    o.output = output;
    o.data = data;
    const auto s = pipeline::quantize_model_folder(o);
    for (const auto& f : s.folds) {
      if (f.guarded)
        std::printf("quantize: fold %d: %lld patches, %zu int8 layers; guard on %zu case(s): Dice fp32 %.4f, int8 "
                    "%.4f (%+.4f), foreground agreement %.4f, sliding window %.2f s -> %.2f s\n",
                    f.fold, (long long)f.patches, f.layers.size(), f.guard.cases.size(), f.guard.dice_fp32,
                    f.guard.dice_int8, f.guard.dice_int8 - f.guard.dice_fp32, f.guard.foreground_agreement,
                    f.guard.seconds_fp32, f.guard.seconds_int8);
      else
        std::printf("quantize: fold %d: %lld patches, %zu int8 layers; no guard\n", f.fold, (long long)f.patches,
                    f.layers.size());
    }
    std::printf("quantize: wrote %s\n", s.output.string().c_str());
    return 0;
  });
}

}  // namespace teachformer::app
