// Norm and activation factories: MONAI names (case-insensitive) with arguments, the JSON forms of a spec, and
// errors that name the context and list the valid names.
#include "teachformer/nn/factories.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "test_checks.hpp"

namespace teachformer::nn {
namespace {

using teachformer::test::message_of;

int64_t count_parameters(const torch::nn::AnyModule& m) {
  int64_t n = 0;
  for (const auto& p : m.ptr()->parameters()) n += p.numel();
  return n;
}

TEST(MakeNorm, InstanceNormHasNoParametersAndNormalisesEachChannel) {
  torch::manual_seed(0);
  auto norm = make_norm("INSTANCE", 3);
  EXPECT_EQ(count_parameters(norm), 0);
  const torch::Tensor y = norm.forward(torch::randn({2, 3, 4, 4, 4}) * 5 + 2);
  EXPECT_TRUE(torch::allclose(y.mean({2, 3, 4}), torch::zeros({2, 3}), 1e-4, 1e-4));
}

TEST(MakeNorm, GroupNormTakesItsGroupsFromTheArguments) {
  auto norm = make_norm(LayerSpec("group", {{"num_groups", 2}}), 4);
  EXPECT_EQ(count_parameters(norm), 2 * 4);
  EXPECT_NE(message_of([] { make_norm(LayerSpec("group", {{"num_groups", 3}}), 4); })
                .find("num_groups must divide the 4 channels of this layer, got num_groups 3"),
            std::string::npos);
  EXPECT_NE(message_of([] { make_norm("group", 4); }).find("argument num_groups is required"), std::string::npos);
}

TEST(MakeNorm, UnknownNamesListTheValidOnes) {
  EXPECT_NE(message_of([] { make_norm("spectral", 4, "UNETR norm_name"); })
                .find(": unknown normalisation; valid: [batch, group, instance, layer]"),
            std::string::npos);
  EXPECT_NE(message_of([] { validate_norm("spectral", 4, "UNETR norm_name"); }).find("UNETR norm_name"),
            std::string::npos);
}

TEST(MakeAct, BuildsActivationsWithTheirArguments) {
  const torch::Tensor x = torch::tensor({-2.0f, 0.0f, 3.0f});
  EXPECT_TRUE(torch::allclose(make_act("relu").forward(x), torch::tensor({0.0f, 0.0f, 3.0f})));
  EXPECT_TRUE(torch::allclose(make_act(LayerSpec("leakyrelu", {{"negative_slope", 0.5}})).forward(x),
                              torch::tensor({-1.0f, 0.0f, 3.0f})));
  EXPECT_TRUE(torch::allclose(make_act("identity").forward(x), x));
  EXPECT_EQ(count_parameters(make_act("prelu")), 1);
  EXPECT_NE(message_of([] { make_act("softsign"); }).find(": unknown activation; valid: [celu, elu, gelu"),
            std::string::npos);
}

TEST(LayerSpec, JsonFormsRoundTrip) {
  const LayerSpec plain = layer_spec_from_json("instance", "norm_name");
  EXPECT_EQ(plain, LayerSpec("instance"));
  EXPECT_EQ(layer_spec_to_json(plain), nlohmann::json("instance"));
  const nlohmann::json with_args = nlohmann::json::array({"group", {{"num_groups", 4}}});
  const LayerSpec group = layer_spec_from_json(with_args, "norm_name");
  EXPECT_EQ(group.args.at("num_groups"), 4);
  EXPECT_EQ(layer_spec_to_json(group), with_args);
  EXPECT_THROW(layer_spec_from_json(42, "norm_name"), ConfigError);
}

}  // namespace
}  // namespace teachformer::nn
