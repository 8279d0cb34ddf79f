// teachformer convert: DICOM studies -> nnU-Net files ({case}_{XXXX}.nii.gz + dataset.json), PET in SUVbw.
#include <cstdio>

#include "common.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/data/dicom_dataset.hpp"

namespace teachformer::app {

void register_convert(CLI::App& parent) {
  auto* cmd = parent.add_subcommand(
      "convert", "Convert DICOM studies to nnU-Net files (imagesTs/{case}_{XXXX}.nii.gz, dataset.json; PET in SUV)");
  static std::string input, out;
  static std::vector<std::string> channels, series_patterns;
  static double suv_scale = 0;
  cmd->add_option("-i,--input", input, "DICOM folder: a folder per patient with its series at any depth")->required();
  cmd->add_option("-o,--output", out, "Output folder (an nnU-Net raw dataset)")->required();
  cmd->add_option("--channels", channels, "Channels in order (default: CT,PET for PET/CT studies, T2W,ADC,HBV for MR)")
      ->delimiter(',');
  cmd->add_option(
      "--series-pattern", series_patterns,
      "Choose a channel's series by SeriesDescription, CHANNEL=REGEX or CHANNEL=MODALITY:REGEX (repeatable)");
  cmd->add_option("--suv-scale", suv_scale,
                  "Multiply PET Bq/mL by this factor (g/Bq) instead of computing SUVbw from the header");
  set_command(cmd, [] {
    data::DicomDatasetOptions o;
    o.channel_names = channels;
    o.series_patterns = series_patterns;
    if (suv_scale > 0) o.read.suv_scale = suv_scale;
    const data::DicomConversion r = data::convert_dicom(input, out, o);
    for (const auto& p : r.problems) std::printf("%s\n", p.to_string().c_str());
    std::printf("convert: wrote %zu case(s) to %s/imagesTs, %zu problem(s)\n", r.cases.size(), out.c_str(),
                r.problems.size());
    return 0;
  });
}

}  // namespace teachformer::app
