// The teacher knowledge cache: each teacher's soft predictions (fp16) and attention maps (on the student's
// tap grids) over every whole preprocessed training case, computed once by sliding window, stored gzip-
// compressed beside the preprocessed data and cropped with each patch, so a distillation step costs about a
// student step. Live teachers remain the reference the cache is tested against.
//
// Layout: <preprocessed>/teacher_cache/<teacher>-<digest>/<case>.safetensors.gz with tensors
//   probs  float16 [K, Z, Y, X]              probabilities at T = 1 (any temperature is derived from them)
//   coarse float32 [1, Z/fc, Y/fc, X/fc]     mean_c |encoder_coarse|^p, resampled per window to the student grid
//   fine   float32 [1, Z/ff, Y/ff, X/ff]     the same for decoder_fine
// where fc, ff are the student's tap downsampling factors; the digest covers the teacher's weights file, the
// factors, p, the window size and the overlap, so a change rebuilds the cache.
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
  /// Sliding-window size [D, H, W] (the teacher's training patch) and overlap.
  std::vector<int64_t> roi;
  double overlap = 0.5;
};

/// What building a cache did.
struct CacheReport {
  std::filesystem::path dir;
  int64_t cases = 0;
  int64_t built = 0;
  /// Bytes on disk (compressed) and what the tensors take in memory.
  int64_t bytes_on_disk = 0;
  int64_t bytes_in_memory = 0;
  double seconds = 0;
};

/// The cache folder of `teacher` under `preprocessed_root` for these settings.
std::filesystem::path cache_dir(const std::filesystem::path& preprocessed_root, const Teacher& teacher,
                                const CacheSettings& settings);

/// Builds the missing cache files of `case_ids` (finished files are kept: writes are atomic).
CacheReport build_teacher_cache(const data::PreprocessedDataset& dataset, const std::vector<std::string>& case_ids,
                                const Teacher& teacher, const CacheSettings& settings);

/// The knowledge of one case from the cache (probs float16, maps float32).
struct CachedCase {
  torch::Tensor probs;
  torch::Tensor coarse;
  torch::Tensor fine;
};
/// Computes one case's cache entry (what build_teacher_cache writes).
CachedCase compute_cached_case(const torch::Tensor& image, const Teacher& teacher, const CacheSettings& settings);

/// Loads the cache of `teacher` into the extras of `cases` (names cache_extra_name(teacher, "probs" | "coarse" |
/// "fine")); throws IoError naming the missing file (build it first).
void attach_teacher_cache(std::vector<data::TrainingCase>& cases, const std::filesystem::path& dir,
                          const Teacher& teacher, const CacheSettings& settings);

}  // namespace teachformer::distill
