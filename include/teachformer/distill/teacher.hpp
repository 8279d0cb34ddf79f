// Frozen teachers: a trained model folder, the student's channels it reads, its weight, and the knowledge it
// gives (probabilities and attention maps on the student's tap grids), live or from the cache.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "teachformer/models/seg_model.hpp"

namespace teachformer::distill {

/// Where a teacher comes from.
struct TeacherSpec {
  /// Model folder written by `teachformer train`.
  std::filesystem::path dir;
  /// Fold to load.
  int fold = 0;
  /// "best" or "final".
  std::string checkpoint = "best";
  /// Weight among teachers (>= 0).
  double weight = 1.0;
  /// Display name (default: the model key, made unique).
  std::string name;
};

/// The student's tap grids that teacher attention maps are resampled to ([D, H, W] each), the map exponent and the
/// teacher tap the fine map is taken from (models::kDecoderFine, or models::kDecoderLast).
struct KnowledgeGrid {
  std::vector<int64_t> coarse;
  std::vector<int64_t> fine;
  int p = 2;
  std::string fine_tap = "decoder_fine";
};

/// What a teacher contributes for one batch.
struct TeacherKnowledge {
  /// Probabilities at T = 1 [B, K, D, H, W] (float32).
  torch::Tensor probs;
  /// Attention maps mean_c |F|^p on the student's grids [B, 1, d, h, w]; undefined when not requested.
  torch::Tensor coarse;
  torch::Tensor fine;
  /// Head-averaged attention probabilities of the last transformer layer [B, N, N] (when requested and present).
  torch::Tensor attention;
};

/// Computes the knowledge from a teacher's forward output (shared by live teachers and the cache builder).
TeacherKnowledge knowledge_from_output(const models::SegOutput& output, const KnowledgeGrid& grid, bool maps,
                                       bool attention);

/// A frozen teacher.
class Teacher {
 public:
  /// `channel_indices`: positions, in the input the teacher will be given, of the channels it reads, in its
  /// order; `channel_names` their names (empty: "ch<i>").
  Teacher(std::string name, models::SegmentationModel model, std::vector<int64_t> channel_indices, double weight,
          std::string source, std::vector<std::string> channel_names = {});
  /// Loads fold/checkpoint of a model folder; maps the teacher's channels by name onto `input_channels`, the
  /// channels of the tensors it will be given: the student's input for a live teacher, the dataset's channels for
  /// the teacher cache (InvalidArgument naming a channel that is not there).
  static std::shared_ptr<Teacher> load(const TeacherSpec& spec, const std::vector<std::string>& input_channels);

  /// Runs the teacher in eval + inference mode on an input [B, C, ...] (its channels selected); the returned
  /// tensors are ordinary (not inference) tensors so losses can use them.
  TeacherKnowledge run(const torch::Tensor& input, const KnowledgeGrid& grid, bool maps, bool attention) const;
  /// Selects this teacher's channels from an input [B, C, ...].
  torch::Tensor select_channels(const torch::Tensor& input) const;

  const std::string& name() const { return name_; }
  double weight() const { return weight_; }
  const std::vector<int64_t>& channel_indices() const { return channel_indices_; }
  const std::vector<std::string>& channel_names() const { return channel_names_; }
  /// A copy named `name` with weight `weight` (same model).
  std::shared_ptr<Teacher> renamed(const std::string& name, double weight) const;
  models::SegmentationModel model() const { return model_; }
  /// Where it was loaded from (for logs and cache keys).
  const std::string& source() const { return source_; }
  void to(const c10::Device& device);

 private:
  std::string name_;
  models::SegmentationModel model_;
  std::vector<int64_t> channel_indices_;
  std::vector<std::string> channel_names_;
  double weight_;
  std::string source_;
};

}  // namespace teachformer::distill
