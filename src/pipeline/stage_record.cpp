#include "teachformer/pipeline/stage_record.hpp"

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::pipeline {
namespace {

std::string hex_digest(const std::string& text) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

StageRecord::StageRecord(fs::path folder, std::string name, nlohmann::json settings, fs::path record_file)
    : folder_(std::move(folder)),
      file_(record_file.empty() ? folder_ / "stage.json" : std::move(record_file)),
      name_(std::move(name)),
      settings_(std::move(settings)) {}

StageAction StageRecord::decide(bool force) const {
  if (!fs::exists(file())) {
    // Output without a record (an older run or someone else's files): never reuse silently.
    if (fs::exists(folder_) && !fs::is_empty(folder_)) {
      TF_CHECK(force, ConfigError, name_, ": '", folder_.string(), "' holds files but no record ('",
               file_.filename().string(), "') of how they were made (hint: --force redoes the stage)");
      fs::remove_all(folder_);
    }
    return StageAction::Run;
  }
  const nlohmann::json record = read_json(file());
  const std::string diff = first_difference(settings_, record.value("settings", nlohmann::json()));
  if (!diff.empty()) {
    TF_CHECK(force, ConfigError, name_, " was made with other settings (", diff, ") in '", folder_.string(),
             "' (hint: --force redoes it and everything after it)");
    fs::remove_all(folder_);
    fs::remove(file_);
    return StageAction::Run;
  }
  return record.value("done", false) ? StageAction::Reuse : StageAction::Resume;
}

void StageRecord::start() const {
  fs::create_directories(folder_);
  fs::create_directories(file_.parent_path());
  write_json(file(), {{"stage", name_}, {"settings", settings_}, {"done", false}});
}

void StageRecord::finish(const nlohmann::json& result) const {
  write_json(file(), {{"stage", name_}, {"settings", settings_}, {"done", true}, {"result", result}});
}

nlohmann::json StageRecord::result() const {
  const auto record = read_json(file());
  TF_CHECK(record.value("done", false), InternalError, name_, ": no result recorded in '", file().string(), "'");
  return record.at("result");
}

std::string StageRecord::digest() const { return hex_digest(settings_.dump()).substr(0, 12); }

}  // namespace teachformer::pipeline
