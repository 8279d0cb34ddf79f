#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/inference/model_window.hpp"

namespace teachformer::inference {
namespace {

namespace F = torch::nn::functional;

// A tiny model whose outputs are local: logits = 1x1x1 conv, encoder_coarse = 4x4x4 average of the logits,
// decoder_fine = 2x2x2 max of the input, and an attention-like tap that cannot be stitched.
class PointwiseModelImpl : public models::SegmentationModelImpl {
 public:
  PointwiseModelImpl() : models::SegmentationModelImpl("PointwiseModel") {
    spec_.key = "pointwise";
    spec_.in_channels = 2;
    spec_.out_channels = 3;
    weight_ = register_parameter("weight", torch::randn({3, 2, 1, 1, 1}));
  }
  models::SegOutput forward(const torch::Tensor& x, const models::TapRequest& request) override {
    check_input(x);
    models::SegOutput out;
    out.logits = F::conv3d(x, weight_);
    if (request.features) {
      out.taps.set(models::kEncoderCoarse, F::avg_pool3d(out.logits, F::AvgPool3dFuncOptions(4)));
      out.taps.set(models::kDecoderFine, F::max_pool3d(x, F::MaxPool3dFuncOptions(2)));
    }
    if (request.attention) out.taps.set("attention.0", torch::zeros({x.size(0), 2, 8, 8}));
    return out;
  }
  const models::ModelSpec& spec() const override { return spec_; }
  torch::Tensor weight_;

 private:
  models::ModelSpec spec_;
};

TEST(ModelWindow, ProbeFindsEachOutputsDownsampling) {
  torch::manual_seed(1);
  auto model = std::make_shared<PointwiseModelImpl>();
  const auto outputs = probe_model_outputs(model, {models::kEncoderCoarse, models::kDecoderFine}, {16, 16, 8});
  ASSERT_EQ(outputs.size(), 3u);
  EXPECT_EQ(outputs[0].name, "logits");
  EXPECT_EQ(outputs[0].kind, OutputKind::Segmentation);
  EXPECT_EQ(outputs[0].downsample, (std::array<int64_t, 3>{1, 1, 1}));
  EXPECT_EQ(outputs[1].name, models::kEncoderCoarse);
  EXPECT_EQ(outputs[1].kind, OutputKind::Feature);
  EXPECT_EQ(outputs[1].downsample, (std::array<int64_t, 3>{4, 4, 4}));
  EXPECT_EQ(outputs[2].downsample, (std::array<int64_t, 3>{2, 2, 2}));
}

TEST(ModelWindow, StitchedModelOutputsEqualTheWholeImageForward) {
  torch::manual_seed(2);
  auto model = std::make_shared<PointwiseModelImpl>();
  model->eval();
  const std::vector<std::string> taps{models::kEncoderCoarse, models::kDecoderFine};
  const auto opts = SlidingWindowOptions().roi_size({16, 8, 16}).overlap(0.5);
  const auto outputs = probe_model_outputs(model, taps, opts.roi_size());
  const auto image = torch::randn({2, 24, 16, 32});
  const auto r = sliding_window_inference(image, {model_window_function(model, taps)}, outputs, opts);
  torch::NoGradGuard no_grad;
  const auto whole = model->forward(image.unsqueeze(0), {true, false, false});
  EXPECT_TRUE(torch::allclose(r.at("logits"), torch::softmax(whole.logits[0], 0), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(r.at(models::kEncoderCoarse), whole.taps.at(models::kEncoderCoarse)[0], 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(r.at(models::kDecoderFine), whole.taps.at(models::kDecoderFine)[0], 1e-5, 1e-6));
}

TEST(ModelWindow, UnknownOrUnstitchableTapsAreErrors) {
  auto model = std::make_shared<PointwiseModelImpl>();
  try {
    probe_model_outputs(model, {"encoder_corse"}, {8, 8, 8});
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("encoder_coarse"), std::string::npos) << e.what();
  }
  try {
    probe_model_outputs(model, {"attention.0"}, {8, 8, 8});
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("only [1, C, z, y, x] maps can be stitched"), std::string::npos) << e.what();
  }
  EXPECT_THROW(model_window_function(nullptr), InvalidArgument);
}

}  // namespace
}  // namespace teachformer::inference
