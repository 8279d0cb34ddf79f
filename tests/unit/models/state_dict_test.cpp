#include "teachformer/models/state_dict.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "test_checks.hpp"

namespace tfm = teachformer::models;

namespace {

using teachformer::test::message_of;

// Two levels of children, a buffer (BatchNorm's running stats) and an int64 buffer.
struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    lin = register_module("lin", torch::nn::Linear(3, 4));
    seq = register_module("seq", torch::nn::Sequential(torch::nn::Linear(4, 2), torch::nn::BatchNorm1d(2)));
    index = register_buffer("index", torch::arange(6, torch::kLong));
  }
  torch::nn::Linear lin{nullptr};
  torch::nn::Sequential seq{nullptr};
  torch::Tensor index;
};
TORCH_MODULE(Tiny);

}  // namespace

TEST(StateDict, ListsParametersAndBuffersUnderDottedNames) {
  Tiny m;
  const auto sd = tfm::state_dict(*m);
  std::vector<std::string> keys;
  for (const auto& kv : sd) keys.push_back(kv.first);
  const std::vector<std::string> expected{"index",           "lin.bias",          "lin.weight",
                                          "seq.0.bias",      "seq.0.weight",      "seq.1.bias",
                                          "seq.1.num_batches_tracked", "seq.1.running_mean",
                                          "seq.1.running_var", "seq.1.weight"};
  EXPECT_EQ(keys, expected);
  EXPECT_EQ(sd.at("index").scalar_type(), torch::kLong);
  // Aliases the module's storage.
  EXPECT_EQ(sd.at("lin.weight").data_ptr(), m->lin->weight.data_ptr());
}

TEST(StateDict, RoundTripCopiesEveryValue) {
  torch::manual_seed(1);
  Tiny a, b;
  tfm::StateDict src;
  for (const auto& kv : tfm::state_dict(*a)) src[kv.first] = kv.second.clone() + 1;  // differs from b
  const auto report = tfm::load_state_dict(*b, src);
  EXPECT_EQ(report.loaded.size(), src.size());
  EXPECT_TRUE(report.ignored.empty());
  EXPECT_TRUE(report.kept.empty());
  for (const auto& kv : tfm::state_dict(*b)) EXPECT_TRUE(torch::equal(kv.second, src.at(kv.first))) << kv.first;
}

TEST(StateDict, UnexpectedKeyIsAnErrorNamingIt) {
  Tiny m;
  auto sd = tfm::state_dict(*m);
  sd["lin.extra"] = torch::zeros({2});
  const auto msg = message_of([&] { tfm::load_state_dict(*m, sd); });
  EXPECT_NE(msg.find("unexpected 1 key(s): lin.extra"), std::string::npos) << msg;
}

TEST(StateDict, MissingKeyIsAnErrorNamingItAndNothingIsModified) {
  Tiny m;
  auto sd = tfm::state_dict(*m);
  tfm::StateDict partial;
  for (const auto& kv : sd) partial[kv.first] = torch::zeros_like(kv.second);
  partial.erase("seq.0.weight");
  const auto before = m->lin->weight.clone();
  const auto msg = message_of([&] { tfm::load_state_dict(*m, partial); });
  EXPECT_NE(msg.find("missing 1 key(s): seq.0.weight"), std::string::npos) << msg;
  EXPECT_TRUE(torch::equal(before, m->lin->weight));
}

TEST(StateDict, ShapeMismatchIsAnErrorWithBothShapes) {
  Tiny m;
  auto sd = tfm::state_dict(*m);
  tfm::StateDict copy(sd.begin(), sd.end());
  copy["lin.weight"] = torch::zeros({4, 5});
  const auto msg = message_of([&] { tfm::load_state_dict(*m, copy); });
  EXPECT_NE(msg.find("lin.weight (file [4, 5] Float, model [4, 3] Float)"), std::string::npos) << msg;
}

TEST(StateDict, IntegerIntoFloatIsAnError) {
  Tiny m;
  tfm::StateDict copy = tfm::state_dict(*m);
  copy["lin.bias"] = torch::zeros({4}, torch::kLong);
  const auto msg = message_of([&] { tfm::load_state_dict(*m, copy); });
  EXPECT_NE(msg.find("lin.bias"), std::string::npos) << msg;
}

TEST(StateDict, LongListsAreTruncatedWithACount) {
  Tiny m;
  tfm::StateDict sd = tfm::state_dict(*m);
  for (int i = 0; i < 15; ++i) sd["junk." + std::to_string(100 + i)] = torch::zeros({1});
  const auto msg = message_of([&] { tfm::load_state_dict(*m, sd); });
  EXPECT_NE(msg.find("unexpected 15 key(s)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(and 5 more)"), std::string::npos) << msg;
}

TEST(StateDict, IgnorablePatternsAreReportedNotErrors) {
  Tiny m;
  tfm::StateDict sd = tfm::state_dict(*m);
  sd["seq.cross_attn.to_q.weight"] = torch::zeros({1});
  sd["seq.norm_cross_attn.weight"] = torch::zeros({1});
  sd.erase("lin.bias");
  const auto report = tfm::load_state_dict(*m, sd, {"cross_attn.", "norm_cross_attn.", "lin.bias"});
  EXPECT_EQ(report.ignored, (std::vector<std::string>{"seq.cross_attn.to_q.weight", "seq.norm_cross_attn.weight"}));
  EXPECT_EQ(report.kept, (std::vector<std::string>{"lin.bias"}));
  EXPECT_EQ(report.loaded.size(), tfm::state_dict(*m).size() - 1);
}

TEST(StateDict, PatternsMatchAtNameBoundariesOrAsGlobs) {
  EXPECT_TRUE(tfm::key_matches("vit.blocks.0.cross_attn.to_q.weight", "cross_attn."));
  EXPECT_FALSE(tfm::key_matches("vit.blocks.0.norm_cross_attn.weight", "cross_attn."));
  EXPECT_TRUE(tfm::key_matches("vit.blocks.0.norm_cross_attn.weight", "norm_cross_attn."));
  EXPECT_TRUE(tfm::key_matches("cross_attn.x", "cross_attn."));
  EXPECT_TRUE(tfm::key_matches("vit.blocks.11.cross_attn.out_proj.bias", "vit.blocks.*.cross_attn.*"));
  EXPECT_FALSE(tfm::key_matches("vit.blocks.11.attn.out_proj.bias", "vit.blocks.*.cross_attn.*"));
  EXPECT_TRUE(tfm::key_matches("out.conv.conv.weight", "*weight"));
  EXPECT_FALSE(tfm::key_matches("out.conv.conv.bias", "*weight"));
  EXPECT_FALSE(tfm::key_matches("anything", ""));
}
