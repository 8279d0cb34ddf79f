#include "teachformer/pipeline/teacher_cache_builder.hpp"

#include <torch/torch.h>

#include <chrono>

#include "teachformer/core/error.hpp"
#include "teachformer/core/folder_lock.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/interrupt.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/data/preprocessed.hpp"
#include "teachformer/inference/sliding_window.hpp"
#include "teachformer/io/safetensors.hpp"

namespace teachformer::pipeline {

using distill::CacheSettings;
using distill::KnowledgeGrid;
using distill::Teacher;

CachedCase compute_cached_case(const torch::Tensor& image, const Teacher& teacher, const CacheSettings& s) {
  TF_CHECK(s.roi.size() == 3, InvalidArgument, "teacher cache: roi must have 3 values");
  for (int d = 0; d < 3; ++d)
    TF_CHECK(s.roi[d] % s.coarse_factor == 0 && s.roi[d] % s.fine_factor == 0, InvalidArgument,
             "teacher cache: window ", s.roi, " must be divisible by the student's tap factors ", s.coarse_factor,
             " and ", s.fine_factor);
  KnowledgeGrid grid;
  grid.p = s.p;
  grid.fine_tap = s.fine_tap;
  for (int d = 0; d < 3; ++d) {
    grid.coarse.push_back(s.roi[d] / s.coarse_factor);
    grid.fine.push_back(s.roi[d] / s.fine_factor);
  }
  auto model = teacher.model();
  inference::WindowFunction fn = [&](const torch::Tensor& windows) {
    c10::InferenceMode guard;
    const auto out = model->forward(teacher.select_channels(windows), {true, false, false});
    const auto k = distill::knowledge_from_output(out, grid, true, false);
    return std::vector<torch::Tensor>{out.logits, k.coarse, k.fine};
  };
  const int64_t fc = s.coarse_factor, ff = s.fine_factor;
  const std::vector<inference::WindowOutput> outputs{
      {"logits", {1, 1, 1}, inference::OutputKind::Segmentation},
      {"coarse", {fc, fc, fc}, inference::OutputKind::Feature},
      {"fine", {ff, ff, ff}, inference::OutputKind::Feature}};
  inference::SlidingWindowOptions o;
  o.roi_size(s.roi).overlap(s.overlap);
  const auto r = inference::sliding_window_inference(image, {fn}, outputs, o);
  return {r.at("logits").to(torch::kHalf), r.at("coarse"), r.at("fine")};
}

CacheReport build_teacher_cache(const data::PreprocessedDataset& dataset, const std::vector<std::string>& case_ids,
                                const Teacher& teacher, const CacheSettings& s) {
  const auto t0 = std::chrono::steady_clock::now();
  CacheReport report;
  report.dir = distill::cache_dir(dataset.root(), teacher, s);
  report.cases = int64_t(case_ids.size());
  fs::create_directories(report.dir);
  // Students trained at once share a teacher's cache: the second waits for the first, then finds the cases there.
  const FolderLock lock(report.dir, "teacher cache", FolderLock::Mode::Wait);
  remove_stale_temporaries(report.dir);
  teacher.model()->eval();
  ProgressBar bar("cache " + teacher.name(), report.cases);
  for (const auto& id : case_ids) {
    const auto file = distill::cache_case_file(report.dir, id);
    if (!fs::exists(file)) {
      throw_if_stop_requested(std::to_string(report.built) + " case(s) added to the teacher cache '" +
                              report.dir.string() + "'");
      const auto c = dataset.load_case(id);
      const CachedCase cc = compute_cached_case(c.image, teacher, s);
      io::write_safetensors(file, {{"probs", cc.probs}, {"coarse", cc.coarse}, {"fine", cc.fine}},
                            {{"teacher", teacher.name()}, {"source", teacher.source()}, {"case", id}});
      ++report.built;
    }
    report.bytes_on_disk += int64_t(fs::file_size(file));
    bar.advance();
  }
  bar.finish();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace teachformer::pipeline
