#include "teachformer/transforms/normalize.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::transforms {
namespace {

TEST(Normalize, FixedCtWindowClipsAndMapsToMinusOneOne) {
  const Normalization n = default_normalization("ct");
  EXPECT_EQ(n.scheme, NormScheme::Window);
  EXPECT_EQ(n.lower, -1024);
  EXPECT_EQ(n.upper, 1024);
  const auto x = torch::tensor({-3000.f, -1024.f, 0.f, 512.f, 1024.f, 3000.f});
  EXPECT_TRUE(torch::allclose(normalize(x, n), torch::tensor({-1.f, -1.f, 0.f, 0.5f, 1.f, 1.f})));
  const auto w = Normalization::window(-250, 250, "user");
  EXPECT_TRUE(torch::allclose(normalize(torch::tensor({-250.f, 0.f, 125.f}), w), torch::tensor({-1.f, 0.f, 0.5f})));
}

TEST(Normalize, PetAndMrChannelsGetAPerCaseZScore) {
  for (const char* name : {"PET", "pt", "Suv", "T2W", "t2", "HBV", "dwi", "FLAIR", "t1gd", "MRI"})
    EXPECT_EQ(default_normalization(name).scheme, NormScheme::ZScore) << name;
  const auto x = torch::randn({4, 5, 6}) * 7 + 30;
  const auto z = normalize(x, Normalization::zscore());
  EXPECT_NEAR(z.mean().item<double>(), 0.0, 1e-5);
  EXPECT_NEAR(z.std(false).item<double>(), 1.0, 1e-4);
  // A constant image has no spread: centred, not divided by zero.
  EXPECT_TRUE(torch::equal(normalize(torch::full({3, 3}, 5.f), Normalization::zscore()), torch::zeros({3, 3})));
}

TEST(Normalize, AdcUsesTheFixedGlobalScaling) {
  const Normalization n = default_normalization("ADC");
  EXPECT_EQ(n.scheme, NormScheme::Scale);
  EXPECT_TRUE(torch::allclose(normalize(torch::tensor({0.f, 1500.f, 3000.f, 4500.f}), n),
                              torch::tensor({-1.f, 0.f, 1.f, 2.f})));
}

TEST(Normalize, UnknownChannelNameIsAnErrorThatSaysHowToNameAScheme) {
  try {
    default_normalization("Perfusion");
    FAIL();
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("channel 'Perfusion'"), std::string::npos);
    EXPECT_NE(msg.find("--norm 'Perfusion=zscore'"), std::string::npos);
  }
}

TEST(Normalize, CommandLineSpecsParseAndBadOnesAreRejected) {
  EXPECT_EQ(parse_normalization("zscore", "x").scheme, NormScheme::ZScore);
  EXPECT_EQ(parse_normalization("none", "x").scheme, NormScheme::None);
  const auto w = parse_normalization("window:-250,250", "x");
  EXPECT_EQ(w.scheme, NormScheme::Window);
  EXPECT_EQ(w.lower, -250);
  EXPECT_EQ(w.upper, 250);
  const auto s = parse_normalization("scale:100,50", "x");
  EXPECT_EQ(s.offset, 100);
  EXPECT_EQ(s.divisor, 50);
  EXPECT_THROW(parse_normalization("window:250,-250", "x"), InvalidArgument);
  EXPECT_THROW(parse_normalization("window:1", "x"), InvalidArgument);
  EXPECT_THROW(parse_normalization("scale:1,0", "x"), InvalidArgument);
  EXPECT_THROW(parse_normalization("window:a,b", "x"), InvalidArgument);
  EXPECT_THROW(parse_normalization("minmax", "x"), InvalidArgument);
}

TEST(Normalize, JsonRoundTripRejectsKeysOfAnotherScheme) {
  for (const auto& n : {Normalization::window(-1, 2, "fingerprint"), Normalization::zscore(), Normalization::scale(3, 4, "default"),
                        Normalization::none()}) {
    const auto back = Normalization::from_json(n.to_json(), "t");
    EXPECT_EQ(back.to_json(), n.to_json());
  }
  auto j = Normalization::zscore().to_json();
  j["lower"] = 0;
  EXPECT_THROW(Normalization::from_json(j, "t"), ConfigError);
  EXPECT_THROW(Normalization::from_json({{"scheme", "minmax"}}, "t"), ConfigError);
  EXPECT_THROW(Normalization::from_json({{"scheme", "window"}, {"lower", 5}, {"upper", 1}}, "t"), ConfigError);
}

}  // namespace
}  // namespace teachformer::transforms
