// Builds the teacher knowledge cache that distillation reads (format: distill/teacher_cache.hpp): each teacher runs
// once by sliding window over every whole preprocessed training case. Building is a dataset-to-files job, like
// preprocessing, and needs inference's sliding window; distillation itself only reads the files, so the builder
// lives here, above both inference and distill.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <torch/types.h>

#include "teachformer/distill/teacher.hpp"
#include "teachformer/distill/teacher_cache.hpp"

namespace teachformer::data {
class PreprocessedDataset;
}

namespace teachformer::pipeline {

/// What building a cache did.
struct CacheReport {
  std::filesystem::path dir;
  int64_t cases = 0;
  int64_t built = 0;
  /// Bytes on disk (compressed).
  int64_t bytes_on_disk = 0;
  double seconds = 0;
};

/// The knowledge of one case (probs float16, maps float32), as a cache file holds it.
struct CachedCase {
  torch::Tensor probs;
  torch::Tensor coarse;
  torch::Tensor fine;
};
/// Computes one case's cache entry by sliding window: `image` [C, Z, Y, X] holds the channels of the dataset the
/// teacher reads (see distill::Teacher::select_channels).
CachedCase compute_cached_case(const torch::Tensor& image, const distill::Teacher& teacher,
                               const distill::CacheSettings& settings);

/// Builds the missing cache files of `case_ids` (finished files are kept: writes are atomic).
CacheReport build_teacher_cache(const data::PreprocessedDataset& dataset, const std::vector<std::string>& case_ids,
                                const distill::Teacher& teacher, const distill::CacheSettings& settings);

}  // namespace teachformer::pipeline
