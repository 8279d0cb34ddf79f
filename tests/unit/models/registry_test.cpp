// The model registry: keys, strict JSON options, unknown names with the nearest match, defaults, fixture kwargs.
#include "teachformer/models/registry.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "test_support.hpp"

namespace teachformer::models {
namespace {

using ::testing::HasSubstr;

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Registry, ListsEveryModelSorted) {
  EXPECT_EQ(model_keys(), (std::vector<std::string>{"hdenseformer", "swin_unetr", "teachformer_s", "unetr"}));
  for (const auto& key : model_keys()) EXPECT_FALSE(model_description(key).empty()) << key;
}

TEST(Registry, UnknownModelListsTheValidOnesAndTheNearest) {
  const std::string message = error_of([] { create_model("hdensformer"); });
  EXPECT_THAT(message, HasSubstr("unknown model 'hdensformer'; valid models: [hdenseformer, swin_unetr, "
                                 "teachformer_s, unetr]; did you mean 'hdenseformer'?"));
  EXPECT_THROW(default_model_options("TeachFormer_S"), InvalidArgument);
  EXPECT_THAT(error_of([] { require_model_key("teachformer-s"); }), HasSubstr("did you mean 'teachformer_s'?"));
}

TEST(Registry, UnknownOptionKeysAreConfigErrorsListingValidKeys) {
  try {
    create_model("teachformer_s", {{"in_channels", 2}, {"hidden_size", 96}});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("teachformer_s options: unknown key(s) [hidden_size]; valid keys are"));
    EXPECT_THAT(e.what(), HasSubstr("transformer_depth"));
  }
  EXPECT_THROW(create_model("hdenseformer", {{"n_filter", 8}}), ConfigError);
  EXPECT_THROW(create_model("hdenseformer", nlohmann::json::array({1, 2})), ConfigError);
}

TEST(Registry, DefaultsOfOwnModelsBuildAndResolveToThemselves) {
  for (const std::string key : {"hdenseformer", "teachformer_s"}) {
    const nlohmann::json defaults = default_model_options(key);
    EXPECT_TRUE(defaults.is_object() && !defaults.empty()) << key;
    const auto model = create_model(key, defaults);
    EXPECT_EQ(model->spec().key, key);
    EXPECT_EQ(model->spec().options, defaults) << key;
    EXPECT_EQ(create_model(key)->spec().options, defaults) << key << ": {} and null must mean the defaults";
    EXPECT_EQ(create_model(key, nullptr)->spec().options, defaults) << key;
  }
  for (const auto& key : model_keys()) EXPECT_FALSE(default_model_options(key).empty()) << key;
}

TEST(Registry, AcceptsTheKwargsOfEveryReferenceFixture) {
  const std::vector<std::pair<std::string, std::string>> fixtures{
      {"hdenseformer", "models/hdenseformer_tiny.json"},
      {"unetr", "models/unetr_tiny.json"},
      {"swin_unetr", "models/swin_unetr_tiny.json"}};
  for (const auto& [key, file] : fixtures) {
    const nlohmann::json meta = read_json(test::fixture(file));
    const auto model = create_model(key, meta.at("kwargs"));
    EXPECT_EQ(model->spec().key, key);
    const int64_t expected = meta.contains("parameters_used_in_forward")
                                 ? meta.at("parameters_used_in_forward").get<int64_t>()
                                 : meta.at("parameters").get<int64_t>();
    EXPECT_EQ(count_parameters(*model), expected) << key;
  }
}

}  // namespace
}  // namespace teachformer::models
