#include "teachformer/distill/teacher_cache.hpp"

#include <torch/torch.h>

#include <functional>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/distill/distill_loss.hpp"
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

}  // namespace

fs::path cache_case_file(const fs::path& dir, const std::string& id) { return dir / (id + ".safetensors.gz"); }

fs::path cache_dir(const fs::path& preprocessed_root, const Teacher& teacher, const CacheSettings& s) {
  std::string key = file_signature(teacher.source()) + "|" + std::to_string(s.coarse_factor) + "|" +
                    std::to_string(s.fine_factor) + "|" + std::to_string(s.p) + "|" + std::to_string(s.overlap) + "|" +
                    s.fine_tap;
  for (auto r : s.roi) key += "|" + std::to_string(r);
  for (auto c : teacher.channel_indices()) key += "|c" + std::to_string(c);
  return preprocessed_root / "teacher_cache" / (teacher.name() + "-" + hex_digest(key).substr(0, 12));
}

void attach_cached_case(data::TrainingCase& c, const fs::path& dir, const Teacher& teacher, const CacheSettings& s) {
  const auto file = cache_case_file(dir, c.id);
  require_exists(file, "teacher cache file (build the cache first)");
  const io::SafeTensors st = io::read_safetensors(file);
  const auto& probs = st.at("probs");
  TF_CHECK(probs.sizes().slice(1) == c.image.sizes().slice(1), FormatError, "'", file.string(),
           "': cached probabilities ", probs.sizes().vec(), " do not match the case image ", c.image.sizes().vec());
  c.extras[cache_extra_name(teacher.name(), "probs")] = {probs, 1};
  c.extras[cache_extra_name(teacher.name(), "coarse")] = {st.at("coarse"), s.coarse_factor};
  c.extras[cache_extra_name(teacher.name(), "fine")] = {st.at("fine"), s.fine_factor};
}

void attach_teacher_cache(std::vector<data::TrainingCase>& cases, const fs::path& dir, const Teacher& teacher,
                          const CacheSettings& s) {
  for (auto& c : cases) attach_cached_case(c, dir, teacher, s);
}

}  // namespace teachformer::distill
