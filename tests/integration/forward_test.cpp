// `teachformer forward` and `teachformer models` end to end: the H-DenseFormer reference fixture through the CLI,
// weights written by the library, and bad arguments.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/json.hpp"
#include "teachformer/io/safetensors.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/models/weights.hpp"
#include "test_support.hpp"

namespace teachformer {
namespace {

using ::testing::HasSubstr;
using test::run_cli;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

std::string hdenseformer_kwargs() {
  return read_json(test::fixture("models/hdenseformer_tiny.json")).at("kwargs").dump();
}

TEST(ForwardCli, ReproducesTheHDenseFormerReferenceFixture) {
  test::TempDir dir;
  const auto io_path = test::fixture("models/hdenseformer_tiny_io.safetensors");
  const auto out_path = dir / "out.safetensors";
  const auto r = run_cli("--threads 2 forward -m hdenseformer --options " + quoted(hdenseformer_kwargs()) +
                         " --weights " + quoted(test::fixture("models/hdenseformer_tiny.safetensors").string()) +
                         " -i " + quoted(io_path.string() + ":input") + " -o " + quoted(out_path.string()) +
                         " --intermediates");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("hdenseformer: input [1, 2, 48, 48, 48] -> output [1, 2, 48, 48, 48]"));
  const io::SafeTensors expected = io::read_safetensors(io_path);
  const io::SafeTensors actual = io::read_safetensors(out_path);
  int compared = 0;
  for (const auto& [name, tensor] : expected.tensors) {
    if (name == "input") continue;
    ASSERT_TRUE(actual.contains(name)) << name;
    EXPECT_TRUE(torch::allclose(actual.at(name), tensor, 1e-4, 1e-4))
        << name << ": max |diff| " << (actual.at(name) - tensor).abs().max().item<double>();
    ++compared;
  }
  EXPECT_EQ(compared, 4 + 14);
  EXPECT_TRUE(actual.contains("encoder_coarse"));
  EXPECT_TRUE(actual.contains("decoder_fine"));
  EXPECT_EQ(nlohmann::json::parse(actual.metadata.at("teachformer_forward")).at("model"), "hdenseformer");
}

TEST(ForwardCli, ReadsModelAndOptionsFromSelfDescribingWeights) {
  test::TempDir dir;
  torch::manual_seed(3);
  auto model = models::create_model("teachformer_s", {{"preset", "tiny"}, {"in_channels", 3}});
  models::WeightsMetadata meta;
  meta.channel_names = {"T2W", "ADC", "HBV"};
  models::save_weights(dir / "w.safetensors", *model, meta);
  const torch::Tensor x = torch::randn({3, 16, 32, 16});  // [C, D, H, W]: the batch dim is added
  io::write_safetensors(dir / "in.safetensors", {{"image", x}});
  const auto r = run_cli("--threads 2 forward --weights " + quoted((dir / "w.safetensors").string()) + " -i " +
                         quoted((dir / "in.safetensors").string() + ":image") + " -o " +
                         quoted((dir / "out.safetensors").string()) + " --attention --channels T2W,ADC,HBV");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const io::SafeTensors out = io::read_safetensors(dir / "out.safetensors");
  model->eval();
  torch::InferenceMode guard;
  EXPECT_TRUE(torch::allclose(out.at("output"), model->forward(x.unsqueeze(0)).logits, 1e-5, 1e-5));
  EXPECT_EQ(out.at("output_ds1").sizes().vec(), (std::vector<int64_t>{1, 2, 8, 16, 8}));
  EXPECT_EQ(out.at("output_ds2").sizes().vec(), (std::vector<int64_t>{1, 2, 4, 8, 4}));
  EXPECT_TRUE(out.contains("attention.block0"));
  // The recorded channel order is enforced.
  const auto swapped = run_cli("forward --weights " + quoted((dir / "w.safetensors").string()) + " -i " +
                               quoted((dir / "in.safetensors").string() + ":image") + " -o " +
                               quoted((dir / "o2.safetensors").string()) + " --channels ADC,T2W,HBV");
  EXPECT_EQ(swapped.exit_code, 1) << swapped.output;
  EXPECT_THAT(swapped.output, HasSubstr("expect input channels [T2W, ADC, HBV] (in this order)"));
}

TEST(ForwardCli, BadArgumentsGiveOneClearLine) {
  test::TempDir dir;
  const std::string weights = quoted(test::fixture("models/hdenseformer_tiny.safetensors").string());
  const std::string io = test::fixture("models/hdenseformer_tiny_io.safetensors").string();
  const std::string out = quoted((dir / "o.safetensors").string());
  const std::string opts = " --options " + quoted(hdenseformer_kwargs());

  auto unknown_model = run_cli("forward -m hdensformer --weights " + weights + " -i " + quoted(io) + " -o " + out);
  EXPECT_EQ(unknown_model.exit_code, 1);
  EXPECT_THAT(unknown_model.output, HasSubstr("error: unknown model 'hdensformer'; valid models: [hdenseformer, "
                                              "swin_unetr, teachformer_s, unetr]; did you mean 'hdenseformer'?"));

  auto bad_key = run_cli("forward -m hdenseformer --options '{\"n_filter\": 6}' --weights " + weights + " -i " +
                         quoted(io) + " -o " + out);
  EXPECT_EQ(bad_key.exit_code, 1);
  EXPECT_THAT(bad_key.output, HasSubstr("hdenseformer options: unknown key(s) [n_filter]; valid keys are"));

  auto missing_tensor = run_cli("forward -m hdenseformer" + opts + " --weights " + weights + " -i " +
                                quoted(io + ":nope") + " -o " + out);
  EXPECT_EQ(missing_tensor.exit_code, 1);
  EXPECT_THAT(missing_tensor.output, HasSubstr("error: no tensor named 'nope'; available: [input, intermediate."));

  auto plain_without_model = run_cli("forward --weights " + weights + " -i " + quoted(io) + " -o " + out);
  EXPECT_EQ(plain_without_model.exit_code, 1);
  EXPECT_THAT(plain_without_model.output, HasSubstr("carry no TeachFormer metadata (a plain state dict): name the model"));

  auto wrong_size = run_cli("forward -m hdenseformer --options '{\"in_channels\":2,\"n_cls\":2,\"n_filters\":6,"
                            "\"image_size\":32,\"transformer_depth\":8}' --weights " + weights + " -i " + quoted(io) +
                            " -o " + out);
  EXPECT_EQ(wrong_size.exit_code, 1);
  EXPECT_THAT(wrong_size.output, HasSubstr("do not fit model 'hdenseformer'"));

  auto usage = run_cli("forward -m hdenseformer --weights " + weights + " -o " + out);
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "o.safetensors"));
}

TEST(ModelsCli, ListsEveryModelAndSaysWhyOneRejectsTheInput) {
  const auto r = run_cli("--threads 2 models --input 2x32x32x32 --json -m teachformer_s -m hdenseformer "
                         "--options 'teachformer_s={\"preset\":\"tiny\"}'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<nlohmann::json> rows;
  std::stringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line))
    if (!line.empty() && line[0] == '{') rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 2u) << r.output;
  EXPECT_EQ(rows[0].at("model"), "teachformer_s");
  EXPECT_EQ(rows[0].at("info").at("parameters"), 152066);
  EXPECT_GT(rows[0].at("info").at("gflops").get<double>(), 0.0);
  EXPECT_EQ(rows[1].at("model"), "hdenseformer");
  EXPECT_THAT(rows[1].at("error").get<std::string>(),
              HasSubstr("input spatial shape [32, 32, 32] must equal option image_size [144, 144, 144]"));

  const auto table = run_cli("models --input 2x16x16x16 -m teachformer_s");
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("teachformer_s"));
  EXPECT_THAT(table.output, HasSubstr("985,266"));
  const auto bad = run_cli("models --input 2x16x16");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.output, HasSubstr("--input '2x16x16': expected CxDxHxW or BxCxDxHxW"));
}

}  // namespace
}  // namespace teachformer
