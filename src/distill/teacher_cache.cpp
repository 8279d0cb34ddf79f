#include "teachformer/distill/teacher_cache.hpp"

#include <torch/torch.h>

#include <chrono>
#include <functional>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/data/preprocessed.hpp"
#include "teachformer/distill/distill_loss.hpp"
#include "teachformer/inference/sliding_window.hpp"
#include "teachformer/io/safetensors.hpp"

namespace teachformer::distill {
namespace {

std::string hex_digest(const std::string& text) {
  // FNV-1a 64: a stable short key (not security relevant).
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string file_signature(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  const auto time = fs::last_write_time(path, ec).time_since_epoch().count();
  return path + ":" + std::to_string(size) + ":" + std::to_string(time);
}

fs::path case_file(const fs::path& dir, const std::string& id) { return dir / (id + ".safetensors.gz"); }

}  // namespace

fs::path cache_dir(const fs::path& preprocessed_root, const Teacher& teacher, const CacheSettings& s) {
  std::string key = file_signature(teacher.source()) + "|" + std::to_string(s.coarse_factor) + "|" +
                    std::to_string(s.fine_factor) + "|" + std::to_string(s.p) + "|" + std::to_string(s.overlap);
  for (auto r : s.roi) key += "|" + std::to_string(r);
  for (auto c : teacher.channel_indices()) key += "|c" + std::to_string(c);
  return preprocessed_root / "teacher_cache" / (teacher.name() + "-" + hex_digest(key).substr(0, 12));
}

CachedCase compute_cached_case(const torch::Tensor& image, const Teacher& teacher, const CacheSettings& s) {
  TF_CHECK(s.roi.size() == 3, InvalidArgument, "teacher cache: roi must have 3 values");
  for (int d = 0; d < 3; ++d)
    TF_CHECK(s.roi[d] % s.coarse_factor == 0 && s.roi[d] % s.fine_factor == 0, InvalidArgument,
             "teacher cache: window ", s.roi, " must be divisible by the student's tap factors ", s.coarse_factor,
             " and ", s.fine_factor);
  KnowledgeGrid grid;
  grid.p = s.p;
  for (int d = 0; d < 3; ++d) {
    grid.coarse.push_back(s.roi[d] / s.coarse_factor);
    grid.fine.push_back(s.roi[d] / s.fine_factor);
  }
  auto model = teacher.model();
  inference::WindowFunction fn = [&](const torch::Tensor& windows) {
    c10::InferenceMode guard;
    const auto out = model->forward(teacher.select_channels(windows), {true, false, false});
    const auto k = knowledge_from_output(out, grid, true, false);
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
  report.dir = cache_dir(dataset.root(), teacher, s);
  report.cases = int64_t(case_ids.size());
  fs::create_directories(report.dir);
  teacher.model()->eval();
  ProgressBar bar("cache " + teacher.name(), report.cases);
  for (const auto& id : case_ids) {
    const auto file = case_file(report.dir, id);
    if (!fs::exists(file)) {
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

void attach_teacher_cache(std::vector<data::TrainingCase>& cases, const fs::path& dir, const Teacher& teacher,
                          const CacheSettings& s) {
  for (auto& c : cases) {
    const auto file = case_file(dir, c.id);
    require_exists(file, "teacher cache file (build the cache first)");
    const io::SafeTensors st = io::read_safetensors(file);
    const auto& probs = st.at("probs");
    TF_CHECK(probs.sizes().slice(1) == c.image.sizes().slice(1), FormatError, "'", file.string(),
             "': cached probabilities ", probs.sizes().vec(), " do not match the case image ", c.image.sizes().vec());
    c.extras[cache_extra_name(teacher.name(), "probs")] = {probs, 1};
    c.extras[cache_extra_name(teacher.name(), "coarse")] = {st.at("coarse"), s.coarse_factor};
    c.extras[cache_extra_name(teacher.name(), "fine")] = {st.at("fine"), s.fine_factor};
  }
}

}  // namespace teachformer::distill
