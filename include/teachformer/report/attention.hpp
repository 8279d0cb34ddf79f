// The attention maps the student is distilled on, computed for one case: the model runs over the case (sliding
// window, taps encoder_coarse and decoder_fine stitched), Q(F) = mean_c |F|^p of each tap (distill::attention_map)
// is upsampled to the preprocessed grid, scaled to [0, 1] (min-max), and put back on the scan's reference grid.
#pragma once
#include <filesystem>
#include <string>

#include <torch/types.h>

#include "teachformer/data/case.hpp"
#include "teachformer/io/volume.hpp"

namespace teachformer::report {

/// The coarse (encoder_coarse) and fine (decoder_fine) maps of one model on one case.
struct AttentionMaps {
  /// float32 [1, Z, Y, X] in [0, 1] (min-max scaled) on the case's reference grid (CT / T2W / channel 0).
  io::Volume coarse;
  io::Volume fine;
};

/// Runs the model folder's fold (checkpoint "best") on a raw case with the folder's own preprocessing; `p` is the
/// exponent of Q(F) (the distillation's, 2 by default). Throws DatasetError when the case lacks a channel the
/// folder's plan needs.
AttentionMaps attention_maps(const std::filesystem::path& model_dir, int fold, const data::Case& c, int p = 2,
                             const std::string& device = "cpu");

/// The same on a case of a preprocessed dataset (its image and geometry as stored).
AttentionMaps attention_maps_preprocessed(const std::filesystem::path& model_dir, int fold,
                                          const std::filesystem::path& preprocessed, const std::string& case_id,
                                          int p = 2, const std::string& device = "cpu");

}  // namespace teachformer::report
