// teachformer predict: segment cases with a model folder (its own preprocessing), writing label maps on each
// case's reference grid.
#include <algorithm>
#include <cstdio>

#include "common.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/folder_lock.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/interrupt.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/core/runtime.hpp"
#include "teachformer/inference/predictor.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/metrics/picai.hpp"

namespace teachformer::app {

void register_predict(CLI::App& parent) {
  auto* cmd = parent.add_subcommand("predict", "Segment cases with a trained model folder");
  static std::string input, output, model_dir, checkpoint = "best", device = "cpu", precision;
  static std::vector<int> folds;
  static double overlap = 0.5;
  static int64_t sw_batch = 1;
  static bool tta = false, probabilities = false, detection = false, resume = false;
  static std::vector<std::string> formats{"nifti"}, series_patterns;
  static double suv_scale = 0;
  cmd->add_option("-i,--input", input,
                  "Cases: a dataset in any supported layout, DICOM studies (a folder per patient, series at any depth), "
                  "or {case}_{XXXX}.nii.gz files")
      ->required();
  cmd->add_option("-o,--output", output, "Output folder for {case}.nii.gz")->required();
  cmd->add_option("-m,--model", model_dir, "Model folder written by train or distill")->required();
  cmd->add_option("-f,--folds", folds, "Folds to ensemble (default: all trained folds)");
  cmd->add_option("--checkpoint", checkpoint, "best or final")->check(CLI::IsMember({"best", "final"}))->capture_default_str();
  cmd->add_option("--overlap", overlap, "Sliding-window overlap in [0, 1)")->capture_default_str();
  cmd->add_option("--sw-batch-size", sw_batch, "Windows per forward pass")->capture_default_str();
  cmd->add_flag("--tta", tta, "Mirroring test-time augmentation (8 passes; slow on CPU)");
  cmd->add_flag("--save-probabilities", probabilities, "Also write {case}_probabilities.nii.gz (float32, 4D)");
  cmd->add_flag("--detection-maps", detection,
                "Also write {case}_detection.nii.gz: PI-CAI lesion candidates from the foreground probability");
  cmd->add_flag("--continue", resume, "Skip cases whose {case}.nii.gz already exists");
  cmd->add_option("--device", device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  cmd->add_option("--precision", precision,
                  "CPU arithmetic: fp32, bf16 (needs oneDNN on an AVX-512 CPU; fast with AVX512-BF16/AMX) or int8 (a "
                  "folder written by teachformer quantize). Default: the folder's own (int8 when quantized, else fp32)")
      ->check(CLI::IsMember({"fp32", "bf16", "int8"}));
  cmd->add_option("--format", formats,
                  "Output formats: nifti ({case}.nii.gz), dicom-seg ({case}.dcm, a DICOM Segmentation object on the "
                  "reference series; DICOM input only); repeat or comma-separate for both")
      ->delimiter(',')
      ->check(CLI::IsMember({"nifti", "dicom-seg"}))
      ->capture_default_str();
  cmd->add_option("--series-pattern", series_patterns,
                  "DICOM input: choose a channel's series by SeriesDescription, CHANNEL=REGEX or "
                  "CHANNEL=MODALITY:REGEX (repeatable; defaults in docs/dicom.md)");
  cmd->add_option("--suv-scale", suv_scale,
                  "DICOM input: multiply PET Bq/mL by this factor (g/Bq) instead of computing SUVbw from the header "
                  "(for headers with missing or wrong dose, weight or times)");
  set_command(cmd, [] {
    TF_CHECK(overlap >= 0 && overlap < 1, InvalidArgument, "--overlap must be in [0, 1), got ", overlap);
    inference::PredictOptions o;
    o.folds = folds;
    o.checkpoint = checkpoint;
    o.overlap = overlap;
    o.sw_batch_size = sw_batch;
    o.mirror = tta;
    o.probabilities = probabilities || detection;
    o.device = device;
    o.precision = precision;
    const inference::Predictor predictor(model_dir, o);
    if (predictor.precision() != models::Precision::kFloat32)
      std::fprintf(stderr, "predict: %s inference\n", models::precision_name(predictor.precision()).c_str());
    data::DicomDatasetOptions dicom;
    dicom.series_patterns = series_patterns;
    if (suv_scale > 0) dicom.read.suv_scale = suv_scale;
    const bool nifti = std::find(formats.begin(), formats.end(), "nifti") != formats.end();
    const bool seg = std::find(formats.begin(), formats.end(), "dicom-seg") != formats.end();
    const auto cases = inference::cases_for_prediction(input, predictor.folder().plan.channel_names(), dicom);
    if (seg)
      for (const auto& c : cases) {
        const auto& ref = c.channel_files.at(size_t(data::reference_channel_index(c.channel_names)));
        TF_CHECK(fs::is_directory(ref), InvalidArgument, "--format dicom-seg needs DICOM input; case '", c.id,
                 "' reads its reference channel from the file '", ref.string(), "'");
      }
    fs::create_directories(output);
    const FolderLock lock(output, "prediction folder", FolderLock::Mode::Refuse);
    remove_stale_temporaries(output);
    ProgressBar bar("predict", int64_t(cases.size()));
    int64_t done = 0, skipped = 0;
    double total = 0;
    for (const auto& c : cases) {
      const fs::path target = fs::path(output) / (c.id + (nifti ? ".nii.gz" : ".dcm"));
      if (resume && fs::exists(target)) {
        ++skipped;
        bar.advance();
        continue;
      }
      throw_if_stop_requested(std::to_string(done) + " case(s) written to '" + output + "'");
      reset_peak_rss();
      const auto p = predictor.predict(c);
      // The file --continue looks for is written last, so a case cut short by a kill is predicted again.
      if (probabilities) io::write_image(fs::path(output) / (c.id + "_probabilities.nii.gz"), *p.probabilities);
      if (detection) {
        const auto fg = p.probabilities->data.narrow(0, 1, p.probabilities->channels() - 1).sum(0);
        const auto cand = metrics::picai::extract_lesion_candidates(fg);
        io::Volume d{cand.detection_map.unsqueeze(0).to(torch::kFloat), p.probabilities->geometry};
        io::write_image(fs::path(output) / (c.id + "_detection.nii.gz"), d);
      }
      if (seg) inference::write_dicom_seg_prediction(fs::path(output) / (c.id + ".dcm"), c, p.labels, predictor.folder());
      if (nifti) io::write_label(target, p.labels);
      total += p.seconds;
      ++done;
      std::fprintf(stderr, "%s: %.2f s (preprocess %.2f s, network %.2f s, restore %.2f s), peak RSS %.0f MiB\n",
                   c.id.c_str(), p.seconds, p.preprocess_seconds, p.network_seconds, p.restore_seconds,
                   peak_rss_mib());
      bar.advance();
    }
    bar.finish();
    std::printf("predict: %lld case(s) in %.1f s (%.2f s/case), %lld skipped, folds %zu, %s -> %s\n", (long long)done,
                total, done ? total / double(done) : 0.0, (long long)skipped, predictor.folds().size(),
                models::precision_name(predictor.precision()).c_str(), output.c_str());
    return 0;
  }, graceful_stop("--continue"));
}

}  // namespace teachformer::app
