// Weight files: save/load round trip with identical outputs, metadata contents, mismatch refusals, plain state dicts.
#include "teachformer/models/weights.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/io/safetensors.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/version.hpp"
#include "test_support.hpp"

namespace teachformer::models {
namespace {

using ::testing::HasSubstr;

const nlohmann::json kTinyStudent = {{"preset", "tiny"}, {"in_channels", 2}, {"out_channels", 3}};
const nlohmann::json kTinyTeacher = {{"in_channels", 2}, {"n_cls", 2},           {"n_filters", 4},
                                     {"image_size", 16}, {"transformer_depth", 4}, {"dense_layers", 2}};

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

WeightsMetadata full_metadata() {
  WeightsMetadata m;
  m.channel_names = {"CT", "PET"};
  m.normalization = {{"CT", {{"kind", "clip"}, {"low", -1024}, {"high", 1024}}}, {"PET", {{"kind", "zscore"}}}};
  m.patch_size = {16, 16, 16};
  m.spacing = {1.0, 1.0, 1.0};
  m.labels = {{"background", 0}, {"tumor", 1}};
  m.extra = {{"training", {{"epoch", 3}}}};
  return m;
}

torch::Tensor forward(SegmentationModelImpl& model, const torch::Tensor& x) {
  torch::InferenceMode guard;
  return model.forward(x).logits;
}

TEST(Weights, RoundTripGivesIdenticalOutputsForEveryOwnModel) {
  test::TempDir dir;
  for (const auto& [key, options] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"teachformer_s", kTinyStudent}, {"hdenseformer", kTinyTeacher}}) {
    torch::manual_seed(7);
    SegmentationModel model = create_model(key, options);
    // Random values everywhere (norm affines too), so a parameter that does not travel would show.
    {
      torch::NoGradGuard g;
      for (auto& p : model->parameters()) p.copy_(torch::randn_like(p) * 0.2);
    }
    model->eval();
    const auto path = dir / (key + ".safetensors");
    save_weights(path, *model, full_metadata());
    const LoadedModel loaded = load_model_weights(path);
    const torch::Tensor x = torch::randn({1, 2, 16, 16, 16});
    EXPECT_TRUE(torch::equal(forward(*loaded.model, x), forward(*model, x))) << key;
    EXPECT_EQ(loaded.report.loaded.size(), state_dict(*model).size()) << key;
    EXPECT_FALSE(loaded.model->is_training());
  }
}

TEST(Weights, MetadataRecordsModelOptionsChannelsAndVersion) {
  test::TempDir dir;
  SegmentationModel model = create_model("teachformer_s", kTinyStudent);
  save_weights(dir / "w.safetensors", *model, full_metadata());
  const auto meta = read_weights_metadata(dir / "w.safetensors");
  ASSERT_TRUE(meta.has_value());
  EXPECT_EQ(meta->model, "teachformer_s");
  EXPECT_EQ(meta->options, model->spec().options);
  EXPECT_EQ(meta->channel_names, (std::vector<std::string>{"CT", "PET"}));
  EXPECT_EQ(meta->normalization, full_metadata().normalization);
  EXPECT_EQ(meta->patch_size, (std::vector<int64_t>{16, 16, 16}));
  EXPECT_EQ(meta->spacing, (std::vector<double>{1.0, 1.0, 1.0}));
  EXPECT_EQ(meta->labels, full_metadata().labels);
  EXPECT_EQ(meta->tool_version, kVersion);
  EXPECT_EQ(meta->extra, full_metadata().extra);
  // Stored as one JSON string under the "teachformer" metadata key.
  const auto header = io::read_safetensors_header(dir / "w.safetensors");
  ASSERT_TRUE(header.metadata.count(kWeightsMetadataKey));
  EXPECT_EQ(nlohmann::json::parse(header.metadata.at(kWeightsMetadataKey)).at("model"), "teachformer_s");
}

TEST(Weights, RefusesAnotherModelKeyOptionsOrChannelOrder) {
  test::TempDir dir;
  const auto path = dir / "student.safetensors";
  save_weights(path, *create_model("teachformer_s", kTinyStudent), full_metadata());
  WeightsRequest other_model;
  other_model.model = "hdenseformer";
  EXPECT_THAT(error_of([&] { load_model_weights(path, other_model); }),
              HasSubstr("hold model 'teachformer_s' but model 'hdenseformer' was requested"));
  WeightsRequest other_options;
  other_options.options = {{"preset", "tiny"}, {"in_channels", 2}, {"out_channels", 2}};
  EXPECT_THAT(error_of([&] { load_model_weights(path, other_options); }),
              HasSubstr("with other options than requested (file vs request: out_channels: 3 vs 2)"));
  WeightsRequest swapped;
  swapped.channel_names = {"PET", "CT"};
  EXPECT_THAT(error_of([&] { load_model_weights(path, swapped); }),
              HasSubstr("expect input channels [CT, PET] (in this order) but the request gives [PET, CT]"));
  // The same request spelled with every option resolves equal and loads.
  WeightsRequest same;
  same.model = "teachformer_s";
  same.options = kTinyStudent;
  same.channel_names = {"CT", "PET"};
  EXPECT_NO_THROW(load_model_weights(path, same));
  // Into an existing model of another configuration.
  SegmentationModel small = create_model("teachformer_s", {{"in_channels", 2}, {"out_channels", 3}});
  EXPECT_THAT(error_of([&] { load_weights_into(*small, path); }), HasSubstr("channels: [16,16,32,64] vs [16,32,64,128]"));
}

TEST(Weights, SaveRefusesMetadataThatContradictsTheModel) {
  test::TempDir dir;
  SegmentationModel model = create_model("teachformer_s", kTinyStudent);
  WeightsMetadata wrong_channels;
  wrong_channels.channel_names = {"T2W", "ADC", "HBV"};
  EXPECT_THAT(error_of([&] { save_weights(dir / "a.safetensors", *model, wrong_channels); }),
              HasSubstr("3 channel names [T2W, ADC, HBV] for a model with in_channels 2"));
  WeightsMetadata wrong_model;
  wrong_model.model = "unetr";
  EXPECT_THAT(error_of([&] { save_weights(dir / "b.safetensors", *model, wrong_model); }),
              HasSubstr("metadata names model 'unetr' but the model is 'teachformer_s'"));
  EXPECT_FALSE(std::filesystem::exists(dir / "a.safetensors"));
}

TEST(Weights, PlainStateDictLoadsWhenTheModelIsNamed) {
  // The reference H-DenseFormer state dict has no TeachFormer metadata, like a file converted from PyTorch.
  const auto path = test::fixture("models/hdenseformer_tiny.safetensors");
  EXPECT_FALSE(read_weights_metadata(path).has_value());
  EXPECT_THAT(error_of([&] { load_model_weights(path); }),
              HasSubstr("carry no TeachFormer metadata (a plain state dict): name the model"));
  WeightsRequest request;
  request.model = "hdenseformer";
  request.options = read_json(test::fixture("models/hdenseformer_tiny.json")).at("kwargs");
  const LoadedModel loaded = load_model_weights(path, request);
  EXPECT_EQ(loaded.report.loaded.size(), 294u);
  EXPECT_FALSE(loaded.metadata.has_value());
  const auto io = io::read_safetensors(test::fixture("models/hdenseformer_tiny_io.safetensors"));
  EXPECT_TRUE(torch::allclose(forward(*loaded.model, io.at("input")), io.at("output"), 1e-4, 1e-4));
  // With the wrong options the tensors do not fit, and the message names the file.
  request.options["n_filters"] = 8;
  EXPECT_THAT(error_of([&] { load_model_weights(path, request); }),
              HasSubstr("hdenseformer_tiny.safetensors' do not fit model 'hdenseformer'"));
}

TEST(Weights, MetadataWithoutModelOrOptionsIsAFormatError) {
  test::TempDir dir;
  io::write_safetensors(dir / "x.safetensors", {{"w", torch::zeros({1})}}, {{kWeightsMetadataKey, "{\"model\": 1}"}});
  EXPECT_THROW(read_weights_metadata(dir / "x.safetensors"), FormatError);
  io::write_safetensors(dir / "y.safetensors", {{"w", torch::zeros({1})}}, {{kWeightsMetadataKey, "not json"}});
  EXPECT_THAT(error_of([&] { read_weights_metadata(dir / "y.safetensors"); }), HasSubstr("is not JSON"));
}

}  // namespace
}  // namespace teachformer::models
