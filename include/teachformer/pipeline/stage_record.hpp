// What made each stage of a long pipeline (a dataset, a trained model, a folder of predictions): the settings are
// written beside the stage's output when it starts and marked done when it ends, so that re-running the same command
// reuses finished stages, resumes an interrupted one, and refuses (naming the first setting that changed) to reuse
// one that was made differently, unless told to redo it.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "teachformer/core/json.hpp"

namespace teachformer::pipeline {

/// What to do with a stage.
enum class StageAction {
  Run,     ///< nothing there yet (or --force): run it from the start
  Resume,  ///< started with the same settings and not finished: continue it
  Reuse,   ///< finished with the same settings: take its result
};

/// The record of one stage: a JSON file {"stage", "settings", "done", "result"}.
class StageRecord {
 public:
  /// `folder` is the stage's output folder; `name` names it in messages ("teacher unetr (seed 0)"); the record is
  /// `record_file` (default <folder>/stage.json; give another path when the folder must hold only its own files,
  /// e.g. a dataset).
  StageRecord(std::filesystem::path folder, std::string name, nlohmann::json settings,
              std::filesystem::path record_file = {});

  /// Decides what to do. A record whose settings differ from these throws ConfigError naming the stage and the
  /// first differing key with both values ("... (hint: --force redoes it)"), unless `force`, which removes the
  /// folder's contents and runs the stage again.
  StageAction decide(bool force) const;
  /// Writes the record as started (before the stage runs).
  void start() const;
  /// Marks it done with its result.
  void finish(const nlohmann::json& result) const;
  /// The recorded result of a finished stage.
  nlohmann::json result() const;
  /// A short digest of the settings (for downstream stages' settings).
  std::string digest() const;

  const std::filesystem::path& folder() const { return folder_; }
  const nlohmann::json& settings() const { return settings_; }

 private:
  const std::filesystem::path& file() const { return file_; }
  std::filesystem::path folder_;
  std::filesystem::path file_;
  std::string name_;
  nlohmann::json settings_;
};

using teachformer::first_difference;

}  // namespace teachformer::pipeline
