// The teacher knowledge cache, as distillation reads it: each teacher's soft predictions (fp16) and attention maps
// (on the student's tap grids) over every whole preprocessed training case, stored gzip-compressed beside the
// preprocessed data and cropped with each patch, so a distillation step costs about a student step. The cache is
// built by pipeline/teacher_cache_builder.hpp (a sliding-window pass of each teacher over the dataset); live
// teachers remain the reference the cache is tested against.
//
// Layout: <preprocessed>/teacher_cache/<teacher>-<digest>/<case>.safetensors.gz with tensors
//   probs  float16 [K, Z, Y, X]              probabilities at T = 1 (any temperature is derived from them)
//   coarse float32 [1, Z/fc, Y/fc, X/fc]     mean_c |encoder_coarse|^p, resampled per window to the student grid
//   fine   float32 [1, Z/ff, Y/ff, X/ff]     the same for decoder_fine
// where fc, ff are the student's tap downsampling factors; the digest covers the teacher's weights file, the
// factors, p, the fine tap, the window size, the overlap and the dataset channels the teacher reads, so a change
// rebuilds the cache.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "teachformer/data/sampler.hpp"
#include "teachformer/distill/teacher.hpp"

namespace teachformer::data {
class PreprocessedDataset;
}

namespace teachformer::distill {

/// How the cache is computed.
struct CacheSettings {
  /// Student tap downsampling factors (coarse, fine) relative to its input.
  int64_t coarse_factor = 8;
  int64_t fine_factor = 2;
  /// Attention-map exponent.
  int p = 2;
  /// Teacher tap of the fine map (models::kDecoderFine or models::kDecoderLast).
  std::string fine_tap = "decoder_fine";
  /// Sliding-window size [D, H, W] (the teacher's training patch) and overlap.
  std::vector<int64_t> roi;
  double overlap = 0.5;
};

/// The cache folder of `teacher` under `preprocessed_root` for these settings.
std::filesystem::path cache_dir(const std::filesystem::path& preprocessed_root, const Teacher& teacher,
                                const CacheSettings& settings);

/// The file of case `id` in cache folder `dir`: <dir>/<id>.safetensors.gz.
std::filesystem::path cache_case_file(const std::filesystem::path& dir, const std::string& id);

/// Loads case `c`'s cache file of `teacher` into its extras (names cache_extra_name(teacher, "probs" | "coarse" |
/// "fine")); IoError naming the missing file, FormatError when the cached grid is not the case's.
void attach_cached_case(data::TrainingCase& c, const std::filesystem::path& dir, const Teacher& teacher,
                        const CacheSettings& settings);
/// Loads the cache of `teacher` into the extras of `cases` (names cache_extra_name(teacher, "probs" | "coarse" |
/// "fine")); throws IoError naming the missing file (build it first).
void attach_teacher_cache(std::vector<data::TrainingCase>& cases, const std::filesystem::path& dir,
                          const Teacher& teacher, const CacheSettings& settings);

}  // namespace teachformer::distill
