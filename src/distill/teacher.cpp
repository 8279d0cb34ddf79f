#include "teachformer/distill/teacher.hpp"

#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/distill/kd_terms.hpp"
#include "teachformer/models/model_folder.hpp"

namespace teachformer::distill {

TeacherKnowledge knowledge_from_output(const models::SegOutput& output, const KnowledgeGrid& grid, bool maps,
                                       bool attention) {
  TeacherKnowledge k;
  k.probs = torch::softmax(output.logits.to(torch::kFloat), 1);
  if (maps) {
    k.coarse = resample_map(attention_map(output.taps.at(models::kEncoderCoarse), grid.p), grid.coarse);
    TF_CHECK(output.taps.contains(grid.fine_tap), InvalidArgument, "teacher knowledge: the model records no '",
             grid.fine_tap, "' tap");
    k.fine = resample_map(attention_map(output.taps.at(grid.fine_tap), grid.p), grid.fine);
  }
  if (attention) {
    // The last attention tap, averaged over heads: [B, N, N].
    for (auto it = output.taps.items().rbegin(); it != output.taps.items().rend(); ++it) {
      if (it->first.rfind(models::kAttentionPrefix, 0) == 0 && it->second.dim() == 4) {
        k.attention = it->second.to(torch::kFloat).mean(1);
        break;
      }
    }
  }
  return k;
}

Teacher::Teacher(std::string name, models::SegmentationModel model, std::vector<int64_t> channel_indices,
                 double weight, std::string source, std::vector<std::string> channel_names)
    : name_(std::move(name)),
      model_(std::move(model)),
      channel_indices_(std::move(channel_indices)),
      channel_names_(std::move(channel_names)),
      weight_(weight),
      source_(std::move(source)) {
  if (channel_names_.empty())
    for (size_t i = 0; i < channel_indices_.size(); ++i) channel_names_.push_back("ch" + std::to_string(i));
  TF_CHECK(model_, InvalidArgument, "teacher '", name_, "': no model");
  TF_CHECK(weight_ >= 0, InvalidArgument, "teacher '", name_, "': weight must be >= 0, got ", weight_);
  TF_CHECK(int64_t(channel_indices_.size()) == model_->spec().in_channels, InvalidArgument, "teacher '", name_,
           "' reads ", model_->spec().in_channels, " channels but ", channel_indices_.size(), " were mapped");
  model_->eval();
  for (auto& p : model_->parameters()) p.set_requires_grad(false);
}

std::shared_ptr<Teacher> Teacher::load(const TeacherSpec& spec, const std::vector<std::string>& input_channels) {
  const models::ModelFolder folder = models::open_model_folder(spec.dir);
  std::vector<int64_t> indices;
  for (const auto& ch : folder.channels) {
    int64_t found = -1;
    for (size_t i = 0; i < input_channels.size(); ++i)
      if (input_channels[i] == ch) found = int64_t(i);
    TF_CHECK(found >= 0, InvalidArgument, "teacher '", spec.dir.string(), "' needs channel '", ch,
             "' but it will be given channels ", input_channels);
    indices.push_back(found);
  }
  auto model = folder.load(spec.fold, spec.checkpoint);
  const std::string name = spec.name.empty() ? folder.model : spec.name;
  const std::string source = fs::absolute(folder.checkpoint(spec.fold, spec.checkpoint)).string();
  return std::make_shared<Teacher>(name, model, indices, spec.weight, source, folder.channels);
}

std::shared_ptr<Teacher> Teacher::renamed(const std::string& name, double weight) const {
  return std::make_shared<Teacher>(name, model_, channel_indices_, weight, source_, channel_names_);
}

torch::Tensor Teacher::select_channels(const torch::Tensor& x) const {
  bool identity = int64_t(channel_indices_.size()) == x.size(1);
  for (size_t i = 0; identity && i < channel_indices_.size(); ++i) identity = channel_indices_[i] == int64_t(i);
  if (identity) return x;
  return x.index_select(1, torch::tensor(channel_indices_, torch::TensorOptions(torch::kLong).device(x.device())));
}

TeacherKnowledge Teacher::run(const torch::Tensor& input, const KnowledgeGrid& grid, bool maps, bool attention) const {
  TeacherKnowledge k;
  {
    c10::InferenceMode guard;
    const models::SegOutput out = model_->forward(select_channels(input), {maps, attention, false, false});
    k = knowledge_from_output(out, grid, maps, attention);
  }
  // Inference tensors cannot be saved for backward: hand out ordinary copies (small next to the forward).
  auto plain = [](torch::Tensor& t) {
    if (t.defined()) t = t.clone();
  };
  plain(k.probs);
  plain(k.coarse);
  plain(k.fine);
  plain(k.attention);
  return k;
}

void Teacher::to(const c10::Device& device) { model_->to(device); }

}  // namespace teachformer::distill
